//! The process-wide default store: a [`MemoryStore`](crate::MemoryStore) until the
//! application installs another at start-up.

use std::sync::{Arc, OnceLock};

use crate::{Error, IdempotencyStore};

static DEFAULT: OnceLock<Arc<dyn IdempotencyStore>> = OnceLock::new();

/// Installs the store used by every `#[idempotent]` fn without `store = …`. Call it once at
/// start-up, before the first idempotent call.
///
/// # Errors
/// [`Error::DefaultStoreAlreadySet`] when a default store is already in place (installed
/// before, or created on first use); the existing one stays.
///
/// ```
/// use idempotent_runtime::{set_default_store, MemoryStore};
///
/// set_default_store(MemoryStore::builder().max_entries(1_000_000).build())?;
/// assert!(set_default_store(MemoryStore::new()).is_err());
/// # Ok::<(), idempotent_runtime::Error>(())
/// ```
pub fn set_default_store(store: impl IdempotencyStore + 'static) -> Result<(), Error> {
    DEFAULT
        .set(Arc::new(store))
        .map_err(|_| Error::DefaultStoreAlreadySet)
}

/// The process-wide default store; creates a `MemoryStore` on first use when none was
/// installed.
#[must_use]
pub fn default_store() -> &'static dyn IdempotencyStore {
    &**DEFAULT.get_or_init(fallback)
}

#[cfg(feature = "memory")]
fn fallback() -> Arc<dyn IdempotencyStore> {
    Arc::new(crate::MemoryStore::new())
}

#[cfg(not(feature = "memory"))]
fn fallback() -> Arc<dyn IdempotencyStore> {
    Arc::new(Unconfigured)
}

/// Without the `memory` feature there is no embedded store: every call fails closed.
#[cfg(not(feature = "memory"))]
struct Unconfigured;

#[cfg(not(feature = "memory"))]
#[async_trait::async_trait]
impl IdempotencyStore for Unconfigured {
    async fn try_insert(
        &self,
        _: &crate::IdempotencyKey,
        _: crate::IdempotencyEntry<crate::Processing>,
    ) -> Result<crate::InsertResult, Error> {
        Err(unconfigured())
    }

    async fn complete(
        &self,
        _: &crate::IdempotencyKey,
        _: crate::IdempotencyEntry<crate::Completed>,
        _: crate::FencingToken,
    ) -> Result<(), Error> {
        Err(unconfigured())
    }

    async fn release(
        &self,
        _: &crate::IdempotencyKey,
        _: crate::FencingToken,
    ) -> Result<(), Error> {
        Err(unconfigured())
    }

    async fn renew(
        &self,
        _: &crate::IdempotencyKey,
        _: crate::FencingToken,
        _: std::time::Duration,
    ) -> Result<(), Error> {
        Err(unconfigured())
    }

    async fn get(&self, _: &crate::IdempotencyKey) -> Result<Option<crate::ExistingEntry>, Error> {
        Err(unconfigured())
    }
}

#[cfg(not(feature = "memory"))]
fn unconfigured() -> Error {
    Error::StoreUnavailable(
        "no default idempotency store: enable the `memory` feature or call `set_default_store`"
            .into(),
    )
}
