//! Transactional mode on SQLite (temporary files) and a private PostgreSQL server: the
//! handler's writes and the idempotency record commit together or not at all — a handler
//! error, a zombie whose lease lapsed (both orders) and a SIGKILL mid-handler commit nothing,
//! and the retry runs once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use idempotent_runtime::{
    Error, IdempotencyKey, IdempotencyStore, Idempotent, PostgresStore, SqliteStore, storage_key,
};
use idempotent_tests::postgres_server::PostgresServer;
use idempotent_tests::sql::TempDir;

async fn sqlite_store() -> (SqliteStore, sqlx::SqlitePool, TempDir) {
    let (pool, dir) = idempotent_tests::sql::sqlite("tx").await;
    sqlx::query("CREATE TABLE users (name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("users");
    let store = SqliteStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    (store, pool, dir)
}

async fn postgres_store(server: &PostgresServer) -> (PostgresStore, sqlx::PgPool) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&server.url())
        .await
        .expect("connect");
    sqlx::query("CREATE TABLE IF NOT EXISTS users (name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("users");
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    (store, pool)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("valid key")
}

fn db_error(e: sqlx::Error) -> Error {
    Error::StoreUnavailable(Box::new(e))
}

async fn rows<'e, E: sqlx::Executor<'e>>(executor: E) -> i64
where
    for<'r> (i64,): sqlx::FromRow<'r, <E::Database as sqlx::Database>::Row>,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
{
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(executor)
        .await
        .expect("count");
    n
}

#[tokio::test]
async fn sqlite_commits_the_row_and_the_record_together_and_rolls_back_an_error() {
    let (store, pool, dir) = sqlite_store().await;
    let op = Idempotent::new("users.create");
    let k = key("signup-1");
    // A handler error: its insert rolls back, the key is free.
    let failed = op
        .run_in_transaction(&store, &k, &"ada", |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO users VALUES ('ada')")
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Err::<u64, Error>(Error::NotReplayable)
            })
        })
        .await;
    assert!(matches!(failed, Err(Error::NotReplayable)), "{failed:?}");
    assert_eq!(rows(&pool).await, 0, "the error rolled the insert back");
    assert!(
        store
            .get(&storage_key("users.create", None, &k))
            .await
            .expect("get")
            .is_none()
    );
    // The corrected retry runs once; every later retry replays.
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let runs = runs.clone();
        let id = op
            .run_in_transaction(&store, &k, &"ada", |tx| {
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    sqlx::query("INSERT INTO users VALUES ('ada')")
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                    Ok::<u64, Error>(7)
                })
            })
            .await;
        assert_eq!(id.ok(), Some(7));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(rows(&pool).await, 1);
    drop(dir);
}

/// The holder that will stall: on its own thread and runtime (with its own pool: connections
/// belong to the runtime that opened them), it claims `k`, inserts its row, says so on
/// `started`, then blocks its whole runtime until `wake` — no heartbeat runs meanwhile.
fn spawn_zombie(
    url: String,
    k: IdempotencyKey,
    lease: Duration,
    started_tx: mpsc::Sender<()>,
    wake_rx: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Result<String, Error>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Its own pool: connections belong to the runtime that opened them.
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let store = PostgresStore::new(pool);
            Idempotent::new("users.create")
                .lease(lease)
                .run_in_transaction(&store, &k, &"ada", |tx| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO users VALUES ('zombie')")
                            .execute(&mut **tx)
                            .await
                            .map_err(db_error)?;
                        started_tx.send(()).expect("started");
                        wake_rx.recv().expect("woken"); // the stall
                        Ok::<String, Error>("zombie".to_owned())
                    })
                })
                .await
        })
    })
}

/// The zombie: a holder inserts its row, then its whole runtime stalls (a GC pause, a
/// SIGSTOP) past its lease. `winner_first`: a second request takes the key over and commits
/// before the zombie wakes; otherwise the zombie wakes first and finds its lease lapsed. Either
/// way the zombie's transaction rolls back and exactly one row exists.
fn zombie_commits_nothing(winner_first: bool) {
    let server = PostgresServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (store, pool) = rt.block_on(postgres_store(&server));
    let k = key("zombie");
    let lease = Duration::from_millis(300);
    let (started_tx, started) = mpsc::channel();
    let (wake, wake_rx) = mpsc::channel::<()>();
    let zombie = spawn_zombie(server.url(), k.clone(), lease, started_tx, wake_rx);
    started.recv().expect("the zombie inserted");
    // The stall outlasts the lease on the database clock: wait until the record lapsed.
    let stored = storage_key("users.create", None, &k);
    rt.block_on(async {
        for _ in 0..100 {
            if store.get(&stored).await.expect("get").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the zombie's lease never lapsed");
    });
    let mut zombie = Some(zombie);
    let mut late = None;
    if !winner_first {
        // The zombie completes first: its fenced completion finds its lease lapsed.
        wake.send(()).expect("wake");
        late = zombie.take().map(|z| z.join().expect("zombie thread"));
    }
    let winner = rt.block_on(
        Idempotent::new("users.create")
            .lease(lease)
            .run_in_transaction(&store, &k, &"ada", |tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO users VALUES ('winner')")
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                    Ok::<String, Error>("winner".to_owned())
                })
            }),
    );
    if let Some(zombie) = zombie {
        // The winner committed first: the zombie's fenced completion matches no row.
        wake.send(()).expect("wake");
        late = Some(zombie.join().expect("zombie thread"));
    }
    assert_eq!(winner.ok().as_deref(), Some("winner"));
    let late = late.expect("the zombie finished");
    if winner_first {
        assert_eq!(late.ok().as_deref(), Some("winner"), "the winner's answer");
    } else {
        assert!(matches!(late, Err(Error::StaleFencingToken)), "{late:?}");
    }
    let names: Vec<(String,)> = rt
        .block_on(sqlx::query_as("SELECT name FROM users").fetch_all(&pool))
        .expect("rows");
    assert_eq!(
        names,
        [("winner".to_owned(),)],
        "exactly one row, the winner's"
    );
}

#[test]
fn a_zombie_taken_over_by_a_winner_commits_nothing() {
    zombie_commits_nothing(true);
}

#[test]
fn a_zombie_that_wakes_after_its_lease_commits_nothing() {
    zombie_commits_nothing(false);
}

#[tokio::test]
async fn a_worker_killed_after_its_insert_commits_nothing_and_the_retry_runs_once() {
    let server = PostgresServer::start();
    let (store, pool) = postgres_store(&server).await;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sql_worker"))
        .args([&server.url(), "killed-1", "500"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sql_worker");
    let stdout = worker.stdout.take().expect("stdout");
    let line = BufReader::new(stdout).lines().next();
    assert_eq!(line.and_then(Result::ok).as_deref(), Some("inserted"));
    worker.kill().expect("SIGKILL the worker");
    worker.wait().expect("reap");
    assert_eq!(rows(&pool).await, 0, "the killed transaction rolled back");
    let k = key("killed-1");
    let op = Idempotent::new("users.create").lease(Duration::from_millis(500));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut answer = None;
    for _ in 0..40 {
        let runs = runs.clone();
        let result = op
            .run_in_transaction(&store, &k, &"ada", |tx| {
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    sqlx::query("INSERT INTO users VALUES ('ada')")
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                    Ok::<u32, Error>(1)
                })
            })
            .await;
        match result {
            Ok(v) => {
                answer = Some(v);
                break;
            }
            // The dead worker's claim holds the key until its lease lapses.
            Err(Error::InFlight) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(answer, Some(1), "the retry ran after the lease");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(rows(&pool).await, 1, "exactly one row");
}
