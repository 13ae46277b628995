//! `#[idempotent]` on plain async fns, through the macro, counting side effects exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{
    Error, ExistingEntry, IdempotencyKey, IdempotencyStore, ManualClock, MemoryStore,
    current_claim, idempotent, storage_key,
};
use idempotent_tests::gate::Gate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Receipt {
    charge: usize,
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum PayError {
    Declined,
    Idempotency(Refused),
}

/// Which protocol error the fn returned: its variant, not its text.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Refused {
    InFlight,
    HandlerPanicked,
    StaleFencingToken,
    NotReplayable,
    FingerprintMismatch,
    InvalidKey(String),
    Other(String),
}

impl From<Error> for PayError {
    fn from(e: Error) -> Self {
        Self::Idempotency(match e {
            Error::InFlight => Refused::InFlight,
            Error::HandlerPanicked => Refused::HandlerPanicked,
            Error::StaleFencingToken => Refused::StaleFencingToken,
            Error::NotReplayable => Refused::NotReplayable,
            Error::FingerprintMismatch => Refused::FingerprintMismatch,
            Error::InvalidKey(e) => Refused::InvalidKey(e.to_string()),
            other => Refused::Other(other.to_string()),
        })
    }
}

#[derive(Serialize)]
struct Order {
    key: String,
    amount: u64,
    note: &'static str,
}

#[derive(Clone)]
struct Gateway {
    store: MemoryStore,
    charges: Arc<AtomicUsize>,
    /// Where a handler waits for its test, so tests order events without sleeps.
    gate: Gate,
}

impl Gateway {
    fn new() -> Self {
        Self::with_store(MemoryStore::new())
    }

    fn with_store(store: MemoryStore) -> Self {
        Self {
            store,
            charges: Arc::new(AtomicUsize::new(0)),
            gate: Gate::new(),
        }
    }

    fn charges(&self) -> usize {
        self.charges.load(Ordering::SeqCst)
    }
}

#[idempotent(key = order.key, store = gw.store, name = "test.charge", ttl = "10m", lease = "2s")]
async fn charge(gw: &Gateway, order: Order) -> Result<Receipt, PayError> {
    gw.gate.pass().await;
    let charge = gw.charges.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(Receipt {
        charge,
        amount: order.amount,
    })
}

fn order(key: &str, amount: u64) -> Order {
    Order {
        key: key.to_owned(),
        amount,
        note: "n",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_calls_run_the_body_once_with_wait() {
    #[idempotent(key = key, store = gw.store, skip(key), name = "test.wait", concurrent = wait("10s"))]
    async fn slow(gw: Gateway, key: String, amount: u64) -> Result<Receipt, PayError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(Receipt {
            charge: gw.charges.fetch_add(1, Ordering::SeqCst) + 1,
            amount,
        })
    }
    let gw = Gateway::new();
    let calls: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(slow(gw.clone(), "k-1000".into(), 5)))
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("task"));
    }
    assert_eq!(gw.charges(), 1);
    assert!(
        results.iter().all(|r| r
            == &Ok(Receipt {
                charge: 1,
                amount: 5
            })),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
}

#[tokio::test]
async fn concurrent_calls_are_rejected_while_in_flight_by_default() {
    let gw = Gateway::new();
    let first = tokio::spawn({
        let gw = gw.clone();
        async move { charge(&gw, order("k-reject", 1)).await }
    });
    gw.gate.entered().await; // the first call holds the claim, mid-handler
    assert_eq!(
        charge(&gw, order("k-reject", 1)).await,
        Err(PayError::Idempotency(Refused::InFlight))
    );
    gw.gate.open();
    let a = first.await.expect("first call");
    assert_eq!(
        a,
        Ok(Receipt {
            charge: 1,
            amount: 1
        })
    );
    assert_eq!(
        charge(&gw, order("k-reject", 1)).await,
        a,
        "replayed after completion"
    );
    assert_eq!(gw.charges(), 1);
}

