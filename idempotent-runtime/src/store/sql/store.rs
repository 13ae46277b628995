//! The SQL store, written once: `sql_store!` makes it for one sqlx database (its pool and
//! transaction types), from the statements of [`super::Statements`]. Each method is one
//! statement (a lookup after a claim that found a live row, and a reason after a fenced
//! completion that changed nothing, only read).

/// Defines a SQL store type `$name` on the sqlx database `$db`.
macro_rules! sql_store {
    (
        $(#[$meta:meta])*
        name: $name:ident,
        database: $db:ty,
        pool: $pool:ty,
        kind: $kind:literal,
        dialect: $dialect:expr,
    ) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            pool: $pool,
            table: std::sync::Arc<str>,
            sql: std::sync::Arc<$crate::store::sql::Statements>,
            timeout: std::time::Duration,
            schema_checked: std::sync::Arc<std::sync::atomic::AtomicBool>,
            claims: std::sync::Arc<std::sync::atomic::AtomicU32>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("table", &self.table)
                    .field("timeout", &self.timeout)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// A store on the application's own `pool`, in the table `idempotency_records`,
            /// with a 2 s timeout per statement. Run [`Self::migrate`] once at start-up.
            #[must_use]
            pub fn new(pool: $pool) -> Self {
                Self::build(pool, $crate::store::sql::DEFAULT_TABLE.into())
            }

            fn build(pool: $pool, table: std::sync::Arc<str>) -> Self {
                Self {
                    sql: std::sync::Arc::new($crate::store::sql::Statements::new(&table, &$dialect)),
                    pool,
                    table,
                    timeout: $crate::store::sql::DEFAULT_TIMEOUT,
                    schema_checked: std::sync::Arc::default(),
                    claims: std::sync::Arc::default(),
                }
            }

            /// Keeps the records in `table` instead (a lowercase SQL identifier).
            ///
            /// # Errors
            /// [`Error::Misconfigured`](crate::Error::Misconfigured) for a name that is not
            /// one.
            pub fn table(self, table: &str) -> Result<Self, $crate::Error> {
                $crate::store::sql::check_table(table)?;
                let timeout = self.timeout;
                Ok(Self { timeout, ..Self::build(self.pool, table.into()) })
            }

            /// The timeout of every statement; past it a call is
            /// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable). Default 2 s.
            #[must_use]
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.timeout = timeout;
                self
            }

            /// The pool the store runs on.
            #[must_use]
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Creates the table, its index, its counter and its schema version, if they are
            /// not there: idempotent, run it at every start-up.
            ///
            /// # Errors
            /// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable) when a statement
            /// fails.
            pub async fn migrate(&self) -> Result<(), $crate::Error> {
                // One transaction: concurrent migrations (instances starting together) wait
                // for each other instead of failing, and a failed one leaves nothing half made.
                let run = async {
                    let mut transaction = self.pool.begin_with(self.sql.begin_migration).await?;
                    for statement in &self.sql.ddl {
                        sqlx::query(statement).execute(&mut *transaction).await?;
                    }
                    transaction.commit().await
                };
                $crate::store::sql::within(self.timeout, &self.table, run).await?;
                self.schema_checked.store(false, std::sync::atomic::Ordering::Relaxed);
                self.check_schema().await
            }

            /// Deletes up to `limit` expired rows now; returns how many. Never needed for
            /// correctness (an expired row is absent to every call) — claims purge a few rows
            /// every 64 claims — only to give space back on a schedule of your own.
            ///
            /// # Errors
            /// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable).
            pub async fn purge_expired(&self, limit: u32) -> Result<u64, $crate::Error> {
                let run = sqlx::query(&self.sql.purge)
                    .bind(i64::from(limit))
                    .execute(&self.pool);
                let done = $crate::store::sql::within(self.timeout, &self.table, run).await?;
                Ok(done.rows_affected())
            }

            /// At the first call: the schema is there and current, else the error naming
            /// `migrate()`.
            async fn check_schema(&self) -> Result<(), $crate::Error> {
                use std::sync::atomic::Ordering;
                if self.schema_checked.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let read = sqlx::query_scalar::<_, i64>(&self.sql.schema).fetch_optional(&self.pool);
                let version = $crate::store::sql::within(self.timeout, &self.table, read).await?;
                $crate::store::sql::check_schema(version, &self.table)?;
                self.schema_checked.store(true, Ordering::Relaxed);
                Ok(())
            }

            /// The live row of `key`, decoded.
            async fn lookup(
                &self,
                key: &$crate::IdempotencyKey,
            ) -> Result<Option<$crate::store::sql::LiveRow>, $crate::Error> {
                use sqlx::Row;
                let read = sqlx::query(&self.sql.lookup).bind(key.as_str()).fetch_optional(&self.pool);
                let Some(row) = $crate::store::sql::within(self.timeout, &self.table, read).await? else {
                    return Ok(None);
                };
                let column = |e| $crate::store::sql::from_sqlx(e, &self.table);
                $crate::store::sql::decode_row(
                    row.try_get("state").map_err(column)?,
                    row.try_get::<Vec<u8>, _>("fingerprint").map_err(column)?.as_slice(),
                    row.try_get::<Vec<u8>, _>("nonce").map_err(column)?.as_slice(),
                    row.try_get("counter").map_err(column)?,
                    row.try_get::<Option<Vec<u8>>, _>("response").map_err(column)?.as_deref(),
                )
                .map(Some)
            }

            /// Every few claims, a bounded purge of expired rows (best effort).
            async fn purge_now_and_then(&self) {
                use std::sync::atomic::Ordering;
                let n = self.claims.fetch_add(1, Ordering::Relaxed);
                if n % $crate::store::sql::PURGE_EVERY == 0 {
                    let _ = self.purge_expired($crate::store::sql::PURGE_ROWS).await;
                }
            }

            /// The fenced completion on `executor` (the pool, or the handler's transaction).
            async fn complete_on<'e, X>(
                &self,
                executor: X,
                key: &$crate::IdempotencyKey,
                entry: &$crate::IdempotencyEntry<$crate::Completed>,
                token: $crate::FencingToken,
            ) -> Result<bool, $crate::Error>
            where
                X: sqlx::Executor<'e, Database = $db>,
            {
                let ttl = $crate::store::lifetimes::completion(entry)?;
                let (state, response) = $crate::store::sql::completion_columns(entry.response())?;
                let run = sqlx::query(&self.sql.complete)
                    .bind(key.as_str())
                    .bind($crate::store::sql::nonce_bytes(token.nonce()))
                    .bind($crate::store::sql::counter_column(token)?)
                    .bind(state)
                    .bind(response)
                    .bind(i64::try_from(ttl).unwrap_or(i64::MAX))
                    .bind(entry.fingerprint().to_bytes().to_vec())
                    .execute(executor);
                let done = $crate::store::sql::within(self.timeout, &self.table, run).await?;
                Ok(done.rows_affected() == 1)
            }

            /// Why a fenced completion changed no row.
            async fn why_not(
                &self,
                key: &$crate::IdempotencyKey,
                entry: &$crate::IdempotencyEntry<$crate::Completed>,
                token: $crate::FencingToken,
            ) -> Result<(), $crate::Error> {
                let read = sqlx::query_as::<_, (i64, Vec<u8>)>(&self.sql.completion_state)
                    .bind(key.as_str())
                    .bind($crate::store::sql::nonce_bytes(token.nonce()))
                    .bind($crate::store::sql::counter_column(token)?)
                    .fetch_optional(&self.pool);
                let row = $crate::store::sql::within(self.timeout, &self.table, read).await?;
                $crate::store::sql::why_not_completed(row, entry.fingerprint())
            }

            /// A fenced statement on the claim of `token` that must change exactly one row.
            async fn fenced(
                &self,
                statement: &str,
                key: &$crate::IdempotencyKey,
                token: $crate::FencingToken,
                lease_ms: Option<u64>,
            ) -> Result<(), $crate::Error> {
                self.check_schema().await?;
                let mut query = sqlx::query(statement)
                    .bind(key.as_str())
                    .bind($crate::store::sql::nonce_bytes(token.nonce()))
                    .bind($crate::store::sql::counter_column(token)?);
                if let Some(lease) = lease_ms {
                    query = query.bind(i64::try_from(lease).unwrap_or(i64::MAX));
                }
                let done = $crate::store::sql::within(self.timeout, &self.table, query.execute(&self.pool)).await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err($crate::Error::StaleFencingToken) }
            }
        }

        #[async_trait::async_trait]
        impl $crate::IdempotencyStore for $name {
            async fn try_insert(
                &self,
                key: &$crate::IdempotencyKey,
                entry: $crate::IdempotencyEntry<$crate::Processing>,
            ) -> Result<$crate::InsertResult, $crate::Error> {
                let (_, lease) = $crate::store::lifetimes::claim(&entry)?;
                self.check_schema().await?;
                let nonce = entry.claim_nonce();
                // A row that lapses between the claim and the lookup is claimed on the next
                // round; a few rounds settle any race.
                for _ in 0..4 {
                    let run = sqlx::query_scalar::<_, i64>(&self.sql.claim)
                        .bind(key.as_str())
                        .bind(entry.fingerprint().to_bytes().to_vec())
                        .bind($crate::store::sql::nonce_bytes(nonce))
                        .bind(i64::try_from(lease).unwrap_or(i64::MAX))
                        .fetch_optional(&self.pool);
                    if let Some(counter) = $crate::store::sql::within(self.timeout, &self.table, run).await? {
                        let counter = u64::try_from(counter).map_err(|_| {
                            $crate::Error::Corrupt(format!("SQL idempotency counter {counter}"))
                        })?;
                        self.purge_now_and_then().await;
                        return Ok($crate::InsertResult::Claimed {
                            fencing_token: $crate::FencingToken::new(counter, nonce),
                            entry,
                        });
                    }
                    if let Some(live) = self.lookup(key).await? {
                        if let Some((held, counter)) = live.claim_of.filter(|(n, _)| *n == nonce) {
                            // This very claim, re-sent: the caller's own.
                            return Ok($crate::InsertResult::Claimed {
                                fencing_token: $crate::FencingToken::new(counter, held),
                                entry,
                            });
                        }
                        return Ok($crate::InsertResult::Exists(live.existing));
                    }
                }
                Err($crate::Error::StoreUnavailable(
                    "the idempotency row kept changing under the claim; retry".into(),
                ))
            }

            async fn complete(
                &self,
                key: &$crate::IdempotencyKey,
                entry: $crate::IdempotencyEntry<$crate::Completed>,
                token: $crate::FencingToken,
            ) -> Result<(), $crate::Error> {
                self.check_schema().await?;
                if self.complete_on(&self.pool, key, &entry, token).await? {
                    return Ok(());
                }
                self.why_not(key, &entry, token).await
            }

            async fn release(
                &self,
                key: &$crate::IdempotencyKey,
                token: $crate::FencingToken,
            ) -> Result<(), $crate::Error> {
                self.fenced(&self.sql.release, key, token, None).await
            }

            async fn renew(
                &self,
                key: &$crate::IdempotencyKey,
                token: $crate::FencingToken,
                lease: std::time::Duration,
            ) -> Result<(), $crate::Error> {
                let lease = $crate::store::lifetimes::lease(lease)?;
                self.fenced(&self.sql.renew, key, token, Some(lease)).await
            }

            async fn get(
                &self,
                key: &$crate::IdempotencyKey,
            ) -> Result<Option<$crate::ExistingEntry>, $crate::Error> {
                self.check_schema().await?;
                Ok(self.lookup(key).await?.map(|live| live.existing))
            }

            fn kind(&self) -> &'static str {
                $kind
            }

            fn detached(&self) -> Option<std::sync::Arc<dyn $crate::IdempotencyStore>> {
                Some(std::sync::Arc::new(self.clone()))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TransactionalStore for $name {
            type Transaction = sqlx::Transaction<'static, $db>;

            async fn begin(&self) -> Result<Self::Transaction, $crate::Error> {
                $crate::store::sql::within(self.timeout, &self.table, self.pool.begin()).await
            }

            async fn complete_in(
                &self,
                transaction: &mut Self::Transaction,
                key: &$crate::IdempotencyKey,
                entry: $crate::IdempotencyEntry<$crate::Completed>,
                token: $crate::FencingToken,
            ) -> Result<(), $crate::Error> {
                if self.complete_on(&mut **transaction, key, &entry, token).await? {
                    return Ok(());
                }
                // Nothing matched: the claim lapsed or was taken over. The caller rolls back.
                self.why_not(key, &entry, token).await.and(Err($crate::Error::StaleFencingToken))
            }

            async fn commit(&self, transaction: Self::Transaction) -> Result<(), $crate::Error> {
                $crate::store::sql::within(self.timeout, &self.table, transaction.commit()).await
            }
        }
    };
}
