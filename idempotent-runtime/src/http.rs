//! HTTP mode for axum 0.8 (feature `axum`): `#[idempotent(key = header)]` handlers and
//! [`IdempotencyLayer`] run the same protocol ([`crate::execute`]) over whole responses.
//!
//! - The key comes from a header ([`key_from_headers`]: bare or sf-string form).
//! - The fingerprint covers the method, the route template, the query string and the request
//!   content (the handler's non-skipped arguments, or the body bytes under the layer), each
//!   part length-prefixed.
//! - The handler runs **detached** (`tokio::spawn`): a client that goes away cannot cancel a
//!   side effect half-way, and its response is still stored for the retry.
//! - 2xx–4xx responses of an attribute handler are stored (status, headers in order with
//!   repeats, body up to `max_body`) and replayed byte-identical with `Idempotent-Replayed:
//!   true`; a 5xx releases the claim; with `cache_errors` every response is stored. Under
//!   [`IdempotencyLayer`] only 2xx–3xx are stored by default: a 4xx there may be an inner
//!   extractor's validation rejection, made before anything ran, and the corrected request
//!   with the same key must run (Stripe's rule) — see [`IdempotencyLayer::store_status`].
//! - A response whose body fails after the handler ran is never released (its side effect may
//!   have happened): the key is completed as done-not-replayable, the caller gets a 500
//!   `response-failed` problem and every retry a 409 `not-replayable`.
//! - Every rejection is a [`Problem`] (`application/problem+json`, RFC 9457).

mod key;
mod layer;
mod problem;
mod response;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

pub use key::{IDEMPOTENCY_KEY_HEADER, key_from_headers};
pub use layer::{IdempotencyLayer, IdempotencyService};
pub use problem::Problem;
pub use response::{Buffered, Http, REPLAYED_HEADER};

use crate::codec::ResultCodec;
use crate::execute::{Spec, Step, claim, run_claimed};
use crate::observe::{Observer, Outcome};
use crate::{Error, Fingerprint, FingerprintBuilder, IdempotencyKey, IdempotencyStore};

/// The options of an HTTP execution: the protocol's [`Spec`], the operation, the key header and
/// whether a request without a key may run unprotected. `const`, so the macro emits a `static`.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    spec: Spec,
    operation: Cow<'static, str>,
    header: Cow<'static, str>,
    optional: bool,
    stores: fn(StatusCode) -> bool,
}

/// What an attribute handler stores by default: everything but a 5xx.
fn not_server_error(status: StatusCode) -> bool {
    !status.is_server_error()
}

/// What `cache_errors` stores: everything.
fn every_status(_: StatusCode) -> bool {
    true
}

impl HttpOptions {
    /// An operation named `operation` keyed by the `header` header (lowercase; required
    /// unless [`Self::optional`]), with the defaults of [`Spec::new`], 5xx not stored.
    ///
    /// ```
    /// use idempotent_runtime::http::{HttpOptions, IDEMPOTENCY_KEY_HEADER};
    ///
    /// static OPTIONS: HttpOptions = HttpOptions::new("users.create", IDEMPOTENCY_KEY_HEADER).optional();
    /// ```
    #[must_use]
    pub const fn new(operation: &'static str, header: &'static str) -> Self {
        Self {
            spec: Spec::new(),
            operation: Cow::Borrowed(operation),
            header: Cow::Borrowed(header),
            optional: false,
            stores: not_server_error,
        }
    }

    /// Sets the protocol options.
    #[must_use]
    pub const fn spec(mut self, spec: Spec) -> Self {
        self.spec = spec;
        self
    }

    /// Lets a request without a key run, without any store access.
    #[must_use]
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Stores 5xx responses too.
    #[must_use]
    pub const fn cache_errors(mut self) -> Self {
        self.stores = every_status;
        self
    }

    /// Stores the responses whose status `stores` accepts; the others release the key.
    #[must_use]
    pub const fn store_status(mut self, stores: fn(StatusCode) -> bool) -> Self {
        self.stores = stores;
        self
    }

    pub(crate) fn set_operation(&mut self, operation: String) {
        self.operation = Cow::Owned(operation);
    }

    pub(crate) fn set_header(&mut self, header: String) {
        self.header = Cow::Owned(header);
    }

    pub(crate) fn operation(&self) -> &str {
        &self.operation
    }
}

