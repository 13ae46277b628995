//! `MemoryStore`: the conformance suite, its capacity bound, expiry and concurrency.

use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::conformance::{self, Harness};
use idempotent_runtime::{
    CachedResponse, Error, ExistingEntry, Fingerprint, IdempotencyEntry, IdempotencyKey,
    IdempotencyStore, InsertResult, ManualClock, MemoryStore,
};

struct Memory {
    clock: Arc<ManualClock>,
    store: MemoryStore,
}

impl Memory {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        Self {
            store: MemoryStore::builder().clock(clock.clone()).build(),
            clock,
        }
    }
}

impl Harness for Memory {
    type Store = MemoryStore;

    fn store(&self) -> &MemoryStore {
        &self.store
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("valid test key")
}

fn entry(n: u128) -> IdempotencyEntry {
    IdempotencyEntry::new(Fingerprint::from_u128(n))
        .with_lease(Duration::from_secs(1))
        .with_ttl(Duration::from_secs(10))
}

async fn claim(store: &MemoryStore, k: &IdempotencyKey, n: u128) -> Result<InsertResult, Error> {
    store.try_insert(k, entry(n)).await
}

/// The same store behind `Arc<dyn IdempotencyStore>`: the forwarding impls conform too.
struct Dyn(Memory, Arc<dyn IdempotencyStore>);

impl Dyn {
    fn new() -> Self {
        let memory = Memory::new();
        let store: Arc<dyn IdempotencyStore> = Arc::new(memory.store.clone());
        Self(memory, store)
    }
}

impl Harness for Dyn {
    type Store = Arc<dyn IdempotencyStore>;

    fn store(&self) -> &Self::Store {
        &self.1
    }

    async fn advance(&self, by: Duration) {
        self.0.clock.advance(by);
    }
}

/// One test per conformance check.
mod conformance_memory {
    idempotent_runtime::conformance_tests!(super::Memory, super::Memory::new());
}

/// One test per conformance check, through a trait object.
mod conformance_memory_dyn {
    idempotent_runtime::conformance_tests!(super::Dyn, super::Dyn::new());
}

#[tokio::test]
async fn run_all_stops_at_nothing_on_a_conforming_store() {
    conformance::run_all(&Memory::new())
        .await
        .expect("conforms");
}

#[tokio::test]
async fn entry_bound_refuses_new_claims_and_never_evicts() {
    let store = MemoryStore::builder().max_entries(3).build();
    for i in 0..3 {
        assert!(matches!(
            claim(&store, &key(&format!("k{i}")), 1).await,
            Ok(InsertResult::Claimed { .. })
        ));
    }
    let refused = claim(&store, &key("k3"), 1).await;
    assert!(
        matches!(
            refused,
            Err(Error::CapacityExceeded {
                limit: "entries",
                max: 3
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.err().map(|e| e.to_string()).as_deref(),
        Some("idempotency store is full: entries limit of 3 reached")
    );
    for i in 0..3 {
        let found = claim(&store, &key(&format!("k{i}")), 1).await;
        assert!(
            matches!(
                found,
                Ok(InsertResult::Exists(ExistingEntry::Processing(_)))
            ),
            "k{i} was evicted"
        );
    }
    assert!(
        store.get(&key("k3")).await.expect("get").is_none(),
        "the refused claim wrote nothing"
    );
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn expired_records_free_capacity() {
    let clock = Arc::new(ManualClock::new());
    // One shard: which shard a key lands in is seeded per store, and with several the claim
    // of "b" could free capacity by sweeping only its own shard, leaving a dead record in
    // another (correct, but then two records are held: the count below was flaky).
    let store = MemoryStore::builder()
        .shards(1)
        .max_entries(2)
        .clock(clock.clone())
        .build();
    for i in 0..2 {
        assert!(matches!(
            claim(&store, &key(&format!("a{i}")), 1).await,
            Ok(InsertResult::Claimed { .. })
        ));
    }
    assert!(
        matches!(
            claim(&store, &key("b"), 1).await,
            Err(Error::CapacityExceeded {
                limit: "entries",
                max: 2
            })
        ),
        "full while both claims are live"
    );
    clock.advance(Duration::from_secs(2)); // both leases lapse
    assert!(matches!(
        claim(&store, &key("b"), 1).await,
        Ok(InsertResult::Claimed { .. })
    ));
    assert_eq!(store.len(), 1, "the sweep dropped both dead records");
}

#[tokio::test]
async fn byte_bound_counts_keys_and_results_and_refuses_oversized_completions() {
    let store = MemoryStore::builder().max_bytes(100).build();
    let k = key("0123456789"); // 10 bytes
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: e,
    }) = claim(&store, &k, 1).await
    else {
        panic!("claim");
    };
    assert_eq!(store.payload_bytes(), 10);
    let too_big = e.clone().complete(CachedResponse::from(vec![0u8; 91]));
    let refused = store.complete(&k, too_big, fencing_token).await;
    assert!(
        matches!(
            refused,
            Err(Error::CapacityExceeded {
                limit: "bytes",
                max: 100
            })
        ),
        "{refused:?}"
    );
    assert!(
        matches!(store.get(&k).await, Ok(Some(ExistingEntry::Processing(_)))),
        "refusal changed nothing"
    );
    store
        .complete(&k, e.complete_not_replayable(), fencing_token)
        .await
        .expect("not replayable fits");
    assert_eq!(store.payload_bytes(), 10);
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: e,
    }) = claim(&store, &key("other"), 2).await
    else {
        panic!("claim");
    };
    store
        .complete(
            &key("other"),
            e.complete(CachedResponse::from(vec![1u8; 85])),
            fencing_token,
        )
        .await
        .expect("fits exactly");
    assert_eq!(store.payload_bytes(), 100);
    assert!(matches!(
        claim(&store, &key("x"), 3).await,
        Err(Error::CapacityExceeded { limit: "bytes", .. })
    ));
}

#[tokio::test]
async fn sweeping_gives_memory_back_and_keeps_live_records() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder()
        .shards(4)
        .clock(clock.clone())
        .build();
    for i in 0..100 {
        let k = key(&format!("short-{i}"));
        let Ok(InsertResult::Claimed {
            fencing_token,
            entry: e,
        }) = claim(&store, &k, 1).await
        else {
            panic!("claim");
        };
        store
            .complete(&k, e.complete(CachedResponse::from("x")), fencing_token)
            .await
            .expect("complete");
    }
    let live = key("long-lived");
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: e,
    }) = store
        .try_insert(&live, entry(1).with_ttl(Duration::from_hours(1)))
        .await
    else {
        panic!("claim");
    };
    store
        .complete(
            &live,
            e.complete(CachedResponse::from("keep")),
            fencing_token,
        )
        .await
        .expect("complete");
    assert_eq!(store.len(), 101);
    clock.advance(Duration::from_secs(11));
    // Amortized sweeping: ordinary calls drop dead records a few at a time.
    for i in 0..200 {
        let _ = store.get(&key(&format!("probe-{i}"))).await;
        let _ = claim(&store, &key(&format!("new-{i}")), 1).await;
    }
    assert!(
        store.len() < 301,
        "amortized sweeping dropped some dead records: {}",
        store.len()
    );
    store.sweep();
    assert_eq!(
        store.len(),
        201,
        "only the live record and the new claims remain"
    );
    assert!(matches!(
        store.get(&live).await,
        Ok(Some(ExistingEntry::Completed(_)))
    ));
}

