//! [`IdempotencyStore`]: the trait every backend implements, and its contract.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    CachedResponse, Completed, Error, FencingToken, Fingerprint, IdempotencyEntry, IdempotencyKey,
    Processing,
};

mod immediate;
#[cfg(any(
    feature = "memory",
    feature = "valkey",
    feature = "postgres",
    feature = "sqlite"
))]
mod lifetimes;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[macro_use]
mod sql;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "valkey")]
pub mod valkey;
#[cfg(any(feature = "valkey", feature = "postgres", feature = "sqlite"))]
mod wire;

pub use immediate::ImmediateStore;

/// What [`IdempotencyStore::try_insert`] found.
///
/// ```
/// use idempotent_runtime::{Fingerprint, IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idempotent_runtime::Error> {
/// let (store, key) = (MemoryStore::new(), IdempotencyKey::new("k")?);
/// let first = store.try_insert(&key, IdempotencyEntry::new(Fingerprint::from_u128(1))).await?;
/// assert!(matches!(first, InsertResult::Claimed { .. }));
/// let second = store.try_insert(&key, IdempotencyEntry::new(Fingerprint::from_u128(1))).await?;
/// assert!(matches!(second, InsertResult::Exists(_)), "another request finds it in flight");
/// # Ok(())
/// # }
/// ```
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

/// A live record found under a key: what the store keeps of it, and nothing invented (no
/// lifetimes a store did not keep, never the holder's claim nonce).
///
/// ```
/// use idempotent_runtime::{ExistingEntry, Fingerprint, ProcessingRecord};
///
/// let found = ExistingEntry::Processing(ProcessingRecord::new(Fingerprint::from_u128(7)));
/// assert_eq!(found.fingerprint(), Fingerprint::from_u128(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingEntry {
    /// Another claim holds the key and its lease has not lapsed.
    Processing(ProcessingRecord),
    /// The key completed; its result is replayable until its TTL ends.
    Completed(CompletedRecord),
}

impl ExistingEntry {
    /// The fingerprint of the request that made the record.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            Self::Processing(record) => record.fingerprint(),
            Self::Completed(record) => record.fingerprint(),
        }
    }
}

/// A claim in flight, as another request sees it: the fingerprint of the request holding it.
///
/// ```
/// use idempotent_runtime::{Fingerprint, ProcessingRecord};
///
/// let record = ProcessingRecord::new(Fingerprint::from_u128(7));
/// assert_eq!(record.fingerprint(), Fingerprint::from_u128(7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingRecord {
    fingerprint: Fingerprint,
}

impl ProcessingRecord {
    /// The record of a claim made for `fingerprint` (for stores that read one back).
    #[must_use]
    pub const fn new(fingerprint: Fingerprint) -> Self {
        Self { fingerprint }
    }

    /// The fingerprint of the request holding the claim.
    #[must_use]
    pub const fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// A completed record: the fingerprint of the request that ran, and its result (`None` when
/// it was completed as "done, not replayable").
///
/// ```
/// use idempotent_runtime::{CachedResponse, CompletedRecord, Fingerprint, IdempotencyEntry};
///
/// let done = IdempotencyEntry::new(Fingerprint::from_u128(1)).complete(CachedResponse::from("ok"));
/// let record = CompletedRecord::from(done);
/// assert_eq!(record.response().map(|r| r.body().as_ref()), Some(b"ok".as_slice()));
/// assert!(CompletedRecord::new(Fingerprint::from_u128(1), None).response().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedRecord {
    fingerprint: Fingerprint,
    response: Option<CachedResponse>,
}

impl CompletedRecord {
    /// The record of a completion (for stores that read one back).
    #[must_use]
    pub const fn new(fingerprint: Fingerprint, response: Option<CachedResponse>) -> Self {
        Self {
            fingerprint,
            response,
        }
    }

    /// The fingerprint of the request that ran.
    #[must_use]
    pub const fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The result to replay; `None` when it ran but its result could not be kept.
    #[must_use]
    pub const fn response(&self) -> Option<&CachedResponse> {
        self.response.as_ref()
    }

    /// The result, taken out.
    #[must_use]
    pub fn into_response(self) -> Option<CachedResponse> {
        self.response
    }
}

impl From<IdempotencyEntry<Completed>> for CompletedRecord {
    fn from(entry: IdempotencyEntry<Completed>) -> Self {
        let fingerprint = entry.fingerprint();
        Self::new(fingerprint, entry.into_response())
    }
}

