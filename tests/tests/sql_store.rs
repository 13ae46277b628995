//! `SqliteStore` (temporary files) and `PostgresStore` (a private server this file starts):
//! the conformance suite, the schema checks, corrupt rows, an unreachable database, and
//! transactional mode — the handler's writes and the record commit together or not at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::conformance::Harness;
use idempotent_runtime::{
    Error, IdempotencyKey, IdempotencyStore, Idempotent, PostgresStore, SqliteStore, storage_key,
};
use idempotent_tests::postgres_server::PostgresServer;
use idempotent_tests::sql::TempDir;
use sqlx::postgres::PgPoolOptions;

struct Sql<S>(S);

impl<S: IdempotencyStore> Harness for Sql<S> {
    type Store = S;

    fn store(&self) -> &S {
        &self.0
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await; // the database's clock
    }
}

async fn sqlite() -> (sqlx::SqlitePool, TempDir) {
    idempotent_tests::sql::sqlite("sqlite").await
}

async fn postgres(server: &PostgresServer) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&server.url())
        .await
        .expect("connect to the test server")
}

/// A SQLite store on its own temporary file, migrated twice (migrate is idempotent).
struct Sqlite(SqliteStore, #[allow(dead_code)] TempDir);

impl Sqlite {
    async fn new() -> Self {
        let (pool, dir) = sqlite().await;
        let store = SqliteStore::new(pool);
        store.migrate().await.expect("migrate");
        store.migrate().await.expect("migrate is idempotent");
        Self(store, dir)
    }
}

impl Harness for Sqlite {
    type Store = SqliteStore;

    fn store(&self) -> &SqliteStore {
        &self.0
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await; // the database's clock
    }
}

/// A PostgreSQL store on the server shared by this file's conformance tests.
async fn shared_postgres() -> Sql<PostgresStore> {
    let store = PostgresStore::new(postgres(PostgresServer::shared()).await);
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate is idempotent");
    Sql(store)
}

/// One test per conformance check.
mod conformance_sqlite {
    idempotent_runtime::conformance_tests!(super::Sqlite, super::Sqlite::new().await);
}

/// One test per conformance check, on one server shared by these tests.
mod conformance_postgres {
    idempotent_runtime::conformance_tests!(
        super::Sql<idempotent_runtime::PostgresStore>,
        super::shared_postgres().await
    );
}

/// Instances of one service start together and each migrates: concurrent migrations of a
/// fresh database all succeed (PostgreSQL's `CREATE … IF NOT EXISTS` alone races: two
/// sessions both create the table's type and one fails on `pg_type`'s unique index).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_a_fresh_database_all_succeed() {
    let server = PostgresServer::start();
    let admin = postgres(&server).await;
    for round in 0..5 {
        sqlx::query(&format!("CREATE DATABASE fresh_{round}"))
            .execute(&admin)
            .await
            .expect("create a fresh database");
        let url = format!(
            "{}/fresh_{round}",
            server.url().trim_end_matches("/postgres")
        );
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await
            .expect("connect");
        let migrations: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { PostgresStore::new(pool).migrate().await })
            })
            .collect();
        for (i, migration) in migrations.into_iter().enumerate() {
            let migrated = migration.await.expect("task");
            assert!(
                migrated.is_ok(),
                "round {round}, migration {i}: {migrated:?}"
            );
        }
    }
    let (pool, _dir) = sqlite().await;
    let migrations: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { SqliteStore::new(pool).migrate().await })
        })
        .collect();
    for migration in migrations {
        let migrated = migration.await.expect("task");
        assert!(migrated.is_ok(), "SQLite: {migrated:?}");
    }
}

#[tokio::test]
async fn a_missing_schema_is_a_clear_error_naming_migrate() {
    let (pool, _dir) = sqlite().await;
    let server = PostgresServer::start();
    let stores: [Arc<dyn IdempotencyStore>; 2] = [
        Arc::new(SqliteStore::new(pool)),
        Arc::new(PostgresStore::new(postgres(&server).await)),
    ];
    let key = IdempotencyKey::new("k").expect("key");
    for store in stores {
        let runs = AtomicUsize::new(0);
        let result = Idempotent::new("schema")
            .store(&*store)
            .run(&key, &1, async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(())
            })
            .await;
        match result {
            Err(Error::Misconfigured(message)) => {
                assert!(message.contains("migrate()"), "{message}");
            }
            other => panic!("{}: {other:?}", store.kind()),
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing ran");
    }
    assert!(matches!(
        SqliteStore::new(sqlite().await.0).table("users; drop table x"),
        Err(Error::Misconfigured(_))
    ));
}

