//! The `ValkeyStore` rows of DESIGN §7 against their ceiling, in the same run, on one
//! `redis-server` this benchmark starts itself: `cargo bench -p idempotent-benches --bench
//! valkey_store`.
//!
//! Ceiling: redis-rs running a minimal EVALSHA script (HGET + HSET + PEXPIRE) over one
//! multiplexed connection with the same number of tasks. One claim+complete is two scripts,
//! so its target is half the ceiling's calls/s; a replay is one script.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use idempotent_benches::{BODY, body, compare, fingerprint, keys, timed};
use idempotent_runtime::{
    CachedResponse, ExistingEntry, IdempotencyEntry, IdempotencyKey, IdempotencyStore,
    InsertResult, ValkeyStore,
};
use idempotent_tests::redis_server::RedisServer;
use redis::Script;
use redis::aio::MultiplexedConnection;
use tokio::runtime::Runtime;

const TTL: Duration = Duration::from_mins(10);
const OPS: usize = 20_000;
const TASKS: usize = 64;
const REPS: usize = 5;

const CEILING: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
";

/// Runs `op(i)` for `i in 0..n` on `tasks` tasks in a closed loop; returns (n, elapsed).
fn run<F, Fut>(rt: &Runtime, n: usize, op: F) -> (usize, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let ((), elapsed) = timed(|| {
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|t| {
                    let op = op.clone();
                    tokio::spawn(async move {
                        for i in (t..n).step_by(TASKS) {
                            op(i).await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("task");
            }
        });
    });
    (n, elapsed)
}

async fn claim_complete(store: &ValkeyStore, i: usize, key: &IdempotencyKey) {
    let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(TTL);
    match store.try_insert(key, entry).await {
        Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) => {
            let done = entry.complete(CachedResponse::from(body(BODY, i)));
            store
                .complete(key, done, fencing_token)
                .await
                .expect("complete");
        }
        other => panic!("unexpected claim result {other:?}"),
    }
}

fn ceiling(rt: &Runtime, connection: &MultiplexedConnection, n: usize) -> (usize, Duration) {
    let script = Arc::new(Script::new(CEILING));
    let pool = Arc::new(keys(n));
    let connection = connection.clone();
    run(rt, n, move |i| {
        let (script, pool, mut connection) = (script.clone(), pool.clone(), connection.clone());
        async move {
            let _: Option<Vec<u8>> = script
                .key(format!("ceiling:{{{}}}", pool[i]))
                .arg(body(BODY, i).as_ref())
                .arg(600_000)
                .invoke_async(&mut connection)
                .await
                .expect("ceiling script");
        }
    })
}

/// The store's own two scripts called directly: splits the gap to the ceiling into server
/// work (the scripts) and the store's client work.
async fn bare_scripts(connection: &mut MultiplexedConnection, i: usize, key: &IdempotencyKey) {
    static CLAIM: LazyLock<Script> = LazyLock::new(|| {
        Script::new(include_str!(
            "../../idempotent-runtime/src/store/valkey/claim.lua"
        ))
    });
    static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
        Script::new(include_str!(
            "../../idempotent-runtime/src/store/valkey/complete.lua"
        ))
    });
    let mut record = vec![1u8, b'p'];
    record.extend_from_slice(&[0u8; 40]);
    let k = format!("bare:{{{key}}}");
    let _: redis::Value = CLAIM
        .key(&k)
        .arg(record.as_slice())
        .arg(600_000)
        .arg(30_000)
        .invoke_async(connection)
        .await
        .expect("claim");
    record[1] = b'c';
    record.extend_from_slice(&body(BODY + 10, i));
    let _: redis::Value = COMPLETE
        .key(&k)
        .arg(600_000)
        .arg(record.as_slice())
        .invoke_async(connection)
        .await
        .expect("complete");
}

fn claim_complete_rows(rt: &Runtime, store: &ValkeyStore, connection: &MultiplexedConnection) {
    compare(
        "claim+complete (2 scripts) vs ceiling calls",
        REPS,
        0.50,
        || {
            let pool = Arc::new(keys(OPS));
            let store = store.clone();
            run(rt, OPS, move |i| {
                let (store, pool) = (store.clone(), pool.clone());
                async move { claim_complete(&store, i, &pool[i]).await }
            })
        },
        || ceiling(rt, connection, OPS),
    );
    compare(
        "  (the same 2 scripts, bare redis-rs, no store client)",
        REPS,
        0.50,
        || {
            let pool = Arc::new(keys(OPS));
            let connection = connection.clone();
            run(rt, OPS, move |i| {
                let (pool, mut connection) = (pool.clone(), connection.clone());
                async move { bare_scripts(&mut connection, i, &pool[i]).await }
            })
        },
        || ceiling(rt, connection, OPS),
    );
}

fn replay_row(rt: &Runtime, store: &ValkeyStore, connection: &MultiplexedConnection) {
    let hot = keys(1_000);
    rt.block_on(async {
        for (i, k) in hot.iter().enumerate() {
            claim_complete(store, i, k).await;
        }
    });
    let hot = Arc::new(hot);
    compare(
        "replay (1 script) vs ceiling calls",
        REPS,
        1.00,
        || {
            let (store, hot) = (store.clone(), hot.clone());
            run(rt, OPS, move |i| {
                let (store, hot) = (store.clone(), hot.clone());
                async move {
                    let k = i % hot.len();
                    let entry = IdempotencyEntry::new(fingerprint(k)).with_ttl(TTL);
                    match store.try_insert(&hot[k], entry).await {
                        Ok(InsertResult::Exists(ExistingEntry::Completed(done))) => {
                            std::hint::black_box(done.response().map(CachedResponse::size));
                        }
                        other => panic!("not a replay: {other:?}"),
                    }
                }
            })
        },
        || ceiling(rt, connection, OPS),
    );
}

fn main() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (store, connection) = rt.block_on(async {
        let store = ValkeyStore::connect(&server.url()).await.expect("store");
        let client = redis::Client::open(server.url()).expect("client");
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        (store, connection)
    });
    println!(
        "ValkeyStore vs redis-rs EVALSHA (HGET+HSET+PEXPIRE), {TASKS} tasks, one multiplexed connection each, medians of {REPS}"
    );
    claim_complete_rows(&rt, &store, &connection);
    replay_row(&rt, &store, &connection);
}
