//! [`Error`]: every way an idempotent execution or a store call can fail, one variant each.

use std::time::Duration;

use crate::{FingerprintError, KeyError};

/// A boxed error from a store's backend (a connection error, a timeout).
///
/// ```
/// use idempotent_runtime::{BoxError, Error};
///
/// let source: BoxError = "connection refused".into();
/// let error = Error::StoreUnavailable(source);
/// assert!(error.to_string().contains("connection refused"));
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type of this crate. Each variant is stable and documented; match on the ones
/// you handle and let the rest through (`#[non_exhaustive]`).
///
/// ```
/// use idempotent_runtime::{Error, Idempotent, IdempotencyKey, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let store = MemoryStore::new();
/// let key = IdempotencyKey::new("k-1")?;
/// let op = Idempotent::new("orders.pay").store(&store);
/// op.run(&key, &1, async { Ok::<_, Error>(()) }).await?;
/// match op.run(&key, &2, async { Ok::<_, Error>(()) }).await {
///     Err(Error::FingerprintMismatch) => {} // the client reused its key: tell it so
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The idempotency key is malformed.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// The request could not be fingerprinted.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// The key was used before with a different request (another fingerprint).
    #[error("the idempotency key was already used with a different request")]
    FingerprintMismatch,
    /// A request with this key is still being processed.
    #[error("a request with this idempotency key is still being processed")]
    InFlight,
    /// The fencing token does not name the key's current claim: the claim lapsed, was
    /// released, was taken over, or the store lost it. Nothing was changed.
    #[error("stale fencing token: the claim lapsed, was released or was taken over")]
    StaleFencingToken,
    /// A TTL or lease is zero or out of range. Nothing was written.
    #[error("invalid {name} {value:?}: it must be between 1ms and {max:?}")]
    InvalidDuration {
        /// `"ttl"` or `"lease"`.
        name: &'static str,
        /// The refused value.
        value: Duration,
        /// The largest accepted value.
        max: Duration,
    },
    /// The store is at its capacity bound and refuses new claims (it never evicts a live record).
    #[error("idempotency store is full: {limit} limit of {max} reached")]
    CapacityExceeded {
        /// `"entries"` or `"bytes"`.
        limit: &'static str,
        /// The configured bound.
        max: usize,
    },
    /// The store could not be reached or did not answer. Fail closed: nothing ran.
    #[error("idempotency store unavailable: {0}")]
    StoreUnavailable(#[source] BoxError),
    /// A stored record could not be decoded. It is never treated as absent.
    #[error("stored idempotency record is corrupt: {0}")]
    Corrupt(String),
    /// The handler panicked. Its claim is neither completed nor released (the side effect may
    /// have run): it lapses at the end of its lease.
    #[error("the idempotent handler panicked; its key is held until the lease lapses")]
    HandlerPanicked,
    /// The request with this key ran, but its result was too large or could not be
    /// serialized, so it cannot be replayed. It will not run again.
    #[error("the request with this idempotency key already ran, but its result cannot be replayed")]
    NotReplayable,
    /// No store was given and the implicit default store is forbidden
    /// ([`forbid_implicit_default_store`](crate::forbid_implicit_default_store)). Nothing ran.
    #[error(
        "no idempotency store configured: pass `store = …` or call `set_default_store` at start-up"
    )]
    NoStore,
    /// The store is not set up for use: a missing or older table (run its `migrate()`), an
    /// invalid table name. Nothing was written.
    #[error("idempotency store misconfigured: {0}")]
    Misconfigured(String),
    /// `set_default_store` was called when a default store was already in place.
    #[error("a default idempotency store is already installed")]
    DefaultStoreAlreadySet,
}

impl Error {
    /// Whether the failed store call may still have taken effect: its reply was lost
    /// ([`ReplyLost`](crate::store::ReplyLost)), as after a response timeout. The runtime
    /// resolves a claim sent that way; a retry with the same key is safe either way.
    #[must_use]
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Self::StoreUnavailable(source) if source.is::<crate::store::ReplyLost>())
    }
}

/// The longest TTL or lease a store accepts: 365 days.
///
/// ```
/// use idempotent_runtime::{check_duration, MAX_DURATION};
///
/// assert!(check_duration("ttl", MAX_DURATION).is_ok());
/// assert!(check_duration("ttl", MAX_DURATION * 2).is_err());
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Checks a TTL or lease: non-zero, whole milliseconds at least 1, at most [`MAX_DURATION`].
///
/// # Errors
/// [`Error::InvalidDuration`] when `value` is under 1 ms or over [`MAX_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::{check_duration, Error};
///
/// assert!(check_duration("ttl", Duration::from_secs(600)).is_ok());
/// assert!(matches!(check_duration("ttl", Duration::ZERO), Err(Error::InvalidDuration { .. })));
/// ```
pub fn check_duration(name: &'static str, value: Duration) -> Result<(), Error> {
    if value < Duration::from_millis(1) || value > MAX_DURATION {
        return Err(Error::InvalidDuration {
            name,
            value,
            max: MAX_DURATION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened() {
        assert_eq!(
            Error::from(KeyError::Empty).to_string(),
            "idempotency key is empty"
        );
        assert_eq!(
            Error::CapacityExceeded {
                limit: "entries",
                max: 10
            }
            .to_string(),
            "idempotency store is full: entries limit of 10 reached"
        );
        assert_eq!(
            check_duration("lease", Duration::from_micros(10)).map_err(|e| e.to_string()),
            Err("invalid lease 10µs: it must be between 1ms and 31536000s".to_owned())
        );
        assert!(check_duration("ttl", MAX_DURATION + Duration::from_secs(1)).is_err());
        assert!(check_duration("ttl", MAX_DURATION).is_ok());
        let unavailable = Error::StoreUnavailable("connection refused".into());
        assert_eq!(
            unavailable.to_string(),
            "idempotency store unavailable: connection refused"
        );
        assert!(std::error::Error::source(&unavailable).is_some());
    }
}