#[tokio::test]
async fn a_row_that_cannot_be_decoded_is_corrupt_never_absent() {
    let server = PostgresServer::start();
    let pool = postgres(&server).await;
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let key = IdempotencyKey::new("garbage").expect("key");
    let stored = storage_key("garbage", None, &key);
    sqlx::query(
        "INSERT INTO idempotency_records VALUES ($1, 1, '\\x0102'::bytea, '\\x00'::bytea, 1, 9999999999999, NULL)",
    )
    .bind(stored.as_str())
    .execute(&pool)
    .await
    .expect("insert garbage");
    let runs = AtomicUsize::new(0);
    let result = Idempotent::new("garbage")
        .store(&store)
        .run(&key, &1, async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .await;
    assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
    assert!(matches!(store.get(&stored).await, Err(Error::Corrupt(_))));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

/// Retries `call` while the store is unavailable or the key in flight (a claim of the outage
/// that has not lapsed yet), for up to 10 s; its first answer.
async fn until_answered<F, Fut>(call: &F) -> Option<usize>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, Error>>,
{
    for _ in 0..100 {
        match call().await {
            Ok(n) => return Some(n),
            Err(Error::StoreUnavailable(_) | Error::InFlight) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    None
}

#[tokio::test]
async fn a_paused_database_is_503_and_recovers_without_a_duplicate() {
    let server = PostgresServer::start();
    let store = PostgresStore::new(postgres(&server).await).timeout(Duration::from_millis(300));
    store.migrate().await.expect("migrate");
    let key = IdempotencyKey::new("paused").expect("key");
    let runs = AtomicUsize::new(0);
    let op = Idempotent::new("charge").store(&store);
    let charge = || {
        op.run(&key, &1, async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, Error>(n)
        })
    };
    server.pause();
    let down = charge().await;
    assert!(matches!(&down, Err(Error::StoreUnavailable(_))), "{down:?}");
    server.resume();
    let first = until_answered(&charge).await;
    assert_eq!(first, Some(1), "ran once after the database came back");
    assert_eq!(charge().await.ok(), Some(1), "replayed");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_killed_database_is_503_and_works_again_after_restart() {
    let mut server = PostgresServer::start();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&server.url())
        .await
        .expect("connect");
    let store = PostgresStore::new(pool).timeout(Duration::from_millis(500));
    store.migrate().await.expect("migrate");
    let key = IdempotencyKey::new("killed").expect("key");
    let runs = AtomicUsize::new(0);
    let op = Idempotent::new("charge").store(&store);
    let charge = || {
        op.run(&key, &1, async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, Error>(n)
        })
    };
    server.kill();
    let down = charge().await;
    assert!(matches!(&down, Err(Error::StoreUnavailable(_))), "{down:?}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "nothing ran without a claim"
    );
    server.restart();
    let first = until_answered(&charge).await;
    assert_eq!(first, Some(1), "ran once after the restart");
    assert_eq!(charge().await.ok(), Some(1), "replayed");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn purging_deletes_only_expired_rows() {
    use idempotent_runtime::{CachedResponse, Fingerprint, IdempotencyEntry, InsertResult};

    let (pool, _dir) = sqlite().await;
    let store = SqliteStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let short = IdempotencyKey::new("short").expect("key");
    let long = IdempotencyKey::new("long").expect("key");
    let entry = |lease: u64| {
        IdempotencyEntry::new(Fingerprint::from_u128(1)).with_lease(Duration::from_millis(lease))
    };
    let claimed = store.try_insert(&short, entry(50)).await.expect("claim");
    assert!(matches!(claimed, InsertResult::Claimed { .. }));
    let InsertResult::Claimed {
        fencing_token,
        entry: e,
    } = store.try_insert(&long, entry(60_000)).await.expect("claim")
    else {
        panic!("not claimed");
    };
    store
        .complete(
            &long,
            e.complete(CachedResponse::from("kept")),
            fencing_token,
        )
        .await
        .expect("complete");
    // Past the short lease on the database's clock: polled, not guessed.
    for _ in 0..250 {
        if store.get(&short).await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.purge_expired(10).await.expect("purge"), 1);
    assert_eq!(store.purge_expired(10).await.expect("purge"), 0);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_records")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1, "the completed record stays");
    assert!(store.get(&long).await.expect("get").is_some());
}

/// A pool of one connection to `server` whose `clock_timestamp()` is a function of ours that
/// reads the setting `set_clock.now` (found ahead of `pg_catalog`'s on the search path): the
/// database clock, set by the test with [`set_clock`].
async fn pool_on_a_set_clock(server: &PostgresServer) -> sqlx::PgPool {
    let admin = postgres(server).await;
    for statement in [
        "CREATE SCHEMA IF NOT EXISTS set_clock",
        "CREATE OR REPLACE FUNCTION set_clock.clock_timestamp() RETURNS timestamptz \
         LANGUAGE sql VOLATILE AS $$ SELECT current_setting('set_clock.now')::timestamptz $$",
    ] {
        sqlx::query(statement)
            .execute(&admin)
            .await
            .expect("the set clock");
    }
    PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute(
                    "SET search_path = public, set_clock, pg_catalog; \
                     SET set_clock.now = '2026-12-02 10:00:00+00'",
                )
                .await
                .map(|_| ())
            })
        })
        .connect(&server.url())
        .await
        .expect("connect")
}

