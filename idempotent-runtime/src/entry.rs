//! [`IdempotencyEntry`]: the typestate of a record, `Processing` → `Completed`.
//!
//! A claimed entry can be completed exactly once: `complete` consumes a
//! `IdempotencyEntry<Processing>` and returns a `IdempotencyEntry<Completed>`, which has no
//! `complete` method; and a store's `complete` accepts only a `Completed` entry. Both misuses
//! are compile errors.
//!
//! ```compile_fail
//! use idempotent_runtime::{CachedResponse, DefaultFingerprintStrategy, FingerprintStrategy, IdempotencyEntry};
//!
//! let fp = DefaultFingerprintStrategy.compute("op", b"");
//! let done = IdempotencyEntry::new(fp).complete(CachedResponse::from("a"));
//! let again = done.complete(CachedResponse::from("b")); // no `complete` on a Completed entry
//! ```

use std::fmt;
use std::time::Duration;

use crate::{CachedResponse, Fingerprint};

/// How long a completed result is replayed, unless an entry says otherwise: 24 hours.
///
/// ```
/// use idempotent_runtime::{DEFAULT_TTL, Fingerprint, IdempotencyEntry};
///
/// assert_eq!(IdempotencyEntry::new(Fingerprint::from_u128(1)).ttl(), DEFAULT_TTL);
/// ```
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a `Processing` claim holds without a heartbeat, unless an entry says otherwise.
///
/// ```
/// use idempotent_runtime::{DEFAULT_LEASE, Fingerprint, IdempotencyEntry};
///
/// assert_eq!(IdempotencyEntry::new(Fingerprint::from_u128(1)).lease(), DEFAULT_LEASE);
/// ```
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

mod sealed {
    /// Only this crate's states are entry states.
    #[allow(
        unnameable_types,
        reason = "sealed: the point is that nobody else can name it"
    )]
    pub trait Sealed {}
}

/// The state of an [`IdempotencyEntry`]: [`Processing`] or [`Completed`]. Sealed.
///
/// ```
/// use idempotent_runtime::{EntryState, IdempotencyEntry};
///
/// // Code generic over both states reads what every entry has.
/// fn describe<S: EntryState>(entry: &IdempotencyEntry<S>) -> String {
///     format!("{:?} for {:?}", entry.fingerprint(), entry.ttl())
/// }
/// # let _ = describe(&IdempotencyEntry::new(idempotent_runtime::Fingerprint::from_u128(1)));
/// ```
pub trait EntryState: sealed::Sealed + fmt::Debug + Clone + Send + Sync + 'static {}

/// A claim is held and the handler runs. Carries the claim's random nonce.
///
/// ```
/// use idempotent_runtime::{Fingerprint, IdempotencyEntry, Processing};
///
/// let entry: IdempotencyEntry<Processing> = IdempotencyEntry::new(Fingerprint::from_u128(1));
/// # let _ = entry;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Processing {
    nonce: u128,
}

impl fmt::Debug for Processing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The nonce is the claim's secret half: never in logs.
        f.debug_struct("Processing").finish_non_exhaustive()
    }
}

/// The handler finished; its result (if it could be kept) is replayed.
///
/// ```
/// use idempotent_runtime::{CachedResponse, Completed, Fingerprint, IdempotencyEntry};
///
/// let done: IdempotencyEntry<Completed> =
///     IdempotencyEntry::new(Fingerprint::from_u128(1)).complete(CachedResponse::from("ok"));
/// assert!(done.response().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    response: Option<CachedResponse>,
}

impl sealed::Sealed for Processing {}
impl sealed::Sealed for Completed {}
impl EntryState for Processing {}
impl EntryState for Completed {}

/// One record of the idempotency store, in state `S`.
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::{CachedResponse, DefaultFingerprintStrategy, FingerprintStrategy, IdempotencyEntry};
///
/// let fingerprint = DefaultFingerprintStrategy.compute("POST /credentials/issue", b"VerifiableCredential");
/// let entry = IdempotencyEntry::new(fingerprint).with_ttl(Duration::from_secs(600));
/// let done = entry.complete(CachedResponse::from("credential #1"));
/// assert_eq!(done.response().map(|r| r.body().as_ref()), Some(b"credential #1".as_slice()));
/// assert_eq!(done.ttl(), Duration::from_secs(600));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use = "an entry does nothing until it is given to a store; a claimed one lapses with its lease"]
pub struct IdempotencyEntry<S: EntryState = Processing> {
    fingerprint: Fingerprint,
    ttl: Duration,
    lease: Duration,
    state: S,
}

