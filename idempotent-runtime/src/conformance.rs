//! The store conformance suite: one set of checks every [`IdempotencyStore`] must pass, so the
//! stores cannot drift apart. A third-party store runs it too (feature `conformance`).
//!
//! A [`Harness`] gives the suite a fresh store and a way to let time pass for it: a manual
//! clock for an in-process store, a real sleep for a server. Each check uses its own random
//! keys, so one store can serve all of them.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use idempotent_runtime::{conformance, ManualClock, MemoryStore};
//!
//! struct Memory { clock: Arc<ManualClock>, store: MemoryStore }
//!
//! impl conformance::Harness for Memory {
//!     type Store = MemoryStore;
//!     fn store(&self) -> &MemoryStore { &self.store }
//!     async fn advance(&self, by: Duration) { self.clock.advance(by) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt").block_on(async {
//! let clock = Arc::new(ManualClock::new());
//! let harness = Memory { store: MemoryStore::builder().clock(clock.clone()).build(), clock };
//! conformance::run_all(&harness).await.expect("MemoryStore conforms");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::{
    CachedResponse, CompletedRecord, Error, ExistingEntry, FencingToken, Fingerprint,
    IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, Processing,
};

/// What the suite needs from a store under test.
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: IdempotencyStore;

    /// The store. Every check uses fresh keys, so it may be shared by all checks.
    fn store(&self) -> &Self::Store;

    /// Lets `by` pass on the store's clock (advance a manual clock, or sleep).
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;

    /// The lease the checks use; a real server needs one long enough to outlast a round
    /// trip. Default 300 ms.
    fn lease(&self) -> Duration {
        Duration::from_millis(300)
    }

    /// The TTL the checks use. Default 1 s.
    fn ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A check that failed: which one, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The name of the check.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for Failure {}

/// A check of the suite.
pub type Check<H> =
    for<'a> fn(&'a H) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the suite, by name, for harnesses that run them one test each.
        pub fn checks<H: Harness>() -> Vec<(&'static str, Check<H>)> {
            vec![$((stringify!($name), |h| Box::pin($name(h)))),*]
        }
    };
}

checks!(
    claim_then_replay,
    in_flight_record_is_reported_with_its_fingerprint,
    other_fingerprint_sees_the_stored_one,
    completing_the_same_claim_twice_is_a_no_op,
    lease_lapse_lets_a_retry_reclaim_with_a_larger_token,
    zombie_complete_renew_release_are_rejected_and_change_nothing,
    renew_keeps_a_claim_alive_past_its_first_lease,
    ttl_expiry_frees_the_key,
    release_then_reclaim,
    unknown_claims_are_stale,
    not_replayable_results_are_kept_as_done,
    invalid_durations_write_nothing,
    responses_round_trip_exactly,
    a_completion_with_another_fingerprint_is_refused,
    a_token_with_the_right_nonce_and_another_counter_is_stale,
    a_re_sent_claim_is_the_same_claim,
);

/// Runs every check in order; stops at the first failure.
///
/// # Errors
/// The first [`Failure`].
pub async fn run_all<H: Harness>(harness: &H) -> Result<(), Failure> {
    for (check, run) in checks::<H>() {
        run(harness)
            .await
            .map_err(|message| Failure { check, message })?;
    }
    Ok(())
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn fresh_key() -> Result<IdempotencyKey, String> {
    let n: u128 = rand::random();
    IdempotencyKey::new(&format!("conformance-{n:032x}")).map_err(|e| e.to_string())
}

fn fingerprint(n: u128) -> Fingerprint {
    Fingerprint::from_u128(0x00c0_ffee_0000_0000 ^ n)
}

fn entry<H: Harness>(h: &H, fp: Fingerprint) -> IdempotencyEntry<Processing> {
    IdempotencyEntry::new(fp)
        .with_lease(h.lease())
        .with_ttl(h.ttl())
}

fn err(context: &str, e: &Error) -> String {
    format!("{context}: unexpected error {e:?}")
}

async fn claim<H: Harness>(
    h: &H,
    key: &IdempotencyKey,
    fp: Fingerprint,
) -> Result<(FencingToken, IdempotencyEntry<Processing>), String> {
    match h.store().try_insert(key, entry(h, fp)).await {
        Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) => Ok((fencing_token, entry)),
        Ok(InsertResult::Exists(existing)) => Err(format!("expected a claim, found {existing:?}")),
        Err(e) => Err(err("try_insert", &e)),
    }
}

async fn existing<H: Harness>(
    h: &H,
    key: &IdempotencyKey,
    fp: Fingerprint,
) -> Result<ExistingEntry, String> {
    match h.store().try_insert(key, entry(h, fp)).await {
        Ok(InsertResult::Exists(existing)) => Ok(existing),
        Ok(InsertResult::Claimed { fencing_token, .. }) => Err(format!(
            "expected an existing record, but claimed with {fencing_token:?}"
        )),
        Err(e) => Err(err("try_insert", &e)),
    }
}

