//! The `MemoryStore` throughput rows of DESIGN §7, each beside its ceiling (a `DashMap` doing
//! the same work) and the peer crate (`idempotent` 0.3.0's `MemoryStore`), in the same run:
//! `cargo bench -p idempotent-benches --bench memory_store`. The memory row (a million
//! entries) is `--bench memory_footprint`: it needs a counting global allocator, which would
//! tax these rows by how much each side allocates.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use idempotent_benches::{
    BODY, BODY_LARGE, Targets, body, compare_with_peer, fingerprint, keys, peer_workload, replay,
    timed,
};
use idempotent_runtime::{Fingerprint, IdempotencyKey, MemoryStore};
use tokio::runtime::Runtime;

const TTL: Duration = Duration::from_mins(10);
const OPS: usize = 200_000;
const REPS: usize = 5;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time() // the peer's store sweeps on a tokio interval
        .build()
        .expect("runtime")
}

/// Splits `keys` over `tasks` tasks and runs `op` on each key in a closed loop.
fn run_tasks<K, F, Fut>(rt: &Runtime, keys: &Arc<Vec<K>>, tasks: usize, op: F) -> (usize, Duration)
where
    K: Clone + Send + Sync + 'static,
    F: Fn(usize, K) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = keys.len() / tasks;
    let ((), elapsed) = timed(|| {
        rt.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let (keys, op) = (keys.clone(), op.clone());
                    tokio::spawn(async move {
                        for i in t * per_task..(t + 1) * per_task {
                            op(i, keys[i].clone()).await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("task");
            }
        });
    });
    drop(op); // with the last handle on the store
    (per_task * tasks, elapsed)
}

/// Waits (at most 10 s) until no more than `tasks` tasks are left on `rt`.
fn settle(rt: &Runtime, tasks: usize) {
    let metrics = rt.metrics();
    rt.block_on(async {
        for _ in 0..10_000 {
            if metrics.num_alive_tasks() <= tasks {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// One claim and its completion with a `len`-byte body, checked.
async fn claim_complete(store: &MemoryStore, i: usize, key: &IdempotencyKey, len: usize) {
    idempotent_benches::claim_complete(store, i, key, body(len, i), TTL).await;
}

/// The peer's claim and completion, checked the same way.
async fn peer_claim_complete(store: &PeerStore, i: usize, key: &peer::IdempotencyKey, len: usize) {
    peer_workload::claim_complete(store, i, key, body(len, i), TTL).await;
}

type PeerStore = peer::store::memory::MemoryStore;

/// The peer's store (an actor task behind a channel), made on the runtime it spawns on.
fn peer_store(rt: &Runtime) -> Arc<PeerStore> {
    let _on = rt.enter();
    Arc::new(PeerStore::new(1024, Duration::from_mins(1)))
}

fn ceiling_insert_lookup(
    map: &DashMap<String, (Fingerprint, Bytes)>,
    i: usize,
    key: &IdempotencyKey,
    len: usize,
) {
    map.insert(key.as_str().to_owned(), (fingerprint(i), body(len, i)));
    std::hint::black_box(map.get(key.as_str()).map(|v| v.1.clone()));
}

fn claim_complete_rows(rt: &Runtime) {
    for (tasks, targets, len) in [
        (
            64,
            Targets {
                ceiling: 0.70,
                peer: 3.0,
            },
            BODY,
        ),
        (
            1,
            Targets {
                ceiling: 0.45,
                peer: 1.0,
            },
            BODY,
        ),
        (
            64,
            Targets {
                ceiling: 0.60,
                peer: 1.0,
            },
            BODY_LARGE,
        ),
    ] {
        let n = if len == BODY { OPS } else { OPS / 4 };
        compare_with_peer(
            &format!("claim+complete, {tasks} tasks, {len} B body"),
            REPS,
            targets,
            || {
                let store = MemoryStore::new();
                let keys = Arc::new(keys(n));
                run_tasks(rt, &keys, tasks, move |i, k| {
                    let store = store.clone();
                    async move { claim_complete(&store, i, &k, len).await }
                })
            },
            || {
                let idle = rt.metrics().num_alive_tasks();
                let store = peer_store(rt);
                let ours = keys(n);
                let keys = Arc::new(peer_workload::keys(&ours));
                let run = run_tasks(rt, &keys, tasks, move |i, k| {
                    let store = store.clone();
                    async move { peer_claim_complete(&store, i, &k, len).await }
                });
                // The peer's store is a task that frees its records once the last handle is
                // gone: let it finish before the next run is timed, or that run pays for
                // this one's teardown.
                settle(rt, idle);
                run
            },
            || {
                let map = Arc::new(DashMap::new());
                let keys = Arc::new(keys(n));
                run_tasks(rt, &keys, tasks, move |i, k| {
                    let map = map.clone();
                    async move { ceiling_insert_lookup(&map, i, &k, len) }
                })
            },
        );
    }
}

fn replay_rows(rt: &Runtime) {
    for (label, distinct) in [("hot key", 1), ("100k keys", 100_000)] {
        let pool = keys(distinct);
        let peer_pool = peer_workload::keys(&pool);
        let store = MemoryStore::new();
        let peer = peer_store(rt);
        let map: Arc<DashMap<String, (Fingerprint, Bytes)>> = Arc::new(DashMap::new());
        rt.block_on(async {
            for (i, (k, p)) in pool.iter().zip(&peer_pool).enumerate() {
                claim_complete(&store, i, k, BODY).await;
                peer_claim_complete(&peer, i, p, BODY).await;
                map.insert(k.as_str().to_owned(), (fingerprint(i), body(BODY, i)));
            }
        });
        let lookups: Arc<Vec<IdempotencyKey>> =
            Arc::new((0..OPS).map(|i| pool[i % distinct].clone()).collect());
        let peer_lookups: Arc<Vec<peer::IdempotencyKey>> =
            Arc::new((0..OPS).map(|i| peer_pool[i % distinct].clone()).collect());
        compare_with_peer(
            &format!("replay, 64 tasks, {label}"),
            REPS,
            Targets {
                ceiling: 0.60,
                peer: 1.0,
            },
            || {
                let store = store.clone();
                run_tasks(rt, &lookups, 64, move |i, k| {
                    let store = store.clone();
                    async move { replay(&store, i % distinct, &k, TTL).await }
                })
            },
            || {
                let peer = peer.clone();
                run_tasks(rt, &peer_lookups, 64, move |i, k| {
                    let peer = peer.clone();
                    async move { peer_workload::replay(&*peer, i % distinct, &k, TTL).await }
                })
            },
            || {
                let map = map.clone();
                run_tasks(rt, &lookups, 64, move |_, k| {
                    let map = map.clone();
                    async move {
                        std::hint::black_box(map.get(k.as_str()).map(|v| v.1.clone()));
                    }
                })
            },
        );
    }
}

fn main() {
    let rt = runtime();
    println!(
        "MemoryStore vs DashMap ceiling (2-worker runtime, {OPS} ops per run, median of {REPS})"
    );
    claim_complete_rows(&rt);
    replay_rows(&rt);
    idempotent_benches::exit_on_failed_checks();
}
