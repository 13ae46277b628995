//! [`Idempotent`]: the protocol without the macro.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::codec::{CacheErrors, Plain, ResultCodec};
use super::default_store::implicit_store;
use super::{Concurrency, Spec, execute, storage_key};
use crate::store::{TransactionFuture, TransactionalStore};
use crate::{
    DefaultFingerprintStrategy, Error, Fingerprint, FingerprintStrategy, IdempotencyKey,
    IdempotencyStore,
};

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
    strategy: Option<&'a dyn FingerprintStrategy>,
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
            strategy: None,
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

    /// Fingerprints requests with `strategy` instead of [`DefaultFingerprintStrategy`]. The
    /// strategy is given the request as its JSON (`serde_json`) bytes, so it can leave out
    /// what may differ between retries of one request, or normalize it.
    ///
    /// ```
    /// use idempotent_runtime::{
    ///     DefaultFingerprintStrategy, Error, Fingerprint, FingerprintStrategy, Idempotent,
    ///     IdempotencyKey, MemoryStore,
    /// };
    ///
    /// /// A retry may carry a new `trace_id`: it is still the same request.
    /// struct IgnoreTraceId;
    ///
    /// impl FingerprintStrategy for IgnoreTraceId {
    ///     fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
    ///         let mut json: serde_json::Value =
    ///             serde_json::from_slice(content).unwrap_or(serde_json::Value::Null);
    ///         if let Some(fields) = json.as_object_mut() {
    ///             fields.remove("trace_id");
    ///         }
    ///         DefaultFingerprintStrategy.compute(operation, json.to_string().as_bytes())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let store = MemoryStore::new();
    /// let key = IdempotencyKey::new("order-42")?;
    /// let op = Idempotent::new("orders.pay").store(&store).fingerprint_strategy(&IgnoreTraceId);
    /// let first = serde_json::json!({ "cents": 100, "trace_id": "a1" });
    /// let retry = serde_json::json!({ "cents": 100, "trace_id": "b2" });
    /// assert_eq!(op.fingerprint(&first)?, op.fingerprint(&retry)?);
    /// let paid = op.run(&key, &first, async { Ok::<_, Error>("paid".to_owned()) }).await?;
    /// let again = op.run(&key, &retry, async { Ok::<_, Error>("twice!".to_owned()) }).await?;
    /// assert_eq!(again, paid);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn fingerprint_strategy(mut self, strategy: &'a dyn FingerprintStrategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// The fingerprint of `request` for this operation, by this operation's strategy.
    ///
    /// # Errors
    /// [`Error::Fingerprint`] when `request` fails to serialize.
    pub fn fingerprint<Q: Serialize + ?Sized>(&self, request: &Q) -> Result<Fingerprint, Error> {
        match self.strategy {
            None => Ok(DefaultFingerprintStrategy.compute_value(self.operation, request)?),
            Some(strategy) => super::strategy::fingerprint_value(strategy, self.operation, request),
        }
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

    /// Transactional mode: runs `handler` once for `key` and `request` inside a transaction on
    /// `store`'s own database, and writes the completion in that transaction, fenced by the
    /// claim, so the handler's writes and the record commit together. Retries get the stored
    /// `Ok` value. An `Err`, a panic or a lapsed claim rolls everything back (an `Err` also
    /// releases the key): exactly once for the writes made on `tx`. Write every query on the
    /// transaction the closure gets; the library commits it. The closure is sqlx's own shape for
    /// transactions, `|tx| Box::pin(async move { … })`, so it runs in spawned tasks too; what
    /// it captures it owns (clone an `Arc` in, as with sqlx).
    ///
    /// ```
    /// use idempotent_runtime::{Error, Idempotent, IdempotencyKey, SqliteStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::query("CREATE TABLE charges (cents INTEGER)").execute(&pool).await?;
    /// let store = SqliteStore::new(pool.clone());
    /// store.migrate().await?;
    /// let key = IdempotencyKey::new("charge-1")?;
    /// let op = Idempotent::new("charges.create");
    /// let failed: Result<(), Error> = op
    ///     .run_in_transaction(&store, &key, &500, |tx| Box::pin(async move {
    ///         sqlx::query("INSERT INTO charges VALUES (500)").execute(&mut **tx).await
    ///             .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    ///         Err(Error::NotReplayable) // the gateway said no: the row above rolls back
    ///     }))
    ///     .await;
    /// assert!(failed.is_err());
    /// let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM charges").fetch_one(&pool).await?;
    /// assert_eq!(rows, 0, "nothing was committed; the key is free for the retry");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The handler's own errors, and every [`Error`] of the protocol through `E: From<Error>`.
    pub async fn run_in_transaction<S, T, E, Q, H>(
        &self,
        store: &S,
        key: &IdempotencyKey,
        request: &Q,
        handler: H,
    ) -> Result<T, E>
    where
        S: TransactionalStore,
        Q: Serialize + ?Sized,
        H: for<'t> FnOnce(&'t mut S::Transaction) -> TransactionFuture<'t, Result<T, E>>,
        Plain: ResultCodec<Result<T, E>>,
    {
        let scope = self.scope.as_deref();
        let handler = move |mut transaction| async move {
            let result = handler(&mut transaction).await;
            (transaction, result)
        };
        super::transaction::run::<_, Plain, S, _, _>(
            store,
            &self.spec,
            self.operation,
            Ok(storage_key(self.operation, scope, key)),
            self.fingerprint(request),
            handler,
        )
        .await
    }

    async fn run_with<R, C: ResultCodec<R>, Q: Serialize + ?Sized, F: Future<Output = R>>(
        &self,
        key: &IdempotencyKey,
        request: &Q,
        handler: F,
    ) -> R {
        let store = self.store.unwrap_or_else(|| implicit_store(self.operation));
        execute::<R, C, F>(
            store,
            &self.spec,
            self.operation,
            Ok(storage_key(self.operation, self.scope.as_deref(), key)),
            self.fingerprint(request),
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
            .field("custom_fingerprint_strategy", &self.strategy.is_some())
            .finish_non_exhaustive()
    }
}