fn completed(existing: ExistingEntry) -> Result<CompletedRecord, String> {
    match existing {
        ExistingEntry::Completed(entry) => Ok(entry),
        ExistingEntry::Processing(entry) => Err(format!("expected Completed, found {entry:?}")),
    }
}

fn expect_stale(context: &str, result: Result<(), Error>) -> Result<(), String> {
    match result {
        Err(Error::StaleFencingToken) => Ok(()),
        other => Err(format!(
            "{context}: expected StaleFencingToken, got {other:?}"
        )),
    }
}

async fn claim_then_replay<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(1)).await?;
    let response = CachedResponse::from("first result");
    h.store()
        .complete(&key, entry.complete(response.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    for _ in 0..2 {
        let replay = completed(existing(h, &key, fingerprint(1)).await?)?;
        ensure!(replay.response() == Some(&response), "replayed {replay:?}");
        ensure!(
            replay.fingerprint() == fingerprint(1),
            "fingerprint {:?}",
            replay.fingerprint()
        );
    }
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(
        matches!(&got, Some(ExistingEntry::Completed(e)) if e.response() == Some(&response)),
        "get returned {got:?}"
    );
    Ok(())
}

async fn in_flight_record_is_reported_with_its_fingerprint<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (_token, _entry) = claim(h, &key, fingerprint(2)).await?;
    let found = existing(h, &key, fingerprint(2)).await?;
    ensure!(
        matches!(&found, ExistingEntry::Processing(e) if e.fingerprint() == fingerprint(2)),
        "found {found:?}"
    );
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(
        matches!(got, Some(ExistingEntry::Processing(_))),
        "get returned {got:?}"
    );
    Ok(())
}

async fn other_fingerprint_sees_the_stored_one<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(3)).await?;
    let found = existing(h, &key, fingerprint(4)).await?;
    ensure!(
        found.fingerprint() == fingerprint(3),
        "in flight: found {found:?}"
    );
    h.store()
        .complete(&key, entry.complete(CachedResponse::from("3")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let found = existing(h, &key, fingerprint(4)).await?;
    ensure!(
        found.fingerprint() == fingerprint(3),
        "completed: found {found:?}"
    );
    Ok(())
}

async fn completing_the_same_claim_twice_is_a_no_op<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(5)).await?;
    let first = CachedResponse::from("first");
    let store = h.store();
    store
        .complete(&key, entry.clone().complete(first.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    store
        .complete(&key, entry.complete(CachedResponse::from("second")), token)
        .await
        .map_err(|e| err("second complete", &e))?;
    let replay = completed(existing(h, &key, fingerprint(5)).await?)?;
    ensure!(
        replay.response() == Some(&first),
        "the first result must stand, got {replay:?}"
    );
    Ok(())
}

async fn lease_lapse_lets_a_retry_reclaim_with_a_larger_token<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (old, _entry) = claim(h, &key, fingerprint(6)).await?;
    h.advance(h.lease() + h.lease() / 2).await;
    let (new, _entry) = claim(h, &key, fingerprint(6)).await?;
    ensure!(
        new.counter() > old.counter(),
        "counter {} after {}",
        new.counter(),
        old.counter()
    );
    ensure!(new.nonce() != old.nonce(), "nonce reused");
    Ok(())
}

async fn zombie_complete_renew_release_are_rejected_and_change_nothing<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (zombie, zombie_entry) = claim(h, &key, fingerprint(7)).await?;
    h.advance(h.lease() + h.lease() / 2).await;
    let (winner, winner_entry) = claim(h, &key, fingerprint(7)).await?;
    expect_stale("zombie renew", store.renew(&key, zombie, h.lease()).await)?;
    expect_stale("zombie release", store.release(&key, zombie).await)?;
    expect_stale(
        "zombie complete",
        store
            .complete(
                &key,
                zombie_entry
                    .clone()
                    .complete(CachedResponse::from("zombie")),
                zombie,
            )
            .await,
    )?;
    let found = existing(h, &key, fingerprint(7)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "winner's claim changed: {found:?}"
    );
    let winner_result = CachedResponse::from("winner");
    store
        .complete(&key, winner_entry.complete(winner_result.clone()), winner)
        .await
        .map_err(|e| err("winner complete", &e))?;
    expect_stale(
        "zombie complete after the winner",
        store
            .complete(
                &key,
                zombie_entry.complete(CachedResponse::from("zombie")),
                zombie,
            )
            .await,
    )?;
    expect_stale(
        "zombie release after the winner",
        store.release(&key, zombie).await,
    )?;
    let replay = completed(existing(h, &key, fingerprint(7)).await?)?;
    ensure!(
        replay.response() == Some(&winner_result),
        "stored result is {replay:?}"
    );
    Ok(())
}

