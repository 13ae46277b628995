//! The `ValkeyStore` rows of DESIGN §7 against their ceiling and the peer crate (`idempotent`
//! 0.3.0's `ValkeyStore`), in the same run, on one `redis-server` this benchmark starts
//! itself: `cargo bench -p idempotent-benches --bench valkey_store`.
//!
//! Ceiling: redis-rs running a minimal EVALSHA script (HGET + HSET + PEXPIRE) over one
//! multiplexed connection with the same number of tasks. One claim+complete is two scripts,
//! so its target is half the ceiling's calls/s; a claim or a replay is one script. With client
//! and server on the same two cores, the server's CPU per script call decides the rate: it is
//! printed for ours and the peer (`INFO commandstats`, `usec_per_call` of `EVALSHA`) — wall
//! time inside the server, which moves with the machine; `--bench valkey_server_cost` counts
//! the server's instructions per call instead, which repeat.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use idempotent_benches::{
    BODY, Targets, body, check, compare, compare_with_peer, fingerprint, keys, peer_workload,
    replay, timed,
};
use idempotent_runtime::store::valkey::DEFAULT_CONNECTIONS;
use idempotent_runtime::{
    IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, ValkeyStore,
};
use idempotent_tests::redis_server::RedisServer;
use peer::store::IdempotencyStore as _;
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
    idempotent_benches::claim_complete(store, i, key, body(BODY, i), TTL).await;
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
    // Format v2: version, state, then the claim's id — fingerprint (16), nonce (16) — which
    // is all the claim sends (the script writes version and state before it, the counter after).
    let mut record = vec![2u8, b'c'];
    record.extend_from_slice(&fingerprint(i).to_bytes());
    record.extend_from_slice(&(i as u128 + 1).to_be_bytes());
    let k = format!("bare:{{{key}}}");
    let claimed: redis::RedisResult<redis::Value> = CLAIM
        .key(&k)
        .arg(&record[2..])
        .arg(30_000)
        .invoke_async(connection)
        .await;
    let Ok(redis::Value::Int(counter)) = claimed else {
        return check(false);
    };
    record.extend_from_slice(&counter.to_be_bytes());
    record.extend_from_slice(&body(BODY + 10, i));
    let completed: redis::RedisResult<redis::Value> = COMPLETE
        .key(&k)
        .arg(600_000)
        .arg(record.as_slice())
        .invoke_async(connection)
        .await;
    check(completed.is_ok_and(|reply| status_is(&reply, "ok")));
}

type PeerStore = peer::store::valkey::ValkeyStore;

/// The peer's claim and completion, checked the same way.
async fn peer_claim_complete(store: &PeerStore, i: usize, key: &peer::IdempotencyKey) {
    peer_workload::claim_complete(store, i, key, body(BODY, i), TTL).await;
}

/// The server CPU per `EVALSHA` while `workload` runs once: (calls, µs per call).
fn server_cost(
    rt: &Runtime,
    connection: &MultiplexedConnection,
    workload: impl FnOnce() -> (usize, Duration),
) -> (u64, f64) {
    let mut connection = connection.clone();
    rt.block_on(async {
        let _: redis::RedisResult<()> = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut connection)
            .await;
    });
    let _ = workload();
    let info: String = rt
        .block_on(async {
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut connection)
                .await
        })
        .unwrap_or_default();
    let stat = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
        .unwrap_or_default();
    let field = |name: &str| {
        stat.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("0")
            .to_owned()
    };
    (
        field("calls").parse().unwrap_or(0),
        field("usec_per_call").parse().unwrap_or(f64::NAN),
    )
}

/// The stores under test: ours, the peer's, and a raw connection for the ceiling and stats.
struct Stores {
    ours: ValkeyStore,
    /// Ours with the local cache of completed records.
    cached: ValkeyStore,
    /// Ours on one connection, as the peer and the ceiling are.
    single: ValkeyStore,
    peer: Arc<PeerStore>,
    connection: MultiplexedConnection,
}

impl Stores {
    fn ours_claim_complete(&self, rt: &Runtime) -> (usize, Duration) {
        Self::claim_complete_on(rt, &self.ours)
    }

    fn claim_complete_on(rt: &Runtime, store: &ValkeyStore) -> (usize, Duration) {
        let pool = Arc::new(keys(OPS));
        let store = store.clone();
        run(rt, OPS, move |i| {
            let (store, pool) = (store.clone(), pool.clone());
            async move { claim_complete(&store, i, &pool[i]).await }
        })
    }

    fn peer_claim_complete(&self, rt: &Runtime) -> (usize, Duration) {
        let pool = Arc::new(peer_workload::keys(&keys(OPS)));
        let store = self.peer.clone();
        run(rt, OPS, move |i| {
            let (store, pool) = (store.clone(), pool.clone());
            async move { peer_claim_complete(&store, i, &pool[i]).await }
        })
    }

    fn ours_claim(&self, rt: &Runtime) -> (usize, Duration) {
        let pool = Arc::new(keys(OPS));
        let store = self.ours.clone();
        run(rt, OPS, move |i| {
            let (store, pool) = (store.clone(), pool.clone());
            async move {
                let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(TTL);
                let claimed = store.try_insert(&pool[i], entry).await;
                check(matches!(claimed, Ok(InsertResult::Claimed { .. })));
            }
        })
    }