/// 1,000 tasks on a multi-thread runtime race for one key: exactly one claims it. 200 rounds.
#[test]
fn a_thousand_racing_claims_yield_exactly_one() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = MemoryStore::new();
        for round in 0..200 {
            let k = key(&format!("race-{round}"));
            let start = Arc::new(tokio::sync::Barrier::new(1000));
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let (store, k, start) = (store.clone(), k.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        claim(&store, &k, 7).await
                    })
                })
                .collect();
            let mut claimed = 0;
            let mut in_flight = 0;
            for task in tasks {
                match task.await.expect("task") {
                    Ok(InsertResult::Claimed { .. }) => claimed += 1,
                    Ok(InsertResult::Exists(ExistingEntry::Processing(e))) => {
                        assert_eq!(e.fingerprint(), Fingerprint::from_u128(7));
                        in_flight += 1;
                    }
                    other => panic!("round {round}: {other:?}"),
                }
            }
            assert_eq!((claimed, in_flight), (1, 999), "round {round}");
        }
    });
}

/// Many keys, many tasks, each claim completed by its winner: every key is completed exactly
/// once and every loser that arrives later sees the winner's result.
#[test]
fn storm_over_many_keys_completes_each_exactly_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = MemoryStore::builder().shards(8).build();
        let executed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4000)
            .map(|i| {
                let (store, executed) = (store.clone(), executed.clone());
                tokio::spawn(async move {
                    let k = key(&format!("storm-{}", i % 500));
                    loop {
                        match claim(&store, &k, 1).await.expect("claim") {
                            InsertResult::Claimed {
                                fencing_token,
                                entry,
                            } => {
                                executed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::task::yield_now().await;
                                let body = format!("result of {k}");
                                store
                                    .complete(
                                        &k,
                                        entry.complete(CachedResponse::from(body)),
                                        fencing_token,
                                    )
                                    .await
                                    .expect("complete");
                                return;
                            }
                            InsertResult::Exists(ExistingEntry::Completed(done)) => {
                                let body = done.response().map(|r| r.body().clone());
                                assert_eq!(
                                    body.as_deref(),
                                    Some(format!("result of {k}").as_bytes())
                                );
                                return;
                            }
                            InsertResult::Exists(ExistingEntry::Processing(_)) => {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(executed.load(std::sync::atomic::Ordering::SeqCst), 500);
    });
}

#[tokio::test]
async fn an_expired_result_gives_its_bytes_back_when_its_key_is_reclaimed() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder()
        .max_bytes(1_000)
        .clock(clock.clone())
        .build();
    assert!(store.is_empty());
    let k = key("0123456789"); // 10 bytes
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: e,
    }) = claim(&store, &k, 1).await
    else {
        panic!("claim");
    };
    assert!(!store.is_empty());
    store
        .complete(
            &k,
            e.complete(CachedResponse::from(vec![7u8; 50])),
            fencing_token,
        )
        .await
        .expect("complete");
    let held = store.payload_bytes();
    assert!(held > 10 + 50 - 1, "key and result counted: {held}");
    clock.advance(Duration::from_secs(11)); // past the 10 s TTL
    assert!(matches!(
        claim(&store, &k, 2).await,
        Ok(InsertResult::Claimed { .. })
    ));
    assert_eq!(
        store.payload_bytes(),
        10,
        "the dead result's bytes came back"
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn the_store_describes_itself_and_can_be_detached() {
    let store = MemoryStore::builder().max_entries(7).max_bytes(900).build();
    let shown = format!("{store:?}");
    for part in ["max_entries: 7", "max_bytes: 900", "entries: 0"] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    assert_eq!(IdempotencyStore::kind(&store), "memory");
    assert!(
        IdempotencyStore::detached(&store).is_some(),
        "a handle for background work (re-sending a lost claim)"
    );
}

/// The same, when the claim meets its key's dead record before the incremental sweep does
/// (one shard, the sweep's cursor on live records ahead of it): the record is replaced in
/// place and only its result's bytes come back.
#[tokio::test]
async fn a_dead_record_replaced_in_place_gives_its_result_bytes_back() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder()
        .shards(1)
        .clock(clock.clone())
        .build();
    let long = |n: u128| {
        IdempotencyEntry::new(Fingerprint::from_u128(n))
            .with_lease(Duration::from_secs(1))
            .with_ttl(Duration::from_hours(1))
    };
    for i in 0..10 {
        let k = key(&format!("live-{i}"));
        let Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) = store.try_insert(&k, long(1)).await
        else {
            panic!("claim");
        };
        store
            .complete(&k, entry.complete_not_replayable(), fencing_token)
            .await
            .expect("complete");
    }
    let k = key("0123456789");
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry: e,
    }) = claim(&store, &k, 1).await
    else {
        panic!("claim");
    };
    store
        .complete(
            &k,
            e.complete(CachedResponse::from(vec![7u8; 50])),
            fencing_token,
        )
        .await
        .expect("complete");
    let before = store.payload_bytes();
    clock.advance(Duration::from_secs(11)); // ours expired; the ten live ones did not
    assert!(matches!(
        claim(&store, &k, 2).await,
        Ok(InsertResult::Claimed { .. })
    ));
    assert_eq!(store.len(), 11, "replaced in place, nothing swept");
    let response_bytes = before - store.payload_bytes();
    assert!(
        (50..=60).contains(&response_bytes),
        "the dead result's bytes came back, the key's stayed: {response_bytes}"
    );
}

