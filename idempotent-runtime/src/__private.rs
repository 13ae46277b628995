//! Only for the code `#[idempotent]` generates. Not a public API: no stability promise.

pub use crate::protocol::codec::{CacheErrors, Disposition, Plain, ResultCodec};
pub use crate::protocol::default_store::implicit_store;
pub use crate::protocol::{Concurrency, KeyPrefix, Spec, execute};
pub use crate::{Error, Fingerprint, IdempotencyKey, IdempotencyStore, StoredKey};
pub use core::time::Duration;

/// A run-time `ttl = …` or `lease = …`: must be a `Duration` (a type error here points at the
/// expression). Its bounds are checked at each call, like every duration the protocol gets.
#[must_use]
pub const fn runtime_duration(duration: Duration) -> Duration {
    duration
}

use serde::Serialize;

use crate::FingerprintBuilder;

/// What `key = <expr>` may evaluate to.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as an idempotency key",
    label = "`key = …` must evaluate to a string: a `String`, `&str` or `IdempotencyKey`",
    note = "for the `Idempotency-Key` header of an axum handler, write `key = header`"
)]
pub trait IntoKey {
    /// The key's stored key for `operation` (whose `prefix` it is) and `scope`, checked by the
    /// rules of [`IdempotencyKey::new`] but never copied: the protocol only needs its hash.
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    fn stored_key(
        self,
        prefix: &KeyPrefix,
        operation: &str,
        scope: Option<&str>,
    ) -> Result<StoredKey, Error>;
}

/// Anything that reads as a string: `String`, `&str`, `IdempotencyKey`, `Box<str>`, `Cow<str>`.
/// The macro passes a reference, so `key = req.key` never moves the argument.
impl<T: AsRef<str> + ?Sized> IntoKey for &T {
    fn stored_key(
        self,
        prefix: &KeyPrefix,
        operation: &str,
        scope: Option<&str>,
    ) -> Result<StoredKey, Error> {
        Ok(crate::protocol::checked_storage_key(
            prefix,
            operation,
            scope,
            self.as_ref(),
        )?)
    }
}

/// A fingerprinted argument must be `Serialize`.
#[diagnostic::on_unimplemented(
    message = "argument `{Self}` cannot be fingerprinted: it does not implement `serde::Serialize`",
    label = "fingerprinted here",
    note = "derive `Serialize` for it, leave it out with `skip(…)`, or name the fields to hash with `fingerprint(…)`"
)]
pub trait Fingerprintable {}

impl<T: Serialize + ?Sized> Fingerprintable for T {}

/// Compile-time check that an argument can be fingerprinted; spanned at the argument.
pub const fn assert_fingerprintable<T: Fingerprintable + ?Sized>(_: &T) {}

/// Runs a plain `#[idempotent]` fn: the key and the fingerprint as the generated code computed
/// them (an error is answered without running anything), then the protocol. The one generic
/// call with the `ResultCodec` bound, spanned at the return type by the macro, so a return type
/// that cannot be stored is reported once, there.
pub fn run<R, C, F>(
    store: &dyn IdempotencyStore,
    spec: &Spec,
    operation: &str,
    key: Result<StoredKey, Error>,
    fingerprint: Result<Fingerprint, Error>,
    handler: F,
) -> impl core::future::Future<Output = R>
where
    C: ResultCodec<R>,
    F: core::future::Future<Output = R>,
{
    // The protocol's own future, not one around it: each layer of async fn would keep a copy.
    execute::<R, C, F>(store, spec, operation, key, fingerprint, handler)
}

/// Runs a plain `#[idempotent(…, transaction = tx)]` fn: as [`run`], in transactional mode on
/// `store` (the body gets the transaction).
pub fn run_transactional<R, C, S, H, F>(
    store: &S,
    spec: &Spec,
    operation: &str,
    key: Result<StoredKey, Error>,
    fingerprint: Result<Fingerprint, Error>,
    handler: H,
) -> impl core::future::Future<Output = R>
where
    C: ResultCodec<R>,
    S: crate::store::TransactionalStore,
    H: FnOnce(S::Transaction) -> F,
    F: core::future::Future<Output = (S::Transaction, R)>,
{
    crate::protocol::transaction::run::<R, C, S, H, F>(
        store,
        spec,
        operation,
        key,
        fingerprint,
        handler,
    )
}

/// The fingerprint of the operation and its fingerprinted arguments.
///
/// # Errors
/// [`Error::Fingerprint`] when an argument fails to serialize.
pub fn fingerprint<T: Serialize + ?Sized>(operation: &str, args: &T) -> Result<Fingerprint, Error> {
    let mut builder = FingerprintBuilder::new(operation);
    builder.value(args)?;
    Ok(builder.finish())
}

/// The fingerprint of the operation and its fingerprinted arguments by the user's `strategy`
/// (`fingerprint_strategy = …`), which sees the arguments as a JSON array, in order.
///
/// # Errors
/// [`Error::Fingerprint`] when an argument fails to serialize.
pub fn fingerprint_with<S, T>(strategy: &S, operation: &str, args: &T) -> Result<Fingerprint, Error>
where
    S: crate::FingerprintStrategy + ?Sized,
    T: Serialize + ?Sized,
{
    crate::protocol::strategy::fingerprint_value(strategy, operation, args)
}

