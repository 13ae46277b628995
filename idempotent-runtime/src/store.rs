//! [`IdempotencyStore`]: the trait every backend implements, and its contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Completed, Error, FencingToken, IdempotencyEntry, IdempotencyKey, Processing};

#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "valkey")]
pub mod valkey;

/// What [`IdempotencyStore::try_insert`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a claim must be completed or released, and an existing entry replayed or reported"]
pub enum InsertResult {
    /// The key was free (absent, expired, released, or its lease lapsed): the caller now holds
    /// the claim and must run the side effect, then `complete` or `release` with this token.
    Claimed {
        /// Proof of the claim; present it to `complete`, `renew` and `release`.
        fencing_token: FencingToken,
        /// The entry, to `complete` when the side effect is done.
        entry: IdempotencyEntry<Processing>,
    },
    /// The key is taken by a live record.
    Exists(ExistingEntry),
}

/// A live record found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingEntry {
    /// Another claim holds the key and its lease has not lapsed.
    Processing(IdempotencyEntry<Processing>),
    /// The key completed; its result is replayable until its TTL ends.
    Completed(IdempotencyEntry<Completed>),
}

impl ExistingEntry {
    /// The fingerprint of the request that made the record.
    #[must_use]
    pub fn fingerprint(&self) -> crate::Fingerprint {
        match self {
            Self::Processing(entry) => entry.fingerprint(),
            Self::Completed(entry) => entry.fingerprint(),
        }
    }
}

/// A backend that keeps idempotency records. Each method is **one atomic step** in the backend.
///
/// # Contract
/// Every store, and [`crate::conformance`] checks each point:
/// - `try_insert` claims the key when no live record holds it — absent, completed past its TTL,
///   released, or `Processing` past its lease — and returns a [`FencingToken`] whose counter is
///   larger than that of every earlier claim of the key. Otherwise it returns the live record
///   and changes nothing. It checks the entry's TTL and lease first
///   ([`check_duration`](crate::check_duration)) and writes nothing when they are invalid.
/// - `complete` stores the result if the token is the current claim's; the record then lives
///   for the entry's TTL from now. Completing the same claim again is a no-op that succeeds
///   (the first result stands). Any other token — a lapsed, released, taken-over or unknown
///   claim — gives [`Error::StaleFencingToken`] and changes nothing.
/// - `release` deletes the `Processing` record if the token is the current claim's, so a
///   retry may run again; otherwise `StaleFencingToken` and nothing changes. A completed
///   record is never released.
/// - `renew` extends the current `Processing` claim's lease to `lease` from now; otherwise
///   `StaleFencingToken`.
/// - `get` returns the live record, if any. A record that cannot be decoded is
///   [`Error::Corrupt`], never `None`; an unreachable backend is [`Error::StoreUnavailable`].
///
/// The trait is object safe: `Arc<dyn IdempotencyStore>` is a store.
///
/// ```
/// use std::sync::Arc;
/// use idempotent_runtime::{IdempotencyStore, MemoryStore};
///
/// let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an idempotency store",
    label = "implement `IdempotencyStore` for it, or use `MemoryStore`",
    note = "a store is passed by reference or `Arc`: `store = state.store` where the field is a `MemoryStore` or an `Arc<dyn IdempotencyStore>`"
)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `entry`, or returns the live record that holds it.
    ///
    /// # Errors
    /// [`Error::InvalidDuration`], [`Error::CapacityExceeded`], [`Error::StoreUnavailable`],
    /// [`Error::Corrupt`].
    async fn try_insert(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error>;

    /// Stores the result of the claim named by `token`.
    ///
    /// # Errors
    /// [`Error::StaleFencingToken`], [`Error::InvalidDuration`], [`Error::CapacityExceeded`]
    /// (the result does not fit: complete it as not replayable instead),
    /// [`Error::StoreUnavailable`], [`Error::Corrupt`].
    async fn complete(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error>;

    /// Gives up the claim named by `token`, so a retry may run again.
    ///
    /// # Errors
    /// [`Error::StaleFencingToken`], [`Error::StoreUnavailable`], [`Error::Corrupt`].
    async fn release(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error>;

    /// Extends the lease of the claim named by `token` to `lease` from now.
    ///
    /// # Errors
    /// [`Error::StaleFencingToken`], [`Error::InvalidDuration`], [`Error::StoreUnavailable`],
    /// [`Error::Corrupt`].
    async fn renew(
        &self,
        key: &IdempotencyKey,
        token: FencingToken,
        lease: Duration,
    ) -> Result<(), Error>;

    /// The live record under `key`, if any.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`], [`Error::Corrupt`].
    async fn get(&self, key: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error>;

    /// A short name for spans and metrics: `"memory"`, `"valkey"`. Default `"custom"`.
    fn kind(&self) -> &'static str {
        "custom"
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: IdempotencyStore + ?Sized> IdempotencyStore for $ty {
            async fn try_insert(
                &self,
                key: &IdempotencyKey,
                entry: IdempotencyEntry<Processing>,
            ) -> Result<InsertResult, Error> {
                (**self).try_insert(key, entry).await
            }

            async fn complete(
                &self,
                key: &IdempotencyKey,
                entry: IdempotencyEntry<Completed>,
                token: FencingToken,
            ) -> Result<(), Error> {
                (**self).complete(key, entry, token).await
            }

            async fn release(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error> {
                (**self).release(key, token).await
            }

            async fn renew(
                &self,
                key: &IdempotencyKey,
                token: FencingToken,
                lease: Duration,
            ) -> Result<(), Error> {
                (**self).renew(key, token, lease).await
            }

            async fn get(&self, key: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error> {
                (**self).get(key).await
            }

            fn kind(&self) -> &'static str {
                (**self).kind()
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>, &S);
