//! SQL stores beside their ceilings, in one run (DESIGN §7, issue "SQL stores"):
//! - claim+complete through the store vs the same two statements issued bare through sqlx on
//!   the same pool (target >= 80%);
//! - transactional mode (claim, the handler's INSERT, the fenced completion, COMMIT) vs the
//!   handler's own transaction without idempotency (INSERT + COMMIT): the ratio is reported.
//!
//! PostgreSQL: a private server this benchmark starts (fsync off), 64 tasks; SQLite: a
//! temporary file, 8 tasks. Every timed operation's outcome is counted outside the timing; the
//! benchmark exits non-zero when one failed.
//!
//! `cargo bench -p idempotent-benches --bench sql_store`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idempotent_benches::{BODY, body, check, compare, fingerprint, keys};
use idempotent_runtime::{
    CachedResponse, Error, IdempotencyEntry, IdempotencyKey, IdempotencyStore, Idempotent,
    InsertResult, PostgresStore, SqliteStore,
};
use idempotent_tests::postgres_server::PostgresServer;

const REPS: usize = 3;

/// Runs `op(i)` for `ops` indices over `tasks` tasks; returns (ops, elapsed).
async fn closed_loop<F, Fut>(tasks: usize, ops: usize, op: F) -> (usize, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (op, next) = (op.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut oks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    break oks;
                }
                oks.push(op(i).await);
            }
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.extend(handle.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    check(results.len() == ops);
    results.into_iter().for_each(check);
    (ops, elapsed)
}

/// Claim + complete through the store, on fresh keys.
async fn store_round(
    store: impl IdempotencyStore + Clone + 'static,
    tasks: usize,
    ops: usize,
) -> (usize, Duration) {
    let keys = Arc::new(keys(ops));
    closed_loop(tasks, ops, move |i| {
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(Duration::from_mins(10));
            let Ok(InsertResult::Claimed {
                fencing_token,
                entry,
            }) = store.try_insert(&keys[i], entry).await
            else {
                return false;
            };
            let done = entry.complete(CachedResponse::from(body(BODY, i)));
            store.complete(&keys[i], done, fencing_token).await.is_ok()
        }
    })
    .await
}

/// The claim and the completion as the stores issue them, for the bare ceiling.
fn statements(now: &str, next_counter: &str) -> (String, String) {
    let t = "idempotency_records";
    (
        format!(
            "INSERT INTO {t} (key, state, fingerprint, nonce, counter, expires_at, response) \
             VALUES ($1, 0, $2, $3, {next_counter}, {now} + $4, NULL) \
             ON CONFLICT (key) DO UPDATE SET state = 0, fingerprint = excluded.fingerprint, \
             nonce = excluded.nonce, counter = excluded.counter, \
             expires_at = excluded.expires_at, response = NULL \
             WHERE {t}.expires_at <= {now} RETURNING counter"
        ),
        format!(
            "UPDATE {t} SET state = $4, response = $5, expires_at = {now} + $6 \
             WHERE key = $1 AND nonce = $2 AND counter = $3 AND fingerprint = $7 \
             AND state = 0 AND expires_at > {now}"
        ),
    )
}

