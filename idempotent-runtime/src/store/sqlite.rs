//! [`SqliteStore`]: idempotency records in the application's SQLite database (sqlx), so a
//! completion can commit **in the handler's own transaction** (transactional mode:
//! [`Idempotent::run_in_transaction`](crate::Idempotent::run_in_transaction)). The embedded
//! choice: no server to run.
//!
//! The same table, statements and guarantees as [`PostgresStore`](crate::PostgresStore) (see
//! its module docs), on SQLite's terms: the clock is the machine's
//! (`unixepoch('subsec')`), and the fencing counter is a one-row table `{table}_counter`
//! that a trigger moves forward with every claim, inside the claim's own statement (it starts
//! at the wall clock in µs, so a new database keeps issuing larger counters). SQLite has one
//! writer at a time: claims and completions queue on its lock (sqlx's busy timeout, then the
//! store's), so a transaction a handler keeps open holds other writers back — keep handlers
//! short.
//!
//! ```
//! use idempotent_runtime::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let store = SqliteStore::new(pool);
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

use super::sql::Dialect;

const SQLITE: Dialect = Dialect {
    // Takes the write lock at once: a deferred transaction whose DDL upgrades its read lock
    // would fail with "database is locked" beside another migration, rather than wait.
    begin_migration: "BEGIN IMMEDIATE",
    now_ms: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    next_counter: |t| format!("(SELECT value + 1 FROM {t}_counter WHERE id = 1)"),
    ddl: |t| {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, state INTEGER NOT NULL, \
                 fingerprint BLOB NOT NULL, nonce BLOB NOT NULL, counter INTEGER NOT NULL, \
                 expires_at INTEGER NOT NULL, response BLOB)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {t}_expires_at ON {t} (expires_at)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {t}_counter \
                 (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)"
            ),
            format!(
                "INSERT OR IGNORE INTO {t}_counter (id, value) \
                 VALUES (1, CAST(unixepoch('subsec') * 1000000 AS INTEGER))"
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {t}_counter_on_insert AFTER INSERT ON {t} \
                 BEGIN UPDATE {t}_counter SET value = NEW.counter WHERE id = 1 AND value < NEW.counter; END"
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {t}_counter_on_update AFTER UPDATE OF counter ON {t} \
                 BEGIN UPDATE {t}_counter SET value = NEW.counter WHERE id = 1 AND value < NEW.counter; END"
            ),
            format!("CREATE TABLE IF NOT EXISTS {t}_schema (version INTEGER NOT NULL)"),
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
    /// [`TransactionalStore`](crate::store::TransactionalStore) on the application's SQLite
    /// pool; see the [module docs](self). Cheap to clone.
    ///
    /// ```
    /// use idempotent_runtime::{Error, Idempotent, IdempotencyKey, SqliteStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::query("CREATE TABLE users (email TEXT)").execute(&pool).await?;
    /// let store = SqliteStore::new(pool.clone());
    /// store.migrate().await?;
    /// let key = IdempotencyKey::new("signup-7f3a")?;
    /// for _ in 0..2 {
    ///     // The row and the record commit together; the retry replays.
    ///     Idempotent::new("users.create")
    ///         .run_in_transaction(&store, &key, &"ada@example.com", |tx| Box::pin(async move {
    ///             sqlx::query("INSERT INTO users (email) VALUES ($1)")
    ///                 .bind("ada@example.com")
    ///                 .execute(&mut **tx)
    ///                 .await
    ///                 .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    ///             Ok::<(), Error>(())
    ///         }))
    ///         .await?;
    /// }
    /// let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM users").fetch_one(&pool).await?;
    /// assert_eq!(rows, 1);
    /// # Ok(())
    /// # }
    /// ```
    name: SqliteStore,
    database: sqlx::Sqlite,
    pool: sqlx::SqlitePool,
    kind: "sqlite",
    dialect: SQLITE,
}
