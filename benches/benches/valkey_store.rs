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

use idempotent_benches::{BODY, body, check, compare, fingerprint, keys, timed};
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

/// One claim and its completion, each checked (a claim not taken or a completion refused
/// counts as a failed operation).
async fn claim_complete(store: &ValkeyStore, i: usize, key: &IdempotencyKey) {
    let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(TTL);
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry,
    }) = store.try_insert(key, entry).await
    else {
        check(false);
        return;
    };
    let done = entry.complete(CachedResponse::from(body(BODY, i)));
    check(store.complete(key, done, fencing_token).await.is_ok());
}

/// Whether a script's status reply is `expected` (a Lua string comes back as a bulk string).
fn status_is(reply: &redis::Value, expected: &str) -> bool {
    match reply {
        redis::Value::BulkString(bytes) => bytes == expected.as_bytes(),
        redis::Value::SimpleString(text) => text == expected,
        _ => false,
    }
}

fn ceiling(rt: &Runtime, connection: &MultiplexedConnection, n: usize) -> (usize, Duration) {
    let script = Arc::new(Script::new(CEILING));
    let pool = Arc::new(keys(n));
    let connection = connection.clone();
    run(rt, n, move |i| {
        let (script, pool, mut connection) = (script.clone(), pool.clone(), connection.clone());
        async move {
            let reply: redis::RedisResult<Option<Vec<u8>>> = script
                .key(format!("ceiling:{{{}}}", pool[i]))
                .arg(body(BODY, i).as_ref())
                .arg(600_000)
                .invoke_async(&mut connection)
                .await;
            check(reply.is_ok());
        }
    })
}

/// The store's own two scripts (with their prelude, as the store sends them) called directly:
/// splits the gap to the ceiling into server work (the scripts) and the store's client work.
/// Each reply is checked: the claim must be taken, the completion `ok`.
async fn bare_scripts(connection: &mut MultiplexedConnection, i: usize, key: &IdempotencyKey) {
    macro_rules! script {
        ($file:literal) => {
            LazyLock::new(|| {
                Script::new(concat!(
                    "#!lua\n",
                    include_str!("../../idempotent-runtime/src/store/valkey/prelude.lua"),
                    include_str!($file)
                ))
            })
        };
    }
    static CLAIM: LazyLock<Script> = script!("../../idempotent-runtime/src/store/valkey/claim.lua");
    static COMPLETE: LazyLock<Script> =
        script!("../../idempotent-runtime/src/store/valkey/complete.lua");
    // Format v2: version, state, fingerprint (16), nonce (16), counter (8, set by the claim).
    let mut record = vec![2u8, b'p'];
    record.extend_from_slice(&fingerprint(i).to_bytes());
    record.extend_from_slice(&(i as u128 + 1).to_be_bytes());
    record.extend_from_slice(&[0u8; 8]);
    let k = format!("bare:{{{key}}}");
    let claimed: redis::RedisResult<redis::Value> = CLAIM
        .key(&k)
        .arg(record.as_slice())
        .arg(30_000)
        .invoke_async(connection)
        .await;
    let counter = match &claimed {
        Ok(redis::Value::Array(reply)) if reply.len() == 2 && status_is(&reply[0], "claimed") => {
            match &reply[1] {
                redis::Value::BulkString(counter) if counter.len() == 8 => counter.clone(),
                _ => return check(false),
            }
        }
        _ => return check(false),
    };
    record[1] = b'c';
    record[34..42].copy_from_slice(&counter);
    record.extend_from_slice(&body(BODY + 10, i));
    let completed: redis::RedisResult<redis::Value> = COMPLETE
        .key(&k)
        .arg(600_000)
        .arg(record.as_slice())
        .invoke_async(connection)
        .await;
    check(completed.is_ok_and(|reply| status_is(&reply, "ok")));
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
                            check(
                                std::hint::black_box(done.response().map(CachedResponse::size))
                                    .is_some(),
                            );
                        }
                        _ => check(false),
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
    idempotent_benches::exit_on_failed_checks();
}