/// The ceilings and the transactional row, for one sqlx database.
macro_rules! rows_for {
    ($bare:ident, $bare_tx:ident, $transactional:ident, $pool:ty, $store:ty, $now:expr, $next:expr) => {
        /// The claim and completion statements issued bare on the pool.
        async fn $bare(pool: &$pool, tasks: usize, ops: usize) -> (usize, Duration) {
            let (claim, complete) = statements($now, $next);
            let (claim, complete) = (Arc::new(claim), Arc::new(complete));
            let (pool, keys) = (pool.clone(), Arc::new(keys(ops)));
            closed_loop(tasks, ops, move |i| {
                let (pool, keys, claim, complete) =
                    (pool.clone(), keys.clone(), claim.clone(), complete.clone());
                async move {
                    let key = format!("bare-{}", keys[i]);
                    let fp = fingerprint(i).to_bytes().to_vec();
                    let nonce = vec![7u8; 16];
                    let counter: Result<i64, _> = sqlx::query_scalar(&claim)
                        .bind(&key)
                        .bind(&fp)
                        .bind(&nonce)
                        .bind(30_000_i64)
                        .fetch_one(&pool)
                        .await;
                    let Ok(counter) = counter else { return false };
                    let done = sqlx::query(&complete)
                        .bind(&key)
                        .bind(&nonce)
                        .bind(counter)
                        .bind(1_i64)
                        .bind(body(BODY, i).to_vec())
                        .bind(600_000_i64)
                        .bind(&fp)
                        .execute(&pool)
                        .await;
                    done.is_ok_and(|d| d.rows_affected() == 1)
                }
            })
            .await
        }

        /// The handler's own transaction without idempotency: one INSERT and COMMIT.
        async fn $bare_tx(pool: &$pool, tasks: usize, ops: usize) -> (usize, Duration) {
            let pool = pool.clone();
            closed_loop(tasks, ops, move |i| {
                let pool = pool.clone();
                async move {
                    let Ok(mut tx) = pool.begin().await else {
                        return false;
                    };
                    let inserted = sqlx::query("INSERT INTO effects (k, v) VALUES ($1, $2)")
                        .bind(format!("bare-tx-{i}"))
                        .bind(body(BODY, i).to_vec())
                        .execute(&mut *tx)
                        .await;
                    inserted.is_ok() && tx.commit().await.is_ok()
                }
            })
            .await
        }

        /// Transactional mode: claim, the same INSERT on the handler's transaction, the
        /// fenced completion in it, COMMIT.
        async fn $transactional(store: &$store, tasks: usize, ops: usize) -> (usize, Duration) {
            let (store, keys) = (store.clone(), Arc::new(keys(ops)));
            closed_loop(tasks, ops, move |i| {
                let (store, keys) = (store.clone(), keys.clone());
                async move {
                    let key: IdempotencyKey = keys[i].clone();
                    let result = Idempotent::new("bench.tx")
                        .ttl(Duration::from_mins(10))
                        .run_in_transaction(&store, &key, &i, |tx| {
                            Box::pin(async move {
                                sqlx::query("INSERT INTO effects (k, v) VALUES ($1, $2)")
                                    .bind(format!("tx-{i}"))
                                    .bind(body(BODY, i).to_vec())
                                    .execute(&mut **tx)
                                    .await
                                    .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
                                Ok::<usize, Error>(i)
                            })
                        })
                        .await;
                    result.is_ok_and(|v| v == i)
                }
            })
            .await
        }
    };
}

rows_for!(
    pg_bare_statements,
    pg_bare_transaction,
    pg_transactional,
    sqlx::PgPool,
    PostgresStore,
    "(extract(epoch from clock_timestamp()) * 1000)::bigint",
    "nextval('idempotency_records_counter')"
);
rows_for!(
    sqlite_bare_statements,
    sqlite_bare_transaction,
    sqlite_transactional,
    sqlx::SqlitePool,
    SqliteStore,
    "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    "(SELECT value + 1 FROM idempotency_records_counter WHERE id = 1)"
);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(postgres_rows());
    rt.block_on(sqlite_rows());
    idempotent_benches::exit_on_failed_checks();
}

async fn postgres_rows() {
    let server = PostgresServer::start();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(64)
        .connect(&server.url())
        .await
        .expect("connect");
    sqlx::query("CREATE TABLE effects (k TEXT NOT NULL, v BYTEA NOT NULL)")
        .execute(&pool)
        .await
        .expect("effects");
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let ops = 3_000;
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..REPS {
        bare.push(pg_bare_statements(&pool, 64, ops).await);
        ours.push(store_round(store.clone(), 64, ops).await);
    }
    report(
        "postgres claim+complete, 64 tasks (vs the 2 statements bare)",
        0.8,
        &ours,
        &bare,
    );
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        bare.push(pg_bare_transaction(&pool, 64, ops).await);
        ours.push(pg_transactional(&store, 64, ops).await);
    }
    report(
        "postgres transactional vs INSERT+COMMIT, 64 tasks",
        0.0,
        &ours,
        &bare,
    );
}

async fn sqlite_rows() {
    let dir = std::env::temp_dir().join(format!("idempotent-bench-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("bench.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .expect("open");
    sqlx::query("CREATE TABLE effects (k TEXT NOT NULL, v BLOB NOT NULL)")
        .execute(&pool)
        .await
        .expect("effects");
    let store = SqliteStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let ops = 2_000;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        bare.push(sqlite_bare_statements(&pool, 8, ops).await);
        ours.push(store_round(store.clone(), 8, ops).await);
    }
    report(
        "sqlite claim+complete, 8 tasks (vs the 2 statements bare)",
        0.8,
        &ours,
        &bare,
    );
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        bare.push(sqlite_bare_transaction(&pool, 8, ops).await);
        ours.push(sqlite_transactional(&store, 8, ops).await);
    }
    report(
        "sqlite transactional vs INSERT+COMMIT, 8 tasks",
        0.0,
        &ours,
        &bare,
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Prints the medians of the measured runs beside each other (`compare` takes closures that
/// run inline; these ran already, alternately).
fn report(name: &str, target: f64, ours: &[(usize, Duration)], ceiling: &[(usize, Duration)]) {
    let mut i = 0;
    let mut j = 0;
    compare(
        name,
        ours.len(),
        target,
        || {
            i += 1;
            ours[i - 1]
        },
        || {
            j += 1;
            ceiling[j - 1]
        },
    );
}