    fn peer_claim(&self, rt: &Runtime) -> (usize, Duration) {
        let pool = Arc::new(peer_workload::keys(&keys(OPS)));
        let store = self.peer.clone();
        run(rt, OPS, move |i| {
            let (store, pool) = (store.clone(), pool.clone());
            async move {
                let entry = peer::IdempotencyEntry::new(peer_workload::fingerprint(i), TTL);
                let claimed = store.try_insert(&pool[i], entry).await;
                check(matches!(
                    claimed,
                    Ok(peer::store::InsertResult::Claimed { .. })
                ));
            }
        })
    }
}

fn claim_rows(rt: &Runtime, stores: &Stores) {
    let connection = &stores.connection;
    compare_with_peer(
        "claim+complete (2 scripts) vs ceiling calls",
        REPS,
        Targets {
            ceiling: 0.50,
            peer: 1.1,
        },
        || stores.ours_claim_complete(rt),
        || stores.peer_claim_complete(rt),
        || ceiling(rt, connection, OPS),
    );
    compare_with_peer(
        "  the same, ours on one connection",
        REPS,
        Targets {
            ceiling: 0.50,
            peer: 1.0,
        },
        || Stores::claim_complete_on(rt, &stores.single),
        || stores.peer_claim_complete(rt),
        || ceiling(rt, connection, OPS),
    );
    compare_with_peer(
        "claim only (1 script) vs ceiling calls",
        REPS,
        Targets {
            ceiling: 0.90,
            peer: 1.1,
        },
        || stores.ours_claim(rt),
        || stores.peer_claim(rt),
        || ceiling(rt, connection, OPS),
    );
    compare(
        "  (our 2 scripts, bare redis-rs, no store client)",
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
    let (ours_calls, ours_cost) = server_cost(rt, connection, || stores.ours_claim_complete(rt));
    let (peer_calls, peer_cost) = server_cost(rt, connection, || stores.peer_claim_complete(rt));
    let (ours_claims, ours_claim) = server_cost(rt, connection, || stores.ours_claim(rt));
    let (peer_claims, peer_claim) = server_cost(rt, connection, || stores.peer_claim(rt));
    println!(
        "server time per script call (EVALSHA usec_per_call; instructions: --bench valkey_server_cost): claim+complete ours {ours_cost:.2} µs ({ours_calls} calls), peer {peer_cost:.2} µs ({peer_calls}); claim ours {ours_claim:.2} µs ({ours_claims}), peer {peer_claim:.2} µs ({peer_claims})"
    );
}

fn replay_rows(rt: &Runtime, stores: &Stores) {
    for (label, distinct) in [("100k keys", 100_000), ("hot key", 1)] {
        let ours_pool = keys(distinct);
        let peer_pool = peer_workload::keys(&ours_pool);
        rt.block_on(async {
            for (i, (k, p)) in ours_pool.iter().zip(&peer_pool).enumerate() {
                claim_complete(&stores.ours, i, k).await;
                peer_claim_complete(&stores.peer, i, p).await;
            }
        });
        let (ours_pool, peer_pool) = (Arc::new(ours_pool), Arc::new(peer_pool));
        let ours = |store: &ValkeyStore| {
            let (store, pool) = (store.clone(), ours_pool.clone());
            run(rt, OPS, move |i| {
                let (store, pool) = (store.clone(), pool.clone());
                async move {
                    let k = i % pool.len();
                    replay(&store, k, &pool[k], TTL).await;
                }
            })
        };
        let peer = || {
            let (store, pool) = (stores.peer.clone(), peer_pool.clone());
            run(rt, OPS, move |i| {
                let (store, pool) = (store.clone(), pool.clone());
                async move {
                    let k = i % pool.len();
                    peer_workload::replay(&*store, k, &pool[k], TTL).await;
                }
            })
        };
        compare_with_peer(
            &format!("replay (1 script), {label} vs ceiling calls"),
            REPS,
            Targets {
                ceiling: 0.90,
                peer: 1.1,
            },
            || ours(&stores.ours),
            peer,
            || ceiling(rt, &stores.connection, OPS),
        );
        compare_with_peer(
            &format!("replay from the local cache, {label}"),
            REPS,
            Targets {
                ceiling: 0.0,
                peer: 10.0,
            },
            || ours(&stores.cached),
            peer,
            || ceiling(rt, &stores.connection, OPS),
        );
    }
}

fn main() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stores = rt.block_on(async {
        let ours = ValkeyStore::connect(&server.url()).await.expect("store");
        let cached = ValkeyStore::builder()
            .url(server.url())
            .local_cache(200_000, 512 << 20)
            .connect()
            .await
            .expect("cached store");
        let client = redis::Client::open(server.url()).expect("client");
        let peer = Arc::new(PeerStore::new(client.clone()).await.expect("peer store"));
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let single = ValkeyStore::builder()
            .url(server.url())
            .connections(1)
            .connect()
            .await
            .expect("store on one connection");
        Stores {
            ours,
            cached,
            single,
            peer,
            connection,
        }
    });
    println!(
        "ValkeyStore (its default {DEFAULT_CONNECTIONS} multiplexed connections) vs the peer's store and redis-rs EVALSHA (HGET+HSET+PEXPIRE), one multiplexed connection each; {TASKS} tasks, medians of {REPS}"
    );
    claim_rows(&rt, &stores);
    replay_rows(&rt, &stores);
    // Stopped before a failed check exits the process, which would skip its `Drop`.
    drop(stores);
    drop(server);
    idempotent_benches::exit_on_failed_checks();
}