async fn renew_keeps_a_claim_alive_past_its_first_lease<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(8)).await?;
    for _ in 0..3 {
        h.advance(h.lease() * 2 / 3).await;
        store
            .renew(&key, token, h.lease())
            .await
            .map_err(|e| err("renew", &e))?;
    }
    let found = existing(h, &key, fingerprint(8)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "after renewals: {found:?}"
    );
    store
        .complete(&key, entry.complete(CachedResponse::from("late")), token)
        .await
        .map_err(|e| err("complete after renewals", &e))?;
    expect_stale(
        "renew of a completed claim",
        store.renew(&key, token, h.lease()).await,
    )?;
    expect_stale(
        "release of a completed claim",
        store.release(&key, token).await,
    )?;
    let replay = completed(existing(h, &key, fingerprint(8)).await?)?;
    ensure!(
        replay.response().is_some(),
        "completed record was lost: {replay:?}"
    );
    Ok(())
}

async fn ttl_expiry_frees_the_key<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(9)).await?;
    h.store()
        .complete(&key, entry.complete(CachedResponse::from("9")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    h.advance(h.ttl() / 2).await;
    let _still_replayed = completed(existing(h, &key, fingerprint(9)).await?)?;
    h.advance(h.ttl()).await;
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "expired record still returned: {got:?}");
    let (again, _entry) = claim(h, &key, fingerprint(10)).await?;
    ensure!(
        again.counter() > token.counter(),
        "counter {} after {}",
        again.counter(),
        token.counter()
    );
    Ok(())
}

async fn release_then_reclaim<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (first, first_entry) = claim(h, &key, fingerprint(11)).await?;
    store
        .release(&key, first)
        .await
        .map_err(|e| err("release", &e))?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "released record still returned: {got:?}");
    let (second, _entry) = claim(h, &key, fingerprint(11)).await?;
    ensure!(
        second.counter() > first.counter(),
        "counter {} after {}",
        second.counter(),
        first.counter()
    );
    expect_stale(
        "complete with the released token",
        store
            .complete(&key, first_entry.complete(CachedResponse::from("x")), first)
            .await,
    )?;
    Ok(())
}

async fn unknown_claims_are_stale<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let made_up = FencingToken::generate(u64::MAX - 1);
    let entry = entry(h, fingerprint(12));
    expect_stale(
        "complete of an absent key",
        store
            .complete(&key, entry.complete(CachedResponse::from("x")), made_up)
            .await,
    )?;
    expect_stale(
        "renew of an absent key",
        store.renew(&key, made_up, h.lease()).await,
    )?;
    expect_stale(
        "release of an absent key",
        store.release(&key, made_up).await,
    )?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "a stale call wrote {got:?}");
    let (token, entry) = claim(h, &key, fingerprint(12)).await?;
    let forged = FencingToken::new(token.counter(), token.nonce() ^ 1);
    expect_stale(
        "complete with the right counter but another nonce",
        store
            .complete(&key, entry.complete(CachedResponse::from("x")), forged)
            .await,
    )?;
    let found = existing(h, &key, fingerprint(12)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "forged token changed the record: {found:?}"
    );
    Ok(())
}

async fn not_replayable_results_are_kept_as_done<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(13)).await?;
    h.store()
        .complete(&key, entry.complete_not_replayable(), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let done = completed(existing(h, &key, fingerprint(13)).await?)?;
    ensure!(
        done.response().is_none(),
        "not-replayable record has a response: {done:?}"
    );
    Ok(())
}

async fn invalid_durations_write_nothing<H: Harness>(h: &H) -> Result<(), String> {
    let store = h.store();
    let too_long = crate::MAX_DURATION + Duration::from_secs(1);
    for (what, bad) in [
        (
            "zero ttl",
            entry(h, fingerprint(14)).with_ttl(Duration::ZERO),
        ),
        (
            "zero lease",
            entry(h, fingerprint(14)).with_lease(Duration::ZERO),
        ),
        (
            "ttl over the maximum",
            entry(h, fingerprint(14)).with_ttl(too_long),
        ),
    ] {
        let key = fresh_key()?;
        let result = store.try_insert(&key, bad).await;
        ensure!(
            matches!(result, Err(Error::InvalidDuration { .. })),
            "{what}: got {result:?}"
        );
        let got = store.get(&key).await.map_err(|e| err("get", &e))?;
        ensure!(got.is_none(), "{what} wrote {got:?}");
    }
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(15)).await?;
    let renewed = store.renew(&key, token, Duration::ZERO).await;
    ensure!(
        matches!(renewed, Err(Error::InvalidDuration { .. })),
        "zero renew: {renewed:?}"
    );
    let done = entry
        .with_ttl(Duration::ZERO)
        .complete(CachedResponse::from("x"));
    let result = store.complete(&key, done, token).await;
    ensure!(
        matches!(result, Err(Error::InvalidDuration { .. })),
        "zero ttl complete: {result:?}"
    );
    let found = existing(h, &key, fingerprint(15)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "invalid complete wrote {found:?}"
    );
    Ok(())
}

