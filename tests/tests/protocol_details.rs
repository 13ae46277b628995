//! Details of the protocol that mutation testing (`cargo mutants`, README "Testing") found
//! no test for: what a running handler learns of its claim, the limit and the backoff of
//! `Concurrency::Wait`, the largest result kept, a completion retried after the store was
//! unreachable, the builder's `Debug`. Time is tokio's paused
//! clock (the protocol and `SystemClock` read it), or a store's injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{Completed, Processing};
use idempotent_runtime::{
    Concurrency, Error, ExistingEntry, FencingToken, Fingerprint, IdempotencyEntry, IdempotencyKey,
    IdempotencyStore, Idempotent, InsertResult, ManualClock, MemoryStore, current_claim,
    storage_key,
};
use idempotent_tests::gate::Gate;

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("valid test key")
}

#[tokio::test(start_paused = true)]
async fn a_live_claim_is_not_lost_and_knows_its_lease() {
    let store = MemoryStore::new();
    let lease = Duration::from_secs(3);
    let seen = Idempotent::new("details.live")
        .store(&store)
        .lease(lease)
        .run(&key("live"), &1, async {
            let claim = current_claim().ok_or(Error::NotReplayable)?;
            let at_start = (claim.is_lost(), claim.lease_remaining());
            // Renewals every lease/3 = 1 s, sent at 1, 2, …, 5 s; the handler wakes at 6 s.
            tokio::time::sleep(lease * 2).await;
            let later = (claim.is_lost(), claim.lease_remaining(), claim.renewals());
            Ok::<_, Error>((at_start, later))
        })
        .await;
    let (at_start, later) = seen.expect("ran");
    assert_eq!(
        at_start,
        (false, lease),
        "a fresh claim holds its whole lease"
    );
    assert_eq!(
        later,
        (false, Duration::from_secs(2), 5),
        "held: the last renewal (sent at 5 s) runs to 8 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_renewal_marks_the_claim_lost_before_its_local_lease_ends() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let lease = Duration::from_secs(3);
    let gate = Gate::new();
    let (seen_tx, seen) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn({
        let (store, gate) = (store.clone(), gate.clone());
        async move {
            Idempotent::new("details.refused")
                .store(&store)
                .lease(lease)
                .run(&key("refused"), &1, async {
                    gate.pass().await;
                    // The renewal at 1 s is refused: another request holds the key.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let claim = current_claim().ok_or(Error::NotReplayable)?;
                    let _ = seen_tx.send((claim.is_lost(), claim.lease_remaining()));
                    Ok::<_, Error>(1)
                })
                .await
        }
    });
    gate.entered().await;
    clock.advance(lease + Duration::from_secs(1)); // lapsed on the store's clock only
    let stolen = store
        .try_insert(
            &storage_key("details.refused", None, &key("refused")),
            IdempotencyEntry::new(Fingerprint::from_u128(9)).with_lease(Duration::from_mins(1)),
        )
        .await;
    assert!(
        matches!(stolen, Ok(InsertResult::Claimed { .. })),
        "{stolen:?}"
    );
    gate.open();
    // Its own clock says 1.5 s of a 3 s lease are left; the refused renewal says it is gone.
    assert_eq!(
        seen.await.expect("the handler looked"),
        (true, Duration::ZERO)
    );
    assert!(
        matches!(holder.await.expect("holder"), Err(Error::StaleFencingToken)),
        "its completion is refused too"
    );
}

/// A `MemoryStore` that counts lookups and completions, and can fail its first completion as
/// unreachable (a reply lost before it applied).
#[derive(Debug, Default)]
struct Watched {
    inner: MemoryStore,
    gets: AtomicUsize,
    completions: AtomicUsize,
    fail_first_completion: bool,
}

#[async_trait::async_trait]
impl IdempotencyStore for Watched {
    async fn try_insert(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        self.inner.try_insert(key, entry).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error> {
        if self.completions.fetch_add(1, Ordering::SeqCst) == 0 && self.fail_first_completion {
            return Err(Error::StoreUnavailable("injected: first completion".into()));
        }
        self.inner.complete(key, entry, token).await
    }

    async fn release(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error> {
        self.inner.release(key, token).await
    }

    async fn renew(
        &self,
        key: &IdempotencyKey,
        token: FencingToken,
        lease: Duration,
    ) -> Result<(), Error> {
        self.inner.renew(key, token, lease).await
    }

    async fn get(&self, key: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_gives_up_at_its_limit_and_polls_with_backoff() {
    let store = Arc::new(Watched::default());
    let gate = Gate::new();
    let holder = tokio::spawn({
        let (store, gate) = (store.clone(), gate.clone());
        async move {
            Idempotent::new("details.wait")
                .store(&*store)
                .run(&key("wait"), &1, async {
                    gate.pass().await;
                    Ok::<_, Error>(1)
                })
                .await
        }
    });
    gate.entered().await;
    let limit = Duration::from_millis(1026);
    let start = tokio::time::Instant::now();
    let waited = tokio::time::timeout(
        Duration::from_secs(10),
        Idempotent::new("details.wait")
            .store(&*store)
            .concurrency(Concurrency::Wait(limit))
            .run(&key("wait"), &1, async { Ok::<_, Error>(2) }),
    )
    .await
    .expect("the wait ends");
    let elapsed = start.elapsed();
    assert!(matches!(waited, Err(Error::InFlight)), "{waited:?}");
    // Backoff 2, 4, …, 64 ms, then 100 ms: looks at 2, 6, 14, 30, 62, 126, 226, …, 926 and
    // 1026 ms — the limit itself, which it waits for to the end, and never past.
    assert_eq!(elapsed, limit, "gave up after {elapsed:?} of {limit:?}");
    let gets = store.gets.load(Ordering::SeqCst);
    assert!(
        (10..=20).contains(&gets),
        "{gets} lookups in {elapsed:?}: backoff doubles up to 100 ms"
    );
    gate.open();
    assert_eq!(holder.await.expect("holder").ok(), Some(1));
}

#[tokio::test]
async fn a_result_over_max_body_is_done_and_not_replayable() {
    let store = MemoryStore::new();
    let runs = AtomicUsize::new(0);
    let op = Idempotent::new("details.large").store(&store).max_body(16);
    let large = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Error>("x".repeat(64))
    };
    let first = op.run(&key("large"), &1, large()).await;
    assert_eq!(first.map(|s| s.len()).ok(), Some(64), "the caller gets it");
    assert!(matches!(
        op.run(&key("large"), &1, large()).await,
        Err(Error::NotReplayable)
    ));
    let small = Idempotent::new("details.small").store(&store).max_body(16);
    assert_eq!(
        small
            .run(&key("small"), &1, async { Ok::<_, Error>(7) })
            .await
            .ok(),
        Some(7)
    );
    assert_eq!(
        small
            .run(&key("small"), &1, async { Ok::<_, Error>(8) })
            .await
            .ok(),
        Some(7),
        "a result within max_body is replayed"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn the_builder_shows_its_operation_and_options() {
    let store = MemoryStore::new();
    let op = Idempotent::new("details.debug")
        .store(&store)
        .scope("tenant-7")
        .lease(Duration::from_secs(9));
    let shown = format!("{op:?}");
    for part in [
        "details.debug",
        "tenant-7",
        "9s",
        "custom_fingerprint_strategy: false",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
}

/// A completion retried after the store was unreachable stores the handler's whole result
/// (the retry's entry is built again from it), and the retry replays it.
#[tokio::test(start_paused = true)]
async fn a_completion_retried_after_an_unreachable_store_stores_the_result() {
    let store = Watched {
        fail_first_completion: true,
        ..Watched::default()
    };
    let runs = AtomicUsize::new(0);
    let op = Idempotent::new("details.retried").store(&store);
    let handler = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Error>(vec!["paid".to_owned(); 3])
    };
    let first = op.run(&key("retried"), &1, handler()).await;
    assert_eq!(first.ok(), Some(vec!["paid".to_owned(); 3]));
    assert_eq!(store.completions.load(Ordering::SeqCst), 2, "retried once");
    let stored = store
        .inner
        .get(&storage_key("details.retried", None, &key("retried")))
        .await;
    let Ok(Some(ExistingEntry::Completed(done))) = stored else {
        panic!("not completed: {stored:?}");
    };
    let body = done.response().map(|r| r.body().to_vec());
    assert_eq!(body.as_deref(), Some(&b"[\"paid\",\"paid\",\"paid\"]"[..]));
    let again = op.run(&key("retried"), &1, handler()).await;
    assert_eq!(again.ok(), Some(vec!["paid".to_owned(); 3]));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "replayed, not run again");
}

/// A handler that runs another idempotent execution sees its own claim before and after it
/// (across its own awaits too), the nested one sees its own, and no claim is visible once
/// both are done.
#[tokio::test(start_paused = true)]
async fn a_nested_execution_sees_its_own_claim_and_gives_the_outer_one_back() {
    let store = MemoryStore::new();
    let token = || current_claim().map(|claim| claim.fencing_token());
    let seen = Idempotent::new("details.outer")
        .store(&store)
        .run(&key("outer"), &1, async {
            let before = token();
            tokio::task::yield_now().await;
            let inner = Idempotent::new("details.inner")
                .store(&store)
                .run(&key("inner"), &2, async {
                    tokio::task::yield_now().await;
                    Ok::<_, Error>(token())
                })
                .await?;
            tokio::task::yield_now().await;
            Ok::<_, Error>((before, inner, token()))
        })
        .await;
    let (before, inner, after) = seen.expect("ran");
    assert!(before.is_some(), "the outer handler sees a claim");
    assert_eq!(
        after, before,
        "the outer claim is back after the nested execution"
    );
    assert!(
        inner.is_some() && inner != before,
        "the nested handler sees its own claim: {inner:?} / {before:?}"
    );
    assert!(current_claim().is_none(), "no claim outside a handler");
}