/// An unbounded store counts per shard and a bounded one in shared counters too: both report
/// the same entries and payload bytes through claims, completions, releases and sweeps.
#[tokio::test]
async fn entries_and_bytes_are_counted_alike_with_or_without_a_bound() {
    for bounded in [false, true] {
        let clock = Arc::new(ManualClock::new());
        let mut builder = MemoryStore::builder().clock(clock.clone());
        if bounded {
            builder = builder.max_entries(1_000).max_bytes(1 << 20);
        }
        let store = builder.build();
        let mut tokens = Vec::new();
        for n in 0..20 {
            let k = key(&format!("key-{n:04}")); // 8 bytes
            let Ok(InsertResult::Claimed {
                fencing_token,
                entry,
            }) = claim(&store, &k, n).await
            else {
                panic!("claim {n}");
            };
            tokens.push((k, fencing_token, entry));
        }
        assert_eq!((store.len(), store.payload_bytes()), (20, 160), "{bounded}");
        for (k, token, entry) in tokens.drain(..10) {
            let body = CachedResponse::from(vec![0u8; 50]);
            let size = body.size();
            store
                .complete(&k, entry.complete(body), token)
                .await
                .expect("complete");
            assert_eq!(size, 50, "{bounded}: the body");
        }
        assert_eq!(
            (store.len(), store.payload_bytes()),
            (20, 160 + 500),
            "{bounded}"
        );
        for (k, token, _) in tokens.drain(..) {
            store.release(&k, token).await.expect("release");
        }
        assert_eq!(
            (store.len(), store.payload_bytes()),
            (10, 80 + 500),
            "{bounded}"
        );
        clock.advance(Duration::from_hours(1));
        store.sweep();
        assert_eq!((store.len(), store.payload_bytes()), (0, 0), "{bounded}");
        assert!(store.is_empty());
    }
}
