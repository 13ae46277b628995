//! The second half of the protocol: run the handler under its claim with the lease heartbeat,
//! then complete, release, or leave the claim to lapse.

use std::time::Duration;

use super::acquire::Claim;
use super::codec::{Disposition, ResultCodec};
use super::current::{Guarded, Lease, Panicked};
use super::heartbeat::{Renewals, with_heartbeat};
use super::{Call, Spec, answer};
use crate::observe::{Observer, Outcome, Severity, store_call};
use crate::{
    Completed, Error, ExistingEntry, FencingToken, Fingerprint, IdempotencyEntry, IdempotencyKey,
    IdempotencyStore, Processing,
};

/// The second half: runs the handler under `claim` with the lease heartbeat, then completes,
/// releases or leaves the claim to lapse. The handler comes pinned (`Unpin`: boxed where it
/// was made, so it is boxed once).
///
/// A plain fn around an `async move` block, as are the futures that hold this one: an async
/// fn's state keeps each argument twice (rust-lang/rust#62958), and a claimed execution's
/// future is boxed to run detached, so its size is an allocation's. For the same reason the
/// claim is read in place, and the result is never borrowed here (a local once borrowed
/// keeps its room in every later await, even after it was moved on).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice in its state"
)]
pub(crate) fn run_claimed<'a, R, C, F>(
    observer: &'a Observer,
    store: &'a dyn IdempotencyStore,
    spec: &'a Spec,
    claim: Claim,
    handler: F,
) -> impl Future<Output = R> + 'a
where
    R: 'a,
    C: ResultCodec<R>,
    F: Future<Output = R> + Unpin + 'a,
{
    async move {
        let (key, token): (&IdempotencyKey, _) = (&claim.stored_key, claim.token);
        let _in_flight = observer.claimed(token);
        let Ok(result) =
            heartbeat(observer, store, key, token, claim.sent, spec.lease, handler).await
        else {
            // Panicked: the side effect may have run. Neither completed nor released: the
            // claim lapses with its lease.
            return answer::<R, C>(observer, Error::HandlerPanicked);
        };
        // Read in `encoded`, so neither is borrowed here; the option is moved whole (through
        // `identity`), so neither it nor the entry keeps its room in this future once the
        // entry is handed on (a local moved out of only in part keeps it).
        let (result, completed) = encoded::<R, C>(&claim.entry, result, spec.max_body);
        let Some((completed, replayable, fingerprint, ttl)) = std::convert::identity(completed)
        else {
            release(observer, store, key, token).await;
            return result;
        };
        // A retry encodes the result again rather than keep a copy of this entry: a clone
        // would make its response's bytes shared (an allocation, and atomic counts on every
        // drop) for the rare retry, and the store would keep them shared as long as it keeps
        // the record.
        let again = |result: &R| completion(claim.entry.clone(), C::encode(result, spec.max_body));
        // Awaited before the match: a future in a match's scrutinee stays in this future's
        // state through every arm's own awaits.
        let (result, stored) =
            complete_with_retry(store, key, token, completed, result, again).await;
        match stored {
            Err(Error::StaleFencingToken) => {
                superseded::<R, C>(observer, store, key, fingerprint).await
            }
            Err(e @ Error::CapacityExceeded { .. }) => {
                // The result does not fit: record that it happened, so retries never re-run it.
                observer.report(
                    Severity::Warn,
                    "the result did not fit in the store: completed as not replayable",
                    &e,
                );
                let done = || {
                    IdempotencyEntry::new(fingerprint)
                        .with_ttl(ttl)
                        .complete_not_replayable()
                };
                let (result, _) =
                    complete_with_retry(store, key, token, done(), result, |_| Some(done())).await;
                observer.outcome(Outcome::NotReplayable);
                result
            }
            Ok(()) => {
                observer.outcome(Outcome::completed(replayable));
                result
            }
            // The store is unreachable after retries: the side effect happened and the caller
            // gets its result, while the claim lapses with its lease (the documented risk of
            // an unreachable store).
            Err(e) => {
                observer.report(
                    Severity::Error,
                    "the handler ran but its result could not be stored; its claim lapses with its lease",
                    &e,
                );
                observer.outcome(Outcome::StoreError);
                result
            }
        }
    }
}

/// The entry a claim is completed with, whether it holds a response, its fingerprint and TTL.
type Completion = (IdempotencyEntry<Completed>, bool, Fingerprint, Duration);

/// `result` handed back with the entry its encoding completes the claim with (`None`: release
/// it). Takes the result by value and reads the entry here, so the future that calls it
/// borrows neither.
fn encoded<R, C: ResultCodec<R>>(
    entry: &IdempotencyEntry<Processing>,
    result: R,
    max_body: usize,
) -> (R, Option<Completion>) {
    let completed = completion(entry.clone(), C::encode(&result, max_body)).map(|completed| {
        let replayable = completed.response().is_some();
        let (fingerprint, ttl) = (completed.fingerprint(), completed.ttl());
        (completed, replayable, fingerprint, ttl)
    });
    (result, completed)
}