impl AsRef<HttpOptions> for HttpOptions {
    fn as_ref(&self) -> &HttpOptions {
        self
    }
}

/// What the fingerprint needs from a request besides its content, and its headers for the key.
/// Extracted by the code `#[idempotent(key = header)]` generates, as the first argument.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Method,
    route: String,
    query: String,
    headers: HeaderMap,
}

impl RequestHead {
    pub(crate) fn from_parts(parts: &Parts) -> Self {
        let route = parts.extensions.get::<MatchedPath>().map_or_else(
            || parts.uri.path().to_owned(),
            |matched| matched.as_str().to_owned(),
        );
        Self {
            method: parts.method.clone(),
            route,
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers.clone(),
        }
    }

    /// The fingerprint of this request for `operation`: method, route template and query, then
    /// what `content` adds (arguments or body), each part length-prefixed.
    pub(crate) fn fingerprint(
        &self,
        operation: &str,
        content: impl FnOnce(&mut FingerprintBuilder) -> Result<(), Error>,
    ) -> Result<Fingerprint, Error> {
        let mut builder = FingerprintBuilder::new(operation);
        builder
            .bytes(self.method.as_str().as_bytes())
            .bytes(self.route.as_bytes())
            .bytes(self.query.as_bytes());
        content(&mut builder)?;
        Ok(builder.finish())
    }

    pub(crate) fn key(&self, options: &HttpOptions) -> Result<Option<IdempotencyKey>, Problem> {
        match key_from_headers(&self.headers, &options.header)? {
            Some(key) => Ok(Some(key)),
            None if options.optional => Ok(None),
            None => Err(Problem::missing_key(&options.header)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHead {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::from_parts(parts))
    }
}

/// Runs `handler` under the protocol for one HTTP request, detached from the caller: the one
/// function behind both `#[idempotent(key = header)]` and [`IdempotencyLayer`].
///
/// `key = None` (an optional key that was not sent) runs the handler without any store access.
pub(crate) async fn run<S, O, F>(
    store: S,
    options: O,
    scope: Option<String>,
    key: Result<Option<IdempotencyKey>, Problem>,
    fingerprint: Result<Fingerprint, Error>,
    handler: F,
) -> Response
where
    S: IdempotencyStore + 'static,
    O: AsRef<HttpOptions> + Send + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let key = match key {
        Ok(Some(key)) => key,
        Ok(None) => return handler.await,
        Err(problem) => return reject(options.as_ref(), problem),
    };
    let fingerprint = match fingerprint {
        Ok(fingerprint) => fingerprint,
        Err(e) => return reject(options.as_ref(), Problem::from(e)),
    };
    run_with::<Http, _, _, _>(store, options, scope, key, fingerprint, handler).await
}

/// The answer for a request refused before the protocol ran (a bad key or scope, a request
/// that cannot be fingerprinted), recorded as the execution's outcome.
pub(crate) fn reject(options: &HttpOptions, problem: Problem) -> Response {
    Observer::start(options.operation()).outcome(Outcome::RejectedKey);
    problem.into_response()
}

async fn run_with<C, S, O, F>(
    store: S,
    options: O,
    scope: Option<String>,
    key: IdempotencyKey,
    fingerprint: Fingerprint,
    handler: F,
) -> Response
where
    C: ResultCodec<Buffered> + 'static,
    S: IdempotencyStore + 'static,
    O: AsRef<HttpOptions> + Send + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let (spec, operation) = (&options.as_ref().spec, options.as_ref().operation());
    let observer = Observer::start(operation);
    let step = claim::<Buffered, C>(
        &observer,
        &store,
        spec,
        operation,
        scope.as_deref(),
        &key,
        fingerprint,
    );
    // Replays and conflicts answer here; only a claimed execution is detached.
    let claim = match observer.scope(step).await {
        Step::Done(buffered) => return buffered.into_response(),
        Step::Claimed(claim) => claim,
    };
    let task = tokio::spawn(observer.clone().scope(async move {
        let stores = options.as_ref().stores;
        let handler = async move { Buffered::capture(handler.await, stores).await };
        let spec = &options.as_ref().spec;
        run_claimed::<Buffered, C, _>(&observer, &store, spec, claim, handler).await
    }));
    match task.await {
        Ok(buffered) => buffered.into_response(),
        Err(_) => Problem::from(Error::HandlerPanicked).into_response(),
    }
}
