//! [`PostgresStore`]: idempotency records in the application's PostgreSQL database (sqlx), so a
//! completion can commit **in the handler's own transaction** (transactional mode:
//! [`Idempotent::run_in_transaction`](crate::Idempotent::run_in_transaction)).
//!
//! # What it guarantees
//! - Every step is one statement: the claim an `INSERT … ON CONFLICT (key) DO UPDATE … WHERE
//!   <the row lapsed or expired> RETURNING counter`; complete, renew and release are `UPDATE`
//!   / `DELETE … WHERE key AND nonce AND counter AND state = processing AND live`. Leases and
//!   TTLs run on the database clock (`clock_timestamp()`, read at each statement, so a long
//!   transaction does not see a stale "now").
//! - The fencing counter comes from a sequence (`{table}_counter`): it strictly increases
//!   across claims of a key, even after its row was deleted.
//! - Expired rows are absent to every call and purged a few at a time (32 rows every 64
//!   claims, through the index on `expires_at`), or with [`PostgresStore::purge_expired`]; no
//!   background task.
//! - A row that cannot be decoded is `Corrupt`; a database that does not answer within the
//!   timeout is `StoreUnavailable`; a missing or older schema is `Misconfigured`, naming
//!   [`PostgresStore::migrate`].
//! - In transactional mode, exactly once for the writes made in the transaction: the record's
//!   completion is written in it, fenced by the claim, so a crash, a handler error or a holder
//!   whose lease lapsed (a zombie) commits nothing, and the retry runs once. Effects outside
//!   the database stay at most once.
//!
//! ```no_run
//! use idempotent_runtime::PostgresStore;
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1/app").await?;
//! let store = PostgresStore::new(pool).table("idempotency_records")?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

use super::sql::Dialect;

/// The database clock in ms since the epoch, to the µs (`extract` gives a numeric); a cast to
/// bigint alone would round it to the nearest millisecond, half a millisecond early either way.
macro_rules! clock_ms {
    () => {
        "extract(epoch from clock_timestamp()) * 1000"
    };
}

const POSTGRES: Dialect = Dialect {
    begin_migration: "BEGIN",
    now_ms: concat!("floor(", clock_ms!(), ")::bigint"),
    from_ms: concat!("ceil(", clock_ms!(), ")::bigint"),
    next_counter: |t| format!("nextval('{t}_counter')"),
    ddl: |t| {
        vec![
            // `CREATE … IF NOT EXISTS` races with itself: instances that start together and
            // migrate at once take turns on a lock held until the migration commits.
            format!("SELECT pg_advisory_xact_lock(hashtext('idempotent.migrate.{t}'))"),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, state BIGINT NOT NULL, \
                 fingerprint BYTEA NOT NULL, nonce BYTEA NOT NULL, counter BIGINT NOT NULL, \
                 expires_at BIGINT NOT NULL, response BYTEA)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {t}_expires_at ON {t} (expires_at)"),
            format!("CREATE SEQUENCE IF NOT EXISTS {t}_counter"),
            format!("CREATE TABLE IF NOT EXISTS {t}_schema (version BIGINT NOT NULL)"),
            format!(
                "INSERT INTO {t}_schema (version) SELECT {} \
                 WHERE NOT EXISTS (SELECT 1 FROM {t}_schema)",
                super::sql::SCHEMA_VERSION
            ),
        ]
    },
};

sql_store! {
    /// An [`IdempotencyStore`](crate::IdempotencyStore) and
    /// [`TransactionalStore`](crate::store::TransactionalStore) on the application's
    /// PostgreSQL pool; see the [module docs](self) for its guarantees. Cheap to clone.
    ///
    /// ```no_run
    /// use idempotent_runtime::{Error, Idempotent, IdempotencyKey, PostgresStore};
    ///
    /// # async fn create(pool: sqlx::PgPool) -> Result<(), Error> {
    /// let store = PostgresStore::new(pool);
    /// store.migrate().await?;
    /// let key = IdempotencyKey::new("signup-7f3a")?;
    /// let id: i64 = Idempotent::new("users.create")
    ///     .run_in_transaction(&store, &key, &"ada@example.com", |tx| Box::pin(async move {
    ///         let row: (i64,) = sqlx::query_as("INSERT INTO users (email) VALUES ($1) RETURNING id")
    ///             .bind("ada@example.com")
    ///             .fetch_one(&mut **tx)
    ///             .await
    ///             .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    ///         Ok::<i64, Error>(row.0)
    ///     }))
    ///     .await?;
    /// # let _ = id;
    /// # Ok(())
    /// # }
    /// ```
    name: PostgresStore,
    database: sqlx::Postgres,
    pool: sqlx::PgPool,
    kind: "postgres",
    dialect: POSTGRES,
}