impl IdempotencyEntry<Processing> {
    /// A new entry in `Processing`, with the default TTL (24 h) and lease (30 s), and a fresh
    /// random claim nonce.
    ///
    /// An entry is **one claim attempt**: a store's claim carries the entry's nonce, and
    /// giving the same entry (or a clone) to `try_insert` again while that claim is live
    /// returns the same claim — so a claim whose reply was lost can be re-sent, and released.
    /// Build a new entry for every request.
    ///
    /// ```
    /// use idempotent_runtime::{Fingerprint, IdempotencyEntry};
    ///
    /// let a = IdempotencyEntry::new(Fingerprint::from_u128(1));
    /// let b = IdempotencyEntry::new(Fingerprint::from_u128(1));
    /// assert_ne!(a.claim_nonce(), b.claim_nonce(), "two requests, two claims");
    /// assert_eq!(a.clone().claim_nonce(), a.claim_nonce(), "one claim, re-sent");
    /// ```
    pub fn new(fingerprint: Fingerprint) -> Self {
        Self {
            fingerprint,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            state: Processing {
                nonce: rand::random(),
            },
        }
    }

    /// An entry whose claim nonce is `nonce` (a deserialized entry keeps its claim).
    #[cfg(feature = "serde")]
    pub(crate) fn with_nonce(fingerprint: Fingerprint, nonce: u128) -> Self {
        Self {
            fingerprint,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            state: Processing { nonce },
        }
    }

    /// The random 128-bit nonce of the claim this entry makes: the nonce of the
    /// [`FencingToken`](crate::FencingToken) a store issues for it.
    #[must_use]
    pub fn claim_nonce(&self) -> u128 {
        self.state.nonce
    }

    /// Sets how long the completed result will be replayed.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long the claim holds without a renewal.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Completes the entry with the result to replay. Consumes it: a claim completes once.
    pub fn complete(self, response: CachedResponse) -> IdempotencyEntry<Completed> {
        self.finish(Some(response))
    }

    /// Completes the entry as "done, not replayable": the side effect happened but its result
    /// could not be kept (too large, or not serializable). Retries learn that it happened and
    /// never run it again.
    ///
    /// ```
    /// use idempotent_runtime::{Fingerprint, IdempotencyEntry};
    ///
    /// let done = IdempotencyEntry::new(Fingerprint::from_u128(1)).complete_not_replayable();
    /// assert!(done.response().is_none());
    /// ```
    pub fn complete_not_replayable(self) -> IdempotencyEntry<Completed> {
        self.finish(None)
    }

    fn finish(self, response: Option<CachedResponse>) -> IdempotencyEntry<Completed> {
        IdempotencyEntry {
            fingerprint: self.fingerprint,
            ttl: self.ttl,
            lease: self.lease,
            state: Completed { response },
        }
    }
}

impl IdempotencyEntry<Completed> {
    /// The result to replay; `None` when the entry was completed as not replayable.
    #[must_use]
    pub fn response(&self) -> Option<&CachedResponse> {
        self.state.response.as_ref()
    }

    /// The result, taken out.
    #[must_use]
    pub fn into_response(self) -> Option<CachedResponse> {
        self.state.response
    }
}

impl<S: EntryState> IdempotencyEntry<S> {
    /// The fingerprint of the request that made this entry.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// How long a completed result is replayed, counted from its completion.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long a `Processing` claim holds without a renewal.
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.lease
    }
}

impl<S: EntryState> fmt::Debug for IdempotencyEntry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyEntry")
            .field("fingerprint", &self.fingerprint)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_entries_have_default_lifetimes_and_keep_them_through_completion() {
        let fp = Fingerprint::from_u128(9);
        let entry = IdempotencyEntry::new(fp);
        assert_eq!((entry.ttl(), entry.lease()), (DEFAULT_TTL, DEFAULT_LEASE));
        let done = entry
            .with_ttl(Duration::from_secs(5))
            .with_lease(Duration::from_secs(1))
            .complete(CachedResponse::from("x"));
        assert_eq!(done.fingerprint(), fp);
        assert_eq!(
            (done.ttl(), done.lease()),
            (Duration::from_secs(5), Duration::from_secs(1))
        );
        assert_eq!(
            done.clone().into_response(),
            Some(CachedResponse::from("x"))
        );
        assert!(format!("{done:?}").contains("Completed"));
    }
}