/// The store a handler uses: a clone of `store = …` (so it outlives borrowed arguments).
#[must_use]
pub fn store_handle<S: IdempotencyStore + Clone>(store: &S) -> S {
    store.clone()
}

/// Gives the handler's `async move` block the fn's return type, for inference.
pub fn typed<R, F: core::future::Future<Output = R>>(future: F) -> F {
    future
}

#[cfg(feature = "axum")]
pub use crate::service::IDEMPOTENCY_KEY_HEADER;
#[cfg(feature = "axum")]
pub use crate::service::head::{HeadWithHeaders, RequestHead};
#[cfg(feature = "axum")]
pub use crate::service::options::HttpOptions;
#[cfg(feature = "axum")]
pub use axum::response::Response;

/// The fingerprint of an HTTP request: method, route template, query, then the fingerprinted
/// arguments.
///
/// # Errors
/// [`Error::Fingerprint`] when an argument fails to serialize.
#[cfg(feature = "axum")]
pub fn fingerprint_http<T: Serialize + ?Sized>(
    options: &HttpOptions,
    head: &RequestHead,
    args: &T,
) -> Result<Fingerprint, Error> {
    head.fingerprint(options.operation(), |builder| {
        builder.value(args)?;
        Ok(())
    })
}

/// Like [`fingerprint_http`], with the arguments fingerprinted by the user's `strategy` (as a
/// JSON array, in order); method, route template and query still count.
///
/// # Errors
/// [`Error::Fingerprint`] when an argument fails to serialize.
#[cfg(feature = "axum")]
pub fn fingerprint_http_with<S, T>(
    strategy: &S,
    options: &HttpOptions,
    head: &RequestHead,
    args: &T,
) -> Result<Fingerprint, Error>
where
    S: crate::FingerprintStrategy + ?Sized,
    T: Serialize + ?Sized,
{
    let content =
        crate::protocol::strategy::fingerprint_value(strategy, options.operation(), args)?;
    head.fingerprint(options.operation(), |builder| {
        builder.bytes(&content.to_bytes());
        Ok(())
    })
}

/// What an HTTP handler may return: anything that is a response.
#[cfg(feature = "axum")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a response: an axum handler with `key = header` must return a type that implements `IntoResponse`",
    label = "not an `IntoResponse` type",
    note = "return `impl IntoResponse`, `Json<T>`, `(StatusCode, Json<T>)`, a `String`, or `Result<_, E>` where both sides implement `IntoResponse`"
)]
pub trait HandlerResponse {
    /// The response.
    fn into_handler_response(self) -> Response;
}

#[cfg(feature = "axum")]
impl<T: axum::response::IntoResponse> HandlerResponse for T {
    fn into_handler_response(self) -> Response {
        self.into_response()
    }
}

/// Turns the handler's return value into a response.
#[cfg(feature = "axum")]
pub fn into_response<R: HandlerResponse>(value: R) -> Response {
    value.into_handler_response()
}

/// Runs an HTTP handler under the protocol: key from the header the options name, detached.
/// The key is taken out of `head` when this is called (the head is gone before the future
/// is), and the future is `service::run`'s own, not one more layer around it.
#[cfg(feature = "axum")]
pub fn execute_http<S, O, F>(
    store: S,
    options: O,
    mut head: RequestHead,
    scope: Option<String>,
    fingerprint: Result<Fingerprint, Error>,
    handler: F,
) -> impl core::future::Future<Output = Response> + Send
where
    S: IdempotencyStore + 'static,
    O: AsRef<HttpOptions> + Send + 'static,
    F: core::future::Future<Output = Response> + Send + 'static,
{
    let key = head.take_key(options.as_ref());
    crate::service::run(store, options, scope, key, fingerprint, handler)
}

/// Runs an HTTP handler in transactional mode (`key = header, transaction = tx`): the whole
/// protocol, from the claim on, detached (the generated code hands the future to
/// [`detach`], where the handler's type is known, so its `Send` is checked there).
#[cfg(feature = "axum")]
pub async fn execute_http_transactional<S, O, H, F>(
    store: S,
    options: O,
    mut head: RequestHead,
    scope: Option<String>,
    fingerprint: Result<Fingerprint, Error>,
    handler: H,
) -> Response
where
    S: crate::store::TransactionalStore + 'static,
    O: AsRef<HttpOptions>,
    H: FnOnce(S::Transaction) -> F,
    F: core::future::Future<Output = (S::Transaction, Response)>,
{
    let key = head.take_key(options.as_ref());
    crate::service::run_transactional(store, options, scope, key, fingerprint, handler).await
}

/// Runs `future` (a whole transactional execution) detached, if admitted: in place, and
/// spawned on the current tokio runtime to finish if the request is dropped first, so the
/// client going away cannot cancel it; counted in flight for
/// [`crate::service::shutdown`]. Beyond the bound of detached handlers, or while shutting down,
/// it does not run: 503 `overloaded`.
#[cfg(feature = "axum")]
pub async fn detach<F>(future: F) -> Response
where
    F: core::future::Future<Output = Response> + Send + 'static,
{
    match crate::service::admit() {
        Ok(permit) => crate::service::completion::RunToCompletion::new(async move {
            let _in_flight = permit;
            future.await
        })
        .await
        .unwrap_or_else(axum::response::IntoResponse::into_response),
        Err(problem) => axum::response::IntoResponse::into_response(problem),
    }
}