#[tokio::test]
async fn err_releases_the_claim_so_a_retry_runs_again() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[idempotent(key = key, name = "test.flaky", store = store)]
    async fn flaky(store: &MemoryStore, key: &str) -> Result<usize, PayError> {
        let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        if run == 1 {
            Err(PayError::Declined)
        } else {
            Ok(run)
        }
    }
    let store = MemoryStore::new();
    assert_eq!(flaky(&store, "k-flaky").await, Err(PayError::Declined));
    assert_eq!(flaky(&store, "k-flaky").await, Ok(2));
    assert_eq!(
        flaky(&store, "k-flaky").await,
        Ok(2),
        "the success is replayed"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cache_errors_replays_the_error() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[idempotent(key = key, name = "test.declined", store = store, cache_errors)]
    async fn declined(store: &MemoryStore, key: &str) -> Result<usize, PayError> {
        RUNS.fetch_add(1, Ordering::SeqCst);
        Err(PayError::Declined)
    }
    let store = MemoryStore::new();
    assert_eq!(
        declined(&store, "k-declined").await,
        Err(PayError::Declined)
    );
    assert_eq!(
        declined(&store, "k-declined").await,
        Err(PayError::Declined)
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn same_key_other_arguments_is_a_mismatch_also_in_flight() {
    let gw = Gateway::new();
    let first = tokio::spawn({
        let gw = gw.clone();
        async move { charge(&gw, order("k-mm", 10)).await }
    });
    gw.gate.entered().await;
    let mismatch = Err(PayError::Idempotency(Refused::FingerprintMismatch));
    assert_eq!(charge(&gw, order("k-mm", 99)).await, mismatch, "in flight");
    gw.gate.open();
    assert_eq!(
        first.await.expect("first call"),
        Ok(Receipt {
            charge: 1,
            amount: 10
        })
    );
    assert_eq!(charge(&gw, order("k-mm", 99)).await, mismatch, "completed");
    assert_eq!(gw.charges(), 1);
}

#[tokio::test]
async fn two_scopes_with_one_key_never_meet() {
    #[idempotent(key = key, scope = tenant, store = gw.store, skip(tenant), name = "test.scoped")]
    async fn scoped(gw: &Gateway, tenant: &str, key: &str) -> Result<String, PayError> {
        let n = gw.charges.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(format!("{tenant}:{n}"))
    }
    let gw = Gateway::new();
    assert_eq!(scoped(&gw, "alice", "k").await, Ok("alice:1".into()));
    assert_eq!(scoped(&gw, "bob", "k").await, Ok("bob:2".into()));
    assert_eq!(scoped(&gw, "alice", "k").await, Ok("alice:1".into()));
    assert_eq!(scoped(&gw, "bob", "k").await, Ok("bob:2".into()));
    // Each record sits where an operator's `storage_key` finds it, and nowhere else.
    let key = IdempotencyKey::new("k").expect("key");
    for tenant in ["alice", "bob"] {
        let stored = storage_key("test.scoped", Some(tenant), &key);
        let found = gw.store.get(&stored).await.expect("get");
        assert!(
            matches!(found, Some(ExistingEntry::Completed(_))),
            "{tenant}: {found:?}"
        );
    }
    let unscoped = storage_key("test.scoped", None, &key);
    assert!(gw.store.get(&unscoped).await.expect("get").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_not_completed_and_its_key_frees_after_the_lease() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[idempotent(key = key, name = "test.panics", store = store, lease = "300ms")]
    async fn panics(store: &MemoryStore, key: &str) -> Result<usize, PayError> {
        let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(run > 1, "first run panics on purpose");
        Ok(run)
    }
    let store = MemoryStore::new();
    let panicked = Err(PayError::Idempotency(Refused::HandlerPanicked));
    assert_eq!(panics(&store, "k-panic").await, panicked);
    assert_eq!(
        panics(&store, "k-panic").await,
        Err(PayError::Idempotency(Refused::InFlight)),
        "held until the lease lapses"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(panics(&store, "k-panic").await, Ok(2));
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_future_leaves_the_claim_to_lapse_and_never_completes_twice() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[idempotent(key = key, name = "test.dropped", store = store, lease = "300ms")]
    async fn slow(store: &MemoryStore, key: &str) -> Result<usize, PayError> {
        let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(if run == 1 { 10_000 } else { 1 })).await;
        Ok(run)
    }
    let store = MemoryStore::new();
    let dropped = tokio::time::timeout(Duration::from_millis(50), slow(&store, "k-drop")).await;
    assert!(dropped.is_err(), "the caller went away");
    assert_eq!(
        slow(&store, "k-drop").await,
        Err(PayError::Idempotency(Refused::InFlight))
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(slow(&store, "k-drop").await, Ok(2));
    assert_eq!(slow(&store, "k-drop").await, Ok(2));
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_keeps_a_long_handler_exclusive() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[idempotent(key = key, name = "test.long", store = store, lease = "150ms")]
    async fn long(store: &MemoryStore, key: &str) -> Result<(usize, u32), PayError> {
        let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(450)).await; // 3 leases
        let renewals = current_claim().map_or(0, |c| c.renewals());
        Ok((run, renewals))
    }
    let store = MemoryStore::new();
    let (first, intruder) = tokio::join!(long(&store, "k-long"), async {
        tokio::time::sleep(Duration::from_millis(300)).await; // two leases in
        long(&store, "k-long").await
    });
    assert_eq!(intruder, Err(PayError::Idempotency(Refused::InFlight)));
    let (run, renewals) = first.expect("first run");
    assert_eq!(run, 1);
    // Paused time: renewals every 50 ms, sent at 50, 100, …, 400 ms; the handler ends at
    // 450 ms, polled before the ninth.
    assert_eq!(renewals, 8, "renewed every lease/3");
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

/// A zombie: the first holder suspended mid-handler (a stalled process renews nothing) while
/// its lease lapses on the store's clock. The lease is a minute of real time, so the heartbeat
/// never ticks during the test; the store's injected clock jumps past it.
#[idempotent(key = key, name = "test.zombie", store = gw.store, lease = "60s")]
async fn job(gw: &Gateway, key: &str) -> Result<usize, PayError> {
    let run = gw.charges.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 1 {
        gw.gate.pass().await; // suspended until the test wakes it
    }
    Ok(run)
}

#[tokio::test]
async fn a_zombie_completion_is_stale_and_the_winner_stands() {
    let clock = Arc::new(ManualClock::new());
    let gw = Gateway::with_store(MemoryStore::builder().clock(clock.clone()).build());
    let zombie = tokio::spawn({
        let gw = gw.clone();
        async move { job(&gw, "k-zombie").await }
    });
    gw.gate.entered().await;
    clock.advance(Duration::from_secs(61)); // the zombie's lease lapses while it is suspended
    assert_eq!(
        job(&gw, "k-zombie").await,
        Ok(2),
        "the winner claims while the zombie is mid-handler, and completes"
    );
    gw.gate.open();
    assert_eq!(
        zombie.await.expect("zombie"),
        Ok(2),
        "the zombie's completion is stale: its caller gets the winner's answer, not its own"
    );
    assert_eq!(
        job(&gw, "k-zombie").await,
        Ok(2),
        "the winner's result stands"
    );
    assert_eq!(
        gw.charges(),
        2,
        "documented: a holder stalled past its lease ran too"
    );
}

#[tokio::test]
async fn a_zombie_that_wakes_before_any_winner_is_refused_and_stores_nothing() {
    let clock = Arc::new(ManualClock::new());
    let gw = Gateway::with_store(MemoryStore::builder().clock(clock.clone()).build());
    let zombie = tokio::spawn({
        let gw = gw.clone();
        async move { job(&gw, "k-zombie-alone").await }
    });
    gw.gate.entered().await;
    clock.advance(Duration::from_secs(61));
    gw.gate.open();
    assert_eq!(
        zombie.await.expect("zombie"),
        Err(PayError::Idempotency(Refused::StaleFencingToken)),
        "its lease lapsed: the completion is refused and nothing answers for the key"
    );
    assert_eq!(
        job(&gw, "k-zombie-alone").await,
        Ok(2),
        "nothing was stored: the retry runs"
    );
    assert_eq!(job(&gw, "k-zombie-alone").await, Ok(2));
}

#[tokio::test]
async fn invalid_keys_are_reported_before_anything_runs() {
    let gw = Gateway::new();
    let result = charge(&gw, order("has space", 1)).await;
    assert_eq!(
        result,
        Err(PayError::Idempotency(Refused::InvalidKey(
            "idempotency key has byte 0x20 at position 3; only visible ASCII (0x21..=0x7E) is allowed".into()
        )))
    );
    assert_eq!(gw.charges(), 0);
}

#[tokio::test]
async fn results_too_large_are_done_but_not_replayable() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let store = MemoryStore::builder().max_bytes(1024).build();
    #[idempotent(key = key, name = "test.large", store = store)]
    async fn large(store: &MemoryStore, key: &str) -> Result<String, PayError> {
        RUNS.fetch_add(1, Ordering::SeqCst);
        Ok("x".repeat(4096))
    }
    assert_eq!(large(&store, "k-large").await.map(|s| s.len()), Ok(4096));
    assert_eq!(
        large(&store, "k-large").await,
        Err(PayError::Idempotency(Refused::NotReplayable))
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

struct Service {
    store: MemoryStore,
    runs: AtomicUsize,
}

impl Service {
    #[idempotent(key = key, store = self.store, name = "test.method", fingerprint(amount))]
    async fn pay(&self, key: &str, amount: u64, _trace: String) -> Result<u64, PayError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(amount * 2)
    }
}

#[tokio::test]
async fn methods_and_fingerprint_fields_work() {
    let service = Service {
        store: MemoryStore::new(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(service.pay("k-m", 21, "a".into()).await, Ok(42));
    assert_eq!(
        service.pay("k-m", 21, "b".into()).await,
        Ok(42),
        "trace is not fingerprinted"
    );
    assert_eq!(
        service.pay("k-m", 22, "a".into()).await,
        Err(PayError::Idempotency(Refused::FingerprintMismatch)),
        "amount is fingerprinted"
    );
    assert_eq!(service.runs.load(Ordering::SeqCst), 1);
}

/// An error that may move between threads but not be shared by them (`Send`, not `Sync`).
#[derive(Debug)]
struct ThreadBound(std::cell::Cell<u8>);

impl From<Error> for ThreadBound {
    fn from(_: Error) -> Self {
        Self(std::cell::Cell::new(0))
    }
}

#[idempotent(key = key, store = store, name = "test.thread_bound")]
async fn thread_bound(store: &MemoryStore, key: &str) -> Result<u64, ThreadBound> {
    Ok(7)
}

fn assert_send<F: Send>(future: F) -> F {
    future
}

/// The protocol holds the result by value across its awaits, never a borrow of it, so the
/// attribute's future is `Send` whenever the result is, `Sync` or not (a borrow held across
/// an await would need `Result<u64, ThreadBound>: Sync` and fail to compile here).
#[tokio::test]
async fn a_result_that_is_send_but_not_sync_keeps_the_future_send() {
    let store = MemoryStore::new();
    let ran = tokio::spawn(async move {
        assert_send(thread_bound(&store, "thread-bound"))
            .await
            .map_err(|e| e.0.get())
    });
    assert_eq!(ran.await.expect("task"), Ok(7));
}