/// Sets the clock of [`pool_on_a_set_clock`] to `micros` after 2026-12-02 10:00:00 UTC.
async fn set_clock(pool: &sqlx::PgPool, micros: u64) {
    let at = format!(
        "2026-12-02 10:00:{:02}.{:06}+00",
        micros / 1_000_000,
        micros % 1_000_000
    );
    sqlx::query("SELECT set_config('set_clock.now', $1, false)")
        .bind(at)
        .execute(pool)
        .await
        .expect("clock set");
}

/// A lease or TTL granted between two whole milliseconds of the database clock still holds
/// until its whole length has passed (the holder's own deadline is when it sent the call plus
/// the lease; a row that died at the millisecond before would let another request take the
/// key over while the holder reads its claim as held). On PostgreSQL with its clock set by the
/// test: claim, renewal (for 150.5 ms) and completion granted at 10.9, 20.9 and 40.9 ms, each
/// live 1 µs before its end; the row dead a millisecond after its TTL.
#[tokio::test]
async fn postgres_leases_and_ttls_granted_between_milliseconds_hold_for_their_whole_length() {
    use idempotent_runtime::{CachedResponse, Fingerprint, IdempotencyEntry, InsertResult};

    let pool = pool_on_a_set_clock(PostgresServer::shared()).await;
    let store = PostgresStore::new(pool.clone())
        .table("sub_ms_records")
        .expect("table name");
    store.migrate().await.expect("migrate");
    let key = IdempotencyKey::new("sub-ms").expect("key");
    let (lease, ttl) = (150_000, 600_000); // µs
    let entry = || {
        IdempotencyEntry::new(Fingerprint::from_u128(7))
            .with_lease(Duration::from_micros(lease))
            .with_ttl(Duration::from_micros(ttl))
    };
    let held = || async {
        matches!(
            store.try_insert(&key, entry()).await,
            Ok(InsertResult::Exists(_))
        )
    };

    set_clock(&pool, 10_900).await;
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: claimed,
    }) = store.try_insert(&key, entry()).await
    else {
        panic!("not claimed");
    };
    set_clock(&pool, 10_900 + lease - 1).await;
    assert!(held().await, "the claim ended before its lease had passed");

    let longer = 150_500;
    set_clock(&pool, 20_900).await;
    store
        .renew(&key, fencing_token, Duration::from_micros(longer))
        .await
        .expect("renewed");
    set_clock(&pool, 20_900 + longer - 1).await;
    assert!(
        held().await,
        "the renewal ended before its lease had passed"
    );

    set_clock(&pool, 40_900).await;
    store
        .complete(
            &key,
            claimed.complete(CachedResponse::from("ok")),
            fencing_token,
        )
        .await
        .expect("completed");
    set_clock(&pool, 40_900 + ttl - 1).await;
    assert!(held().await, "the row expired before its TTL had passed");
    set_clock(&pool, 40_900 + ttl + 1_000).await;
    assert!(!held().await, "the row outlived its TTL");
}