/// A store whose records live in the application's database, so the completion of a claim can
/// be written **in the handler's own transaction** and commit with its writes (transactional
/// mode, [`Idempotent::run_in_transaction`](crate::Idempotent::run_in_transaction)).
///
/// The runtime opens a transaction with [`begin`](Self::begin), hands it to the handler, writes
/// the completion with [`complete_in`](Self::complete_in) — fenced by the claim, like
/// [`IdempotencyStore::complete`] — and [`commit`](Self::commit)s. A transaction dropped without
/// commit rolls back.
///
/// ```
/// use idempotent_runtime::{store::TransactionalStore, SqliteStore};
///
/// fn needs_transactions<S: TransactionalStore>(_: &S) {}
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// needs_transactions(&store);
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot run a handler in a transaction",
    label = "`transaction = …` needs a store whose records live in the handler's database",
    note = "use a `SqliteStore` or `PostgresStore` built on the application's pool (features `sqlite`, `postgres`), or drop `transaction = …`"
)]
#[async_trait]
pub trait TransactionalStore: IdempotencyStore {
    /// The handler's transaction (a sqlx `Transaction` on the store's pool).
    type Transaction: Send;

    /// Opens a transaction on the store's database.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`].
    async fn begin(&self) -> Result<Self::Transaction, Error>;

    /// Writes the completion of the claim named by `token` in `transaction`.
    ///
    /// # Errors
    /// [`Error::StaleFencingToken`] when no row matched (the claim lapsed or was taken over):
    /// the caller must roll the transaction back. [`Error::FingerprintMismatch`],
    /// [`Error::InvalidDuration`], [`Error::StoreUnavailable`].
    async fn complete_in(
        &self,
        transaction: &mut Self::Transaction,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error>;

    /// Commits the handler's writes and the completion together.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] (a commit whose outcome is unknown, too).
    async fn commit(&self, transaction: Self::Transaction) -> Result<(), Error>;
}

/// What a transactional handler returns: its future, which may borrow the transaction for
/// `'t` (sqlx's shape for transaction closures: `|tx| Box::pin(async move { … })`).
///
/// ```
/// use idempotent_runtime::{store::TransactionFuture, Error};
///
/// fn handler(tx: &mut u32) -> TransactionFuture<'_, Result<u32, Error>> {
///     Box::pin(async move { Ok(*tx) })
/// }
/// # let _ = handler;
/// ```
pub type TransactionFuture<'t, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 't>>;

macro_rules! forward_transactional {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: TransactionalStore + ?Sized> TransactionalStore for $ty {
            type Transaction = S::Transaction;

            async fn begin(&self) -> Result<Self::Transaction, Error> {
                (**self).begin().await
            }

            async fn complete_in(
                &self,
                transaction: &mut Self::Transaction,
                key: &IdempotencyKey,
                entry: IdempotencyEntry<Completed>,
                token: FencingToken,
            ) -> Result<(), Error> {
                (**self).complete_in(transaction, key, entry, token).await
            }

            async fn commit(&self, transaction: Self::Transaction) -> Result<(), Error> {
                (**self).commit(transaction).await
            }
        }
    )*};
}

forward_transactional!(Arc<S>, &S);

/// The source of an [`Error::StoreUnavailable`] whose call was sent but whose reply never came
/// (a response timeout, a connection that died with the command in flight): the call **may
/// have taken effect**. A store wraps such failures in it, so the runtime knows that a claim
/// may have landed unseen, and resolves it (see
/// [`IdempotencyStore::detached`]); a plain `StoreUnavailable` means the call did not reach the
/// store.
///
/// ```
/// use idempotent_runtime::{Error, store::ReplyLost};
///
/// let lost = Error::StoreUnavailable(Box::new(ReplyLost::new("no reply within 2s")));
/// assert!(lost.may_have_applied());
/// assert!(!Error::StoreUnavailable("connection refused".into()).may_have_applied());
/// ```
#[derive(Debug)]
pub struct ReplyLost(crate::BoxError);

impl ReplyLost {
    /// Wraps the backend's error (the timeout).
    pub fn new(source: impl Into<crate::BoxError>) -> Self {
        Self(source.into())
    }
}

