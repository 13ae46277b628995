//! The execution protocol (DESIGN §3): claim, run with a lease heartbeat, complete or release,
//! replay, report conflicts. [`Idempotent`] is its public face; the macro calls
//! `__private::execute`, the same function.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use tokio::time::Instant;

use crate::claim::{ClaimState, Guarded};
use crate::codec::{CacheErrors, Disposition, Plain, ResultCodec};
use crate::default_store::implicit_store;
use crate::observe::{self, Observer, Outcome, Severity, store_call};
use crate::{
    CompletedRecord, DEFAULT_LEASE, DEFAULT_TTL, DefaultFingerprintStrategy, Error, ExistingEntry,
    FencingToken, Fingerprint, IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult,
    Processing, StoredKey,
};

/// The largest result kept for replay, unless configured: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// What a request does when another request with its key is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Answer at once with [`Error::InFlight`] (HTTP 409). The default.
    Reject,
    /// Wait up to this long for the other request to finish, then replay its result (or
    /// [`Error::InFlight`] at the timeout).
    Wait(Duration),
}

/// The options of an execution: what the attribute says. `const`-constructible, so the
/// macro emits it as a `static`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    ttl: Duration,
    lease: Duration,
    concurrency: Concurrency,
    max_body: usize,
}

impl Spec {
    /// The defaults: TTL 24 h, lease 30 s, reject concurrent requests, keep results up to
    /// 1 MiB.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            concurrency: Concurrency::Reject,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Sets the TTL.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lease.
    #[must_use]
    pub const fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the policy for concurrent requests.
    #[must_use]
    pub const fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the largest result kept for replay.
    #[must_use]
    pub const fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }
}

impl Default for Spec {
    fn default() -> Self {
        Self::new()
    }
}

/// The key a record is stored under: SHA-256 over the length-prefixed (version, operation,
/// scope, client key), as 64 hex digits. Fixed length, no user bytes: no principal's key can
/// meet another's, and no client can pick a Redis Cluster hash tag. Operators find a customer's
/// request in the logs by its first 16 digits (the `key` of spans and events).
///
/// ```
/// use idempotent_runtime::{storage_key, IdempotencyKey};
///
/// let key = IdempotencyKey::new("k")?;
/// let alice = storage_key("orders.pay", Some("alice"), &key);
/// let bob = storage_key("orders.pay", Some("bob"), &key);
/// assert_ne!(alice, bob);
/// assert_eq!(alice.as_str().len(), 64);
/// # Ok::<(), idempotent_runtime::KeyError>(())
/// ```
#[must_use]
pub fn storage_key(operation: &str, scope: Option<&str>, key: &IdempotencyKey) -> StoredKey {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(b"idempotent.key.v1");
    part(operation.as_bytes());
    match scope {
        Some(scope) => {
            part(b"scoped");
            part(scope.as_bytes());
        }
        None => part(b"unscoped"),
    }
    part(key.as_str().as_bytes());
    StoredKey::from_digest(&hasher.finalize().into())
}

/// Runs `handler` at most once per key, per DESIGN §3. `R` is the handler's result and `C`
/// how it is stored. Never panics; every failure is reported through `C::error`.
pub async fn execute<R, C, F>(
    store: &dyn IdempotencyStore,
    spec: &Spec,
    operation: &str,
    scope: Option<&str>,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
    handler: F,
) -> R
where
    C: ResultCodec<R>,
    F: Future<Output = R>,
{
    let observer = Observer::start(operation);
    observer
        .scope(async {
            match claim::<R, C>(&observer, store, spec, operation, scope, key, fingerprint).await {
                Step::Done(result) => result,
                Step::Claimed(claim) => {
                    run_claimed::<R, C, F>(&observer, store, spec, claim, handler).await
                }
            }
        })
        .await
}

/// The answer that reports `error`, recorded as the execution's outcome (and as an event
/// when operators should see it).
pub(crate) fn answer<R, C: ResultCodec<R>>(observer: &Observer, error: Error) -> R {
    observer.outcome(Outcome::of(&error));
    observer.report_answer(&error);
    C::error(error)
}

/// The first half of the protocol: a claim to run the handler under, or the answer without
/// running it (a replay, a conflict, an error).
pub(crate) enum Step<R> {
    /// The caller holds the claim and must run the handler ([`run_claimed`]).
    Claimed(Claim),
    /// The answer; the handler must not run.
    Done(R),
}