/// Runs `handler` (pinned) under the claim `token` (sent at `sent`): visible through
/// `current_claim`, its panics caught, its lease renewed in the background. `Err` when it
/// panicked.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice in its state"
)]
pub(super) fn heartbeat<'a, F: Future + Unpin + 'a>(
    observer: &'a Observer,
    store: &'a dyn IdempotencyStore,
    key: &'a IdempotencyKey,
    token: FencingToken,
    sent: tokio::time::Instant,
    lease: Duration,
    handler: F,
) -> impl Future<Output = Result<F::Output, Panicked>> + 'a {
    async move {
        let state = Lease::new(token, sent, lease);
        let renewals = Renewals {
            observer,
            store,
            key,
            token,
            lease,
            state: &state,
        };
        let ran = with_heartbeat(renewals, Guarded::new(handler, state.clone())).await;
        observer.renewals(state.renewals());
        ran
    }
}

/// The entry a codec's disposition completes the claim with; `None`: release it.
pub(super) fn completion(
    entry: IdempotencyEntry<Processing>,
    disposition: Disposition,
) -> Option<IdempotencyEntry<Completed>> {
    match disposition {
        Disposition::Complete(response) => Some(entry.complete(response)),
        Disposition::NotReplayable => Some(entry.complete_not_replayable()),
        Disposition::Release => None,
    }
}

/// Gives up a claim whose handler never started (the caller refused to run it): released, so
/// a retry runs normally.
#[cfg(feature = "axum")]
pub(crate) async fn release_unstarted(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    claim: Claim,
) {
    release(observer, store, &claim.stored_key, claim.token).await;
}

/// Gives the claim up (nothing was committed) so a retry may run again. Fenced: a release with
/// a stale token changes nothing; if it fails the claim lapses with its lease, which is just
/// as safe.
pub(super) async fn release(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    token: FencingToken,
) {
    if let Err(e) = store_call(store.kind(), "release", store.release(key, token)).await {
        observer.report(
            Severity::Warn,
            "the claim of a failed request could not be released; it lapses with its lease",
            &e,
        );
    }
    observer.outcome(Outcome::Released);
}

/// The answer for a handler whose completion was refused as stale: its claim lapsed (a slow
/// handler, a stalled process, an unreachable store) and the key may have been taken over. If
/// the key completed for the same request, that result is the answer every retry gets, so
/// this caller gets it too; otherwise [`Error::StaleFencingToken`].
pub(super) async fn superseded<R, C: ResultCodec<R>>(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
) -> R {
    let stored = store_call(store.kind(), "get", store.get(key)).await;
    let Ok(Some(ExistingEntry::Completed(done))) = stored else {
        return answer::<R, C>(observer, Error::StaleFencingToken);
    };
    if done.fingerprint() != fingerprint {
        return answer::<R, C>(observer, Error::StaleFencingToken);
    }
    observer.report(
        Severity::Warn,
        "the claim lapsed and another request completed the key: answering with its result",
        &Error::StaleFencingToken,
    );
    let Some(response) = done.response() else {
        observer.outcome(Outcome::Stale);
        return C::error(Error::NotReplayable);
    };
    match C::decode(response) {
        Ok(result) => {
            observer.outcome(Outcome::Stale);
            result
        }
        Err(e) => answer::<R, C>(observer, e),
    }
}

/// `complete` with `entry`, retried with the same token — and the entry `again` makes of
/// `result` — when the reply is lost: completing the same claim twice is a no-op, so a retry
/// after a lost success is harmless. Hands `result` back: held by value, never borrowed
/// across an await, so the future is `Send` whenever `R` is (a borrow would need `R: Sync`).
///
/// A plain fn around an `async move` block, not an `async fn`: an async fn's state keeps each
/// argument twice (rust-lang/rust#62958), and the result can be a whole HTTP response.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice in its state"
)]
fn complete_with_retry<'a, R: 'a>(
    store: &'a dyn IdempotencyStore,
    key: &'a IdempotencyKey,
    token: FencingToken,
    entry: IdempotencyEntry<Completed>,
    result: R,
    again: impl Fn(&R) -> Option<IdempotencyEntry<Completed>> + 'a,
) -> impl Future<Output = (R, Result<(), Error>)> + 'a {
    let call = move |entry| {
        Call::of(
            store,
            entry,
            move |now, entry| now.complete_now(key, entry, token),
            move |entry| store.complete(key, entry, token),
        )
    };
    // Made here and polled where it lies (`&mut`): the entry is held once, in the call.
    let mut complete = call(entry);
    async move {
        let mut attempt = 0;
        loop {
            let e = match store_call(store.kind(), "complete", &mut complete).await {
                Err(e @ Error::StoreUnavailable(_)) if attempt < 3 => e,
                other => return (result, other),
            };
            attempt += 1;
            // Boxed: a retry is rare, and its timer in place would be in every completion's
            // future.
            Box::pin(tokio::time::sleep(Duration::from_millis(10 << attempt))).await;
            // The same result: its encoding differs only if its `Serialize` is not
            // deterministic, and any encoding of it is a right answer for a retry.
            let Some(next) = again(&result) else {
                return (result, Err(e));
            };
            complete = call(next);
        }
    }
}