async fn responses_round_trip_exactly<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let body: Bytes = (0..=255u8).cycle().take(4096).collect();
    let response = CachedResponse::new(201, body)
        .with_header("content-type", "application/octet-stream")
        .with_header("link", "</a>")
        .with_header("x-binary", Bytes::from_static(&[0, 255, 10, 13]))
        .with_header("link", "</b>");
    let (token, entry) = claim(h, &key, fingerprint(16)).await?;
    h.store()
        .complete(&key, entry.complete(response.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let replay = completed(existing(h, &key, fingerprint(16)).await?)?;
    ensure!(
        replay.response() == Some(&response),
        "round trip changed the response: {replay:?}"
    );
    Ok(())
}

async fn a_completion_with_another_fingerprint_is_refused<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(17)).await?;
    let other = IdempotencyEntry::new(fingerprint(18))
        .with_ttl(h.ttl())
        .complete(CachedResponse::from("not this request's"));
    let result = store.complete(&key, other, token).await;
    ensure!(
        matches!(result, Err(Error::FingerprintMismatch)),
        "a completion with another fingerprint: {result:?}"
    );
    let found = existing(h, &key, fingerprint(17)).await?;
    ensure!(
        matches!(&found, ExistingEntry::Processing(e) if e.fingerprint() == fingerprint(17)),
        "the refused completion changed the record: {found:?}"
    );
    store
        .complete(&key, entry.complete(CachedResponse::from("17")), token)
        .await
        .map_err(|e| err("the claim's own completion", &e))?;
    let done = completed(existing(h, &key, fingerprint(17)).await?)?;
    ensure!(
        done.fingerprint() == fingerprint(17),
        "stored fingerprint {:?}",
        done.fingerprint()
    );
    Ok(())
}

async fn a_token_with_the_right_nonce_and_another_counter_is_stale<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(19)).await?;
    for counter in [
        token.counter().wrapping_add(1),
        token.counter().wrapping_sub(1),
    ] {
        let forged = FencingToken::new(counter, token.nonce());
        expect_stale(
            "renew with another counter",
            store.renew(&key, forged, h.lease()).await,
        )?;
        expect_stale(
            "release with another counter",
            store.release(&key, forged).await,
        )?;
        expect_stale(
            "complete with another counter",
            store
                .complete(
                    &key,
                    entry.clone().complete(CachedResponse::from("x")),
                    forged,
                )
                .await,
        )?;
    }
    let found = existing(h, &key, fingerprint(19)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "a forged counter changed the record: {found:?}"
    );
    Ok(())
}

async fn a_re_sent_claim_is_the_same_claim<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let sent = entry(h, fingerprint(20));
    let (token, _) = match store.try_insert(&key, sent.clone()).await {
        Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) => (fencing_token, entry),
        other => return Err(format!("first send: expected a claim, got {other:?}")),
    };
    ensure!(
        token.nonce() == sent.claim_nonce(),
        "the token's nonce is not the entry's"
    );
    // The reply was "lost": the same claim, sent again, is the caller's own.
    match store.try_insert(&key, sent.clone()).await {
        Ok(InsertResult::Claimed { fencing_token, .. }) => ensure!(
            fencing_token == token,
            "re-sent claim got {fencing_token:?}, first {token:?}"
        ),
        other => {
            return Err(format!(
                "re-sent claim: expected the same claim, got {other:?}"
            ));
        }
    }
    // Another request (another nonce) still sees it in flight.
    let found = existing(h, &key, fingerprint(20)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "another request found {found:?}"
    );
    store
        .release(&key, token)
        .await
        .map_err(|e| err("release of the re-sent claim", &e))?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "released record still returned: {got:?}");
    // Once completed, re-sending the claim finds the result: it never runs again.
    let (token, first) = claim(h, &key, fingerprint(20)).await?;
    let again = first.clone();
    store
        .complete(&key, first.complete(CachedResponse::from("20")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    match store.try_insert(&key, again).await {
        Ok(InsertResult::Exists(ExistingEntry::Completed(_))) => Ok(()),
        other => Err(format!("re-sent completed claim: got {other:?}")),
    }
}