/// A claim taken by [`claim`].
pub(crate) struct Claim {
    stored_key: StoredKey,
    token: FencingToken,
    entry: IdempotencyEntry<Processing>,
    /// When the claim was sent: its lease started no earlier.
    sent: Instant,
}

/// Claims the key, or answers: replay, `FingerprintMismatch`, `InFlight` (after waiting, with
/// `concurrent = wait`), or a store error.
pub(crate) async fn claim<R, C: ResultCodec<R>>(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    spec: &Spec,
    operation: &str,
    scope: Option<&str>,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
) -> Step<R> {
    let stored_key = storage_key(operation, scope, key);
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
        let claimed = store_call(
            kind,
            "try_insert",
            store.try_insert(&stored_key, entry.clone()),
        );
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

/// How many lost claims this process resolves at once; beyond it they lapse with their lease.
const MAX_LOST_CLAIMS: usize = 1024;
static LOST_CLAIMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A claim whose reply was lost may have landed: every retry would then see it in flight for
/// a whole lease. The runtime knows the claim it sent, so, in the background, it re-sends that
/// very claim (same nonce) until the store answers, and releases what comes back as its own.
/// Bounded: it gives up after one lease (the claim has lapsed by then anyway), and at most
/// [`MAX_LOST_CLAIMS`] run at once. Needs a store handle that outlives the call
/// ([`IdempotencyStore::detached`]) and a tokio runtime; without either the claim lapses.
fn release_lost_claim(
    operation: &str,
    store: &dyn IdempotencyStore,
    key: &StoredKey,
    entry: IdempotencyEntry<Processing>,
) {
    let (Some(store), Ok(runtime)) = (store.detached(), tokio::runtime::Handle::try_current())
    else {
        return;
    };
    if LOST_CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_LOST_CLAIMS {
        LOST_CLAIMS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    let (operation, key) = (operation.to_owned(), key.clone());
    runtime.spawn(async move {
        resolve_lost_claim(&operation, &*store, &key, entry).await;
        LOST_CLAIMS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    });
}

async fn resolve_lost_claim(
    operation: &str,
    store: &dyn IdempotencyStore,
    key: &StoredKey,
    entry: IdempotencyEntry<Processing>,
) {
    let give_up = Instant::now() + entry.lease();
    let mut pause = Duration::from_millis(50);
    while Instant::now() < give_up {
        match store.try_insert(key, entry.clone()).await {
            Ok(InsertResult::Claimed { fencing_token, .. }) => {
                // Ours: the claim landed (or the key was free). Give it up.
                while Instant::now() < give_up {
                    match store.release(key, fencing_token).await {
                        Err(Error::StoreUnavailable(_)) => tokio::time::sleep(pause).await,
                        Err(e) => {
                            let why =
                                "a lost claim could not be released; it lapses with its lease";
                            observe::event(Severity::Warn, operation, key.as_str(), why, &e);
                            return;
                        }
                        Ok(()) => return,
                    }
                }
                return;
            }
            // Another request's record: nothing of ours to clean up.
            Ok(InsertResult::Exists(_)) => return,
            Err(Error::StoreUnavailable(_)) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(e) => {
                let why = "a lost claim could not be resolved; it lapses with its lease";
                observe::event(Severity::Warn, operation, key.as_str(), why, &e);
                return;
            }
        }
    }
}

/// The second half: runs the handler under `claim` with the lease heartbeat, then completes,
/// releases or leaves the claim to lapse.
pub(crate) async fn run_claimed<R, C, F>(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    spec: &Spec,
    claim: Claim,
    handler: F,
) -> R
where
    C: ResultCodec<R>,
    F: Future<Output = R>,
{
    let Claim {
        stored_key,
        token,
        entry,
        sent,
    } = claim;
    let key: &IdempotencyKey = &stored_key;
    let _in_flight = observer.claimed(token);
    let claim = ClaimState::new(token, sent, spec.lease);
    let guarded = Guarded::new(handler, claim.clone());
    let ran = with_heartbeat(observer, store, key, token, spec.lease, &claim, guarded).await;
    observer.renewals(claim.renewals());
    let Ok(result) = ran else {
        // Panicked: the side effect may have run. Neither completed nor released: the claim
        // lapses with its lease.
        return answer::<R, C>(observer, Error::HandlerPanicked);
    };
    let kind = store.kind();
    let completed = match C::encode(&result, spec.max_body) {
        Disposition::Complete(response) => entry.complete(response),
        Disposition::NotReplayable => entry.complete_not_replayable(),
        Disposition::Release => {
            // Fenced: a release with a stale token changes nothing. If it fails the claim
            // lapses with its lease, which is just as safe.
            if let Err(e) = store_call(kind, "release", store.release(key, token)).await {
                observer.report(
                    Severity::Warn,
                    "the claim of a failed request could not be released; it lapses with its lease",
                    &e,
                );
            }
            observer.outcome(Outcome::Released);
            return result;
        }
    };
    let replayable = completed.response().is_some();
    let (fingerprint, ttl) = (completed.fingerprint(), completed.ttl());
    match complete_with_retry(store, key, completed, token).await {
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
            let done = IdempotencyEntry::new(fingerprint)
                .with_ttl(ttl)
                .complete_not_replayable();
            let _ = complete_with_retry(store, key, done, token).await;
            observer.outcome(Outcome::NotReplayable);
            result
        }
        Ok(()) => {
            observer.outcome(if replayable {
                Outcome::Executed
            } else {
                Outcome::NotReplayable
            });
            result
        }
        // The store is unreachable after retries: the side effect happened and the caller
        // gets its result, while the claim lapses with its lease (the documented risk of an
        // unreachable store).
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

/// The answer for a handler whose completion was refused as stale: its claim lapsed (a slow
/// handler, a stalled process, an unreachable store) and the key may have been taken over. If
/// the key completed for the same request, that result is the answer every retry gets, so
/// this caller gets it too; otherwise [`Error::StaleFencingToken`].
async fn superseded<R, C: ResultCodec<R>>(
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

/// `complete`, retried with the same token when the reply is lost: completing the same claim
/// twice is a no-op, so a retry after a lost success is harmless.
async fn complete_with_retry(
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    entry: IdempotencyEntry<crate::Completed>,
    token: FencingToken,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        match store_call(
            store.kind(),
            "complete",
            store.complete(key, entry.clone(), token),
        )
        .await
        {
            Err(Error::StoreUnavailable(_)) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Polls `handler` while renewing the claim every `lease / 3`. A rejected renewal marks the
/// claim lost (the handler sees it through [`crate::current_claim`]); a failed one is retried
/// at the next tick. A successful one moves the local lease deadline to when it was sent plus
/// the lease.
async fn with_heartbeat<F: Future>(
    observer: &Observer,
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    token: FencingToken,
    lease: Duration,
    claim: &Arc<ClaimState>,
    handler: F,
) -> F::Output {
    let period = lease / 3;
    let mut handler = pin!(handler);
    // Made at the first `Pending`: a handler that finishes in one poll never touches the timer.
    let mut tick: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut renewal = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = handler.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let tick = tick.get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
        loop {
            if let Some((sent, pending)) = renewal.as_mut() {
                let Poll::Ready(result) = Future::poll(std::pin::Pin::as_mut(pending), cx) else {
                    return Poll::Pending;
                };
                match result {
                    Ok(()) => claim.renewed(*sent, lease),
                    Err(Error::StaleFencingToken) => {
                        claim.mark_lost();
                        observer.report(
                            Severity::Warn,
                            "lease renewal refused: the claim lapsed and may belong to another request",
                            &Error::StaleFencingToken,
                        );
                    }
                    Err(e) => observer.report(Severity::Warn, "lease renewal failed", &e),
                }
                renewal = None;
                tick.as_mut().reset(Instant::now() + period);
            } else {
                if tick.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                renewal = Some((
                    Instant::now(),
                    Box::pin(store_call(store.kind(), "renew", store.renew(key, token, lease))),
                ));
            }
        }
    })
    .await
}

/// Runs a fallible async operation at most once per idempotency key, without the macro.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use idempotent_runtime::{Error, Idempotent, IdempotencyKey, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// static CHARGES: AtomicUsize = AtomicUsize::new(0);
/// let store = MemoryStore::new();
/// let key = IdempotencyKey::new("order-42")?;
/// let charge = || async {
///     CHARGES.fetch_add(1, Ordering::SeqCst);
///     Ok::<String, Error>("receipt #1".to_owned())
/// };
/// let op = Idempotent::new("orders.charge").store(&store);
/// let first = op.run(&key, &(42, "EUR 10.00"), charge()).await?;
/// let retry = op.run(&key, &(42, "EUR 10.00"), charge()).await?;
/// assert_eq!((first.as_str(), retry.as_str()), ("receipt #1", "receipt #1"));
/// assert_eq!(CHARGES.load(Ordering::SeqCst), 1);
/// assert!(matches!(op.run(&key, &(42, "EUR 99.00"), charge()).await, Err(Error::FingerprintMismatch)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Idempotent<'a> {
    store: Option<&'a dyn IdempotencyStore>,
    spec: Spec,
    operation: &'a str,
    scope: Option<String>,
}

impl<'a> Idempotent<'a> {
    /// An operation named `operation` on the default store, with the defaults of [`Spec::new`].
    #[must_use]
    pub fn new(operation: &'a str) -> Self {
        Self {
            store: None,
            spec: Spec::new(),
            operation,
            scope: None,
        }
    }

    /// Uses `store` instead of the process-wide default.
    #[must_use]
    pub fn store(mut self, store: &'a dyn IdempotencyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps the keys of one tenant or principal apart from every other's.
    #[must_use]
    pub fn scope(mut self, scope: impl std::fmt::Display) -> Self {
        self.scope = Some(scope.to_string());
        self
    }

    /// How long a result is replayed. Default 24 h.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.spec = self.spec.ttl(ttl);
        self
    }

    /// How long a claim holds without a heartbeat. Default 30 s.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.spec = self.spec.lease(lease);
        self
    }

    /// What a request does while another with its key runs. Default [`Concurrency::Reject`].
    #[must_use]
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.spec = self.spec.concurrency(concurrency);
        self
    }

    /// The largest result kept for replay. Default 1 MiB.
    #[must_use]
    pub fn max_body(mut self, max_body: usize) -> Self {
        self.spec = self.spec.max_body(max_body);
        self
    }

    /// The fingerprint of `request` for this operation.
    ///
    /// # Errors
    /// [`Error::Fingerprint`] when `request` fails to serialize.
    pub fn fingerprint<Q: Serialize + ?Sized>(&self, request: &Q) -> Result<Fingerprint, Error> {
        Ok(DefaultFingerprintStrategy.compute_value(self.operation, request)?)
    }

    /// Runs `handler` once for `key` and `request` (what is fingerprinted); retries get the
    /// stored `Ok` value. An `Err` releases the claim so a retry runs again.
    ///
    /// # Errors
    /// The handler's own errors, and every [`Error`] of the protocol through `E: From<Error>`.
    pub async fn run<T, E, Q, F>(
        &self,
        key: &IdempotencyKey,
        request: &Q,
        handler: F,
    ) -> Result<T, E>
    where
        Q: Serialize + ?Sized,
        F: Future<Output = Result<T, E>>,
        Plain: ResultCodec<Result<T, E>>,
    {
        self.run_with::<_, Plain, _, _>(key, request, handler).await
    }

    /// Like [`Idempotent::run`], but `Err` values are stored and replayed too.
    ///
    /// # Errors
    /// As [`Idempotent::run`].
    pub async fn run_caching_errors<T, E, Q, F>(
        &self,
        key: &IdempotencyKey,
        request: &Q,
        handler: F,
    ) -> Result<T, E>
    where
        Q: Serialize + ?Sized,
        F: Future<Output = Result<T, E>>,
        CacheErrors: ResultCodec<Result<T, E>>,
    {
        self.run_with::<_, CacheErrors, _, _>(key, request, handler)
            .await
    }

    async fn run_with<R, C: ResultCodec<R>, Q: Serialize + ?Sized, F: Future<Output = R>>(
        &self,
        key: &IdempotencyKey,
        request: &Q,
        handler: F,
    ) -> R {
        let fingerprint = match self.fingerprint(request) {
            Ok(fingerprint) => fingerprint,
            Err(e) => return answer::<R, C>(&Observer::start(self.operation), e),
        };
        let store = self.store.unwrap_or_else(|| implicit_store(self.operation));
        execute::<R, C, F>(
            store,
            &self.spec,
            self.operation,
            self.scope.as_deref(),
            key,
            fingerprint,
            handler,
        )
        .await
    }
}

impl std::fmt::Debug for Idempotent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent")
            .field("operation", &self.operation)
            .field("scope", &self.scope)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}
