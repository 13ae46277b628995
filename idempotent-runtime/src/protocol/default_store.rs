//! The process-wide default store: a [`MemoryStore`](crate::MemoryStore) until the
//! application installs another at start-up.
//!
//! Falling back to it silently would be a trap: two instances of a service each with its own
//! in-memory store do not protect each other. So the fallback is loud — a WARN (feature
//! `tracing`, else a line on stderr) the first time it serves each operation — and an
//! application can forbid it ([`forbid_implicit_default_store`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;

use crate::{
    Completed, Error, ExistingEntry, FencingToken, IdempotencyEntry, IdempotencyKey,
    IdempotencyStore, InsertResult, Processing,
};

static DEFAULT: OnceLock<Arc<dyn IdempotencyStore>> = OnceLock::new();
/// Whether `DEFAULT` is the fallback nobody installed.
static IMPLICIT: AtomicBool = AtomicBool::new(false);
/// Whether the application forbade the fallback.
static FORBIDDEN: AtomicBool = AtomicBool::new(false);
/// The operations the fallback has served (each is warned about once). Read-locked on every
/// call the fallback serves, write-locked once per operation.
static WARNED: RwLock<Option<HashSet<String>>> = RwLock::new(None);

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

/// Forbids the implicit default: from now on an execution without `store = …` whose
/// application installed no store with [`set_default_store`] fails with [`Error::NoStore`]
/// (HTTP 500) and runs nothing — even if the implicit default served earlier calls. For
/// services that run on several instances, where a per-process store would protect nothing.
/// A store installed with [`set_default_store`] still serves.
///
/// ```
/// use idempotent_runtime::forbid_implicit_default_store;
///
/// forbid_implicit_default_store(); // at start-up, before serving
/// ```
pub fn forbid_implicit_default_store() {
    FORBIDDEN.store(true, Ordering::SeqCst);
}

/// The process-wide default store; creates a `MemoryStore` on first use when none was
/// installed (and nothing forbade it).
///
/// ```
/// use idempotent_runtime::{default_store, Error, Idempotent, IdempotencyKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// // What `Idempotent` and `#[idempotent]` use without `store = …`.
/// let key = IdempotencyKey::new("k-default")?;
/// Idempotent::new("op").store(default_store()).run(&key, &(), async { Ok::<_, Error>(()) }).await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn default_store() -> &'static dyn IdempotencyStore {
    let installed = DEFAULT.get().is_some() && !IMPLICIT.load(Ordering::SeqCst);
    if FORBIDDEN.load(Ordering::SeqCst) && !installed {
        static NONE: Unconfigured = Unconfigured(UnconfiguredWhy::Forbidden);
        return &NONE;
    }
    &**DEFAULT.get_or_init(|| {
        IMPLICIT.store(true, Ordering::SeqCst);
        fallback()
    })
}

/// The default store serving `operation`, warning the first time the implicit fallback does.
/// What the macro's output calls when the attribute names no store.
#[doc(hidden)]
#[must_use]
pub fn implicit_store(operation: &str) -> &'static dyn IdempotencyStore {
    let store = default_store();
    if IMPLICIT.load(Ordering::Relaxed) {
        warn_once(operation);
    }
    store
}

fn warn_once(operation: &str) {
    let seen = |set: &Option<HashSet<String>>| set.as_ref().is_some_and(|s| s.contains(operation));
    if WARNED.read().map_or(true, |set| seen(&set)) {
        return;
    }
    let Ok(mut warned) = WARNED.write() else {
        return;
    };
    if !warned
        .get_or_insert_with(HashSet::new)
        .insert(operation.to_owned())
    {
        return; // another thread warned in between
    }
    drop(warned);
    let message = "no idempotency store was installed: this operation uses a per-process in-memory store, which does not protect a service running on several instances; install one with `set_default_store` or pass `store = …`";
    #[cfg(feature = "tracing")]
    tracing::warn!(operation, "{message}");
    #[cfg(not(feature = "tracing"))]
    eprintln!("WARN idempotent: operation `{operation}`: {message}");
}

#[cfg(feature = "memory")]
fn fallback() -> Arc<dyn IdempotencyStore> {
    Arc::new(crate::MemoryStore::new())
}

#[cfg(not(feature = "memory"))]
fn fallback() -> Arc<dyn IdempotencyStore> {
    Arc::new(Unconfigured(UnconfiguredWhy::NoMemoryFeature))
}

/// Why there is no store.
#[derive(Debug, Clone, Copy)]
enum UnconfiguredWhy {
    #[cfg_attr(feature = "memory", allow(dead_code))]
    NoMemoryFeature,
    Forbidden,
}

/// No store: every call fails closed.
#[derive(Debug)]
struct Unconfigured(UnconfiguredWhy);

impl Unconfigured {
    fn error(&self) -> Error {
        match self.0 {
            UnconfiguredWhy::Forbidden => Error::NoStore,
            UnconfiguredWhy::NoMemoryFeature => Error::StoreUnavailable(
                "no default idempotency store: enable the `memory` feature or call `set_default_store`"
                    .into(),
            ),
        }
    }
}

#[async_trait]
impl IdempotencyStore for Unconfigured {
    async fn try_insert(
        &self,
        _: &IdempotencyKey,
        _: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        Err(self.error())
    }

    async fn complete(
        &self,
        _: &IdempotencyKey,
        _: IdempotencyEntry<Completed>,
        _: FencingToken,
    ) -> Result<(), Error> {
        Err(self.error())
    }

    async fn release(&self, _: &IdempotencyKey, _: FencingToken) -> Result<(), Error> {
        Err(self.error())
    }

    async fn renew(
        &self,
        _: &IdempotencyKey,
        _: FencingToken,
        _: std::time::Duration,
    ) -> Result<(), Error> {
        Err(self.error())
    }

    async fn get(&self, _: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error> {
        Err(self.error())
    }
}
