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

/// The machine's clock in whole ms since the epoch, rounded down by SQLite.
macro_rules! clock_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

const SQLITE: Dialect = Dialect {
    // Takes the write lock at once: a deferred transaction whose DDL upgrades its read lock
    // would fail with "database is locked" beside another migration, rather than wait.
    begin_migration: "BEGIN IMMEDIATE",
    now_ms: clock_ms!(),
    // The true time may be up to a millisecond past the reading.
    from_ms: concat!("(", clock_ms!(), " + 1)"),
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

#[cfg(test)]
mod tests {
    use super::SQLITE;

    /// SQLite's clock reads whole milliseconds, rounded down (`unixepoch('subsec')` is a float
    /// of them): `now_ms` is that reading exactly, for every millisecond of a second, and a
    /// deadline counts from the millisecond after it, since the true time may be up to a
    /// millisecond past the reading.
    #[tokio::test]
    async fn the_clock_reads_whole_milliseconds_and_deadlines_count_from_the_next() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        let at = |ms: u32, expression: &str| {
            expression.replace(
                "unixepoch('subsec')",
                &format!("unixepoch('2026-12-02 10:00:00.{ms:03}', 'subsec')"),
            )
        };
        let base: i64 = 1_796_205_600_000; // 2026-12-02 10:00:00 UTC, in ms
        for ms in 0..1000 {
            let sql = format!(
                "SELECT {}, {}",
                at(ms, SQLITE.now_ms),
                at(ms, SQLITE.from_ms)
            );
            let (now, from): (i64, i64) = sqlx::query_as(&sql)
                .fetch_one(&pool)
                .await
                .expect("evaluated");
            assert_eq!(
                (now, from),
                (base + i64::from(ms), base + i64::from(ms) + 1),
                "at .{ms:03}"
            );
        }
    }
}