impl std::fmt::Display for ReplyLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no reply (the call may have taken effect): {}", self.0)
    }
}

impl std::error::Error for ReplyLost {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A backend that keeps idempotency records. Each method is **one atomic step** in the backend.
///
/// # Contract
/// Every store, and [`crate::conformance`] checks each point:
/// - `try_insert` claims the key when no live record holds it — absent, completed past its TTL,
///   released, or `Processing` past its lease — and returns a [`FencingToken`] whose nonce is
///   the entry's [`claim_nonce`](IdempotencyEntry::claim_nonce) and whose counter is larger
///   than that of every earlier claim of the key. Otherwise it returns the live record and
///   changes nothing — except that an entry whose nonce is the live claim's own (the same
///   claim re-sent, after its reply was lost) gets that claim back: `Claimed` with the same
///   token. It checks the entry's TTL and lease first
///   ([`check_duration`](crate::check_duration)) and writes nothing when they are invalid.
/// - A token is its nonce **and** its counter: `complete`, `renew` and `release` with a token
///   that differs from the current claim's in either give [`Error::StaleFencingToken`].
/// - `complete` stores the result if the token is the current claim's and the entry's
///   fingerprint is the claim's (else [`Error::FingerprintMismatch`], nothing changes); the
///   record then lives for the entry's TTL from now. Completing the same claim again is a
///   no-op that succeeds (the first result stands). Any other token — a lapsed, released,
///   taken-over or unknown claim — gives [`Error::StaleFencingToken`] and changes nothing.
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
    /// [`Error::StaleFencingToken`], [`Error::FingerprintMismatch`] (the entry is not the
    /// claim's request), [`Error::InvalidDuration`], [`Error::CapacityExceeded`]
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

    /// A handle to this store that may outlive the call, for work the runtime finishes in the
    /// background: re-sending a claim whose reply was lost ([`ReplyLost`]) and releasing it,
    /// so it does not block its key for a lease. Stores that are cheap handles return
    /// `Some(Arc::new(self.clone()))`; the default `None` leaves such a claim to lapse.
    ///
    /// ```
    /// use idempotent_runtime::{IdempotencyStore, MemoryStore};
    ///
    /// assert!(MemoryStore::new().detached().is_some());
    /// ```
    fn detached(&self) -> Option<Arc<dyn IdempotencyStore>> {
        None
    }

    /// This store's claim and completion as plain calls, for a store that answers them at
    /// once ([`ImmediateStore`]); the runtime then takes them instead of `try_insert` and
    /// `complete`. Default `None`.
    ///
    /// ```
    /// use idempotent_runtime::{IdempotencyStore, MemoryStore};
    ///
    /// assert!(MemoryStore::new().immediate().is_some());
    /// ```
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        None
    }
}

/// What an `#[async_trait]` method of [`IdempotencyStore`] returns.
pub(crate) type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// The keyed calls of a forwarding impl: `name(args after the key) -> output;` each.
macro_rules! forward_calls {
    ($($name:ident($($arg:ident: $arg_ty:ty),*) -> $out:ty;)*) => {$(
        fn $name<'s, 'k, 'f>(
            &'s self,
            key: &'k IdempotencyKey,
            $($arg: $arg_ty),*
        ) -> StoreFuture<'f, $out>
        where
            's: 'f,
            'k: 'f,
            Self: 'f,
        {
            (**self).$name(key, $($arg),*)
        }
    )*};
}

/// A store behind a pointer is the store: each call hands back the pointee's own boxed future
/// (written out by hand, as `#[async_trait]` expands it, so a call through `&S` or `Arc<S>` —
/// the attribute's `store = …` — boxes once, not twice).
macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: IdempotencyStore + ?Sized> IdempotencyStore for $ty {
            forward_calls! {
                try_insert(entry: IdempotencyEntry<Processing>) -> InsertResult;
                complete(entry: IdempotencyEntry<Completed>, token: FencingToken) -> ();
                release(token: FencingToken) -> ();
                renew(token: FencingToken, lease: Duration) -> ();
                get() -> Option<ExistingEntry>;
            }

            fn kind(&self) -> &'static str {
                (**self).kind()
            }

            fn detached(&self) -> Option<Arc<dyn IdempotencyStore>> {
                (**self).detached()
            }

            fn immediate(&self) -> Option<&dyn ImmediateStore> {
                (**self).immediate()
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>, &S);
