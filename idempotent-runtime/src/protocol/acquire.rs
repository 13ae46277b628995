//! The first half of the protocol: take the claim, or answer without running the handler
//! (a replay, a mismatch, in flight — after waiting with `concurrent = wait` — or a store
//! error).

use std::time::Duration;

use tokio::time::Instant;

use super::codec::ResultCodec;
use super::lost::release_lost_claim;
use super::{Call, Concurrency, Spec, answer};
use crate::observe::{Observer, Outcome, store_call};
use crate::{
    CompletedRecord, Error, ExistingEntry, FencingToken, Fingerprint, IdempotencyEntry,
    IdempotencyKey, IdempotencyStore, InsertResult, Processing, StoredKey,
};

/// The first half of the protocol: a claim to run the handler under, or the answer without
/// running it (a replay, a conflict, an error).
pub(crate) enum Step<R> {
    /// The caller holds the claim and must run the handler ([`run_claimed`](super::run_claimed)).
    Claimed(Claim),
    /// The answer; the handler must not run.
    Done(R),
}

/// A claim taken by [`acquire`].
pub(crate) struct Claim {
    pub(super) stored_key: StoredKey,
    pub(super) token: FencingToken,
    pub(super) entry: IdempotencyEntry<Processing>,
    /// When the claim was sent: its lease started no earlier.
    pub(super) sent: Instant,
}

/// Takes the claim on `stored_key`, or answers: replay, `FingerprintMismatch`, `InFlight`
/// (after waiting, with `concurrent = wait`), or a store error.
pub(crate) async fn acquire<R, C: ResultCodec<R>>(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    spec: &Spec,
    operation: &str,
    stored_key: StoredKey,
    fingerprint: Fingerprint,
) -> Step<R> {
    observer.key(&stored_key);
    let kind = store.kind();
    let deadline = match spec.concurrency {
        Concurrency::Reject => None,
        Concurrency::Wait(limit) => Some(Instant::now() + limit),
    };
    let mut backoff = Duration::from_millis(2);
    loop {
        let entry = IdempotencyEntry::new(fingerprint)
            .with_ttl(spec.ttl)
            .with_lease(spec.lease);
        let sent = Instant::now();
        let key: &IdempotencyKey = &stored_key;
        let claim = Call::of(
            store,
            entry.clone(),
            |now, entry| now.try_insert_now(key, entry),
            |entry| store.try_insert(key, entry),
        );
        let claimed = store_call(kind, "try_insert", claim);
        let existing = match claimed.await {
            Err(e) if e.may_have_applied() => {
                // The claim may have landed with its reply lost: resolve it in the background.
                release_lost_claim(operation, store, &stored_key, entry);
                return Step::Done(answer::<R, C>(observer, e));
            }
            Err(e) => return Step::Done(answer::<R, C>(observer, e)),
            Ok(InsertResult::Claimed {
                fencing_token,
                entry,
            }) => {
                return Step::Claimed(Claim {
                    stored_key,
                    token: fencing_token,
                    entry,
                    sent,
                });
            }
            Ok(InsertResult::Exists(existing)) => existing,
        };
        if let Found::Answer(answer) = classify::<R, C>(observer, existing, fingerprint) {
            return Step::Done(answer);
        }
        // In flight: reject, or wait for the holder and look again.
        let Some(deadline) = deadline else {
            return Step::Done(answer::<R, C>(observer, Error::InFlight));
        };
        loop {
            if Instant::now() + backoff > deadline {
                return Step::Done(answer::<R, C>(observer, Error::InFlight));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
            match store_call(kind, "get", store.get(&stored_key)).await {
                Err(e) => return Step::Done(answer::<R, C>(observer, e)),
                Ok(Some(existing)) => match classify::<R, C>(observer, existing, fingerprint) {
                    Found::Answer(answer) => return Step::Done(answer),
                    Found::InFlight => {}
                },
                Ok(None) => break, // released or lapsed: try to claim it ourselves
            }
        }
    }
}

/// What a live record means for a request with `fingerprint`.
enum Found<R> {
    /// The answer: a replay, or a mismatch.
    Answer(R),
    /// The same request is still in flight.
    InFlight,
}

/// A record of another request is a mismatch; a completed one of this request its replay.
fn classify<R, C: ResultCodec<R>>(
    observer: &Observer,
    existing: ExistingEntry,
    fingerprint: Fingerprint,
) -> Found<R> {
    if existing.fingerprint() != fingerprint {
        return Found::Answer(answer::<R, C>(observer, Error::FingerprintMismatch));
    }
    match existing {
        ExistingEntry::Completed(done) => Found::Answer(replay::<R, C>(observer, &done)),
        ExistingEntry::Processing(_) => Found::InFlight,
    }
}

fn replay<R, C: ResultCodec<R>>(observer: &Observer, done: &CompletedRecord) -> R {
    let Some(response) = done.response() else {
        return answer::<R, C>(observer, Error::NotReplayable);
    };
    match C::decode(response) {
        Ok(result) => {
            observer.outcome(Outcome::Replayed);
            result
        }
        Err(e) => answer::<R, C>(observer, e),
    }
}
