//! [`IdempotencyLayer`]: the protocol as tower middleware, for routers whose handlers cannot
//! be annotated. It runs the same function as `#[idempotent(key = header)]`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Method, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::{HttpOptions, Problem, RequestHead};
use crate::{Concurrency, DEFAULT_MAX_BODY};
use crate::{FingerprintStrategy, IdempotencyStore};

type Scope = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Makes every `POST`, `PUT`, `PATCH` and `DELETE` through it run at most once per key (other
/// methods pass through). The fingerprint is the method, route template (when the layer sits
/// inside the router, e.g. `Router::route_layer`), query and the **raw body bytes**, which the
/// layer buffers up to `max_request_body` (413 beyond).
///
/// ```
/// use axum::{Router, routing::post};
/// use idempotent_runtime::{MemoryStore, service::IdempotencyLayer};
///
/// let app: Router = Router::new()
///     .route("/payments", post(|| async { "charged" }))
///     .route_layer(IdempotencyLayer::new(MemoryStore::new()).operation("payments"));
/// ```
///
/// Only 2xx and 3xx responses are stored by default ([`Self::store_status`]): a 4xx under the
/// layer may be an inner extractor's rejection (bad JSON, a missing field), made before the
/// handler ran, and the corrected request with the same key must run. With
/// [`Self::scope`], a request whose scope is `None` is refused (400 `missing-scope`) unless
/// [`Self::allow_unscoped`] says otherwise: unscoped requests would share one key space.
#[derive(Clone)]
pub struct IdempotencyLayer<St> {
    store: St,
    options: Arc<HttpOptions>,
    max_request_body: usize,
    scope: Option<Arc<Scope>>,
    allow_unscoped: bool,
    strategy: Option<Arc<dyn FingerprintStrategy>>,
}

/// What the layer stores by default: success and redirection.
fn success_or_redirect(status: http::StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

impl<St: fmt::Debug> fmt::Debug for IdempotencyLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("store", &self.store)
            .field("options", &self.options)
            .field("max_request_body", &self.max_request_body)
            .field("scoped", &self.scope.is_some())
            .field("allow_unscoped", &self.allow_unscoped)
            .field("custom_fingerprint_strategy", &self.strategy.is_some())
            .finish()
    }
}

impl<St: IdempotencyStore + Clone + 'static> IdempotencyLayer<St> {
    /// A layer on `store`: operation `"http"`, key from `Idempotency-Key` (required), the
    /// protocol defaults, request bodies up to 1 MiB.
    pub fn new(store: St) -> Self {
        Self {
            store,
            options: Arc::new(
                HttpOptions::new("http", super::IDEMPOTENCY_KEY_HEADER)
                    .store_status(success_or_redirect),
            ),
            max_request_body: DEFAULT_MAX_BODY,
            scope: None,
            allow_unscoped: false,
            strategy: None,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut HttpOptions)) -> Self {
        change(Arc::make_mut(&mut self.options));
        self
    }

    /// The operation name: part of the stored key and the fingerprint.
    #[must_use]
    pub fn operation(self, operation: impl Into<String>) -> Self {
        let operation = operation.into();
        self.with(|o| o.set_operation(operation))
    }

    /// Reads the key from `header` instead of `Idempotency-Key`.
    #[must_use]
    pub fn header(self, header: impl Into<String>) -> Self {
        let header = header.into().to_ascii_lowercase();
        self.with(|o| o.set_header(header))
    }

    /// Lets requests without a key through, unprotected and without store access.
    #[must_use]
    pub fn optional_key(self) -> Self {
        self.with(|o| o.optional = true)
    }

    /// Stores every response, 4xx and 5xx included.
    #[must_use]
    pub fn cache_errors(self) -> Self {
        self.with(|o| *o = o.clone().cache_errors())
    }

    /// Stores the responses whose status `stores` accepts; the others release the key so a
    /// retry runs again. Default: 2xx and 3xx. Store a 4xx only if the handler returns it
    /// after committing something (as `#[idempotent]` handlers, which extract first, do).
    ///
    /// ```
    /// use idempotent_runtime::{MemoryStore, service::IdempotencyLayer};
    ///
    /// // Also keep 409 Conflict, which this service's handlers return after a write.
    /// let layer = IdempotencyLayer::new(MemoryStore::new())
    ///     .store_status(|s| s.is_success() || s == 409);
    /// ```
    #[must_use]
    pub fn store_status(self, stores: fn(http::StatusCode) -> bool) -> Self {
        self.with(|o| *o = o.clone().store_status(stores))
    }

    /// How long a response is replayed. Default 24 h.
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|o| o.spec = o.spec.ttl(ttl))
    }

    /// How long a claim holds without a heartbeat. Default 30 s.
    #[must_use]
    pub fn lease(self, lease: Duration) -> Self {
        self.with(|o| o.spec = o.spec.lease(lease))
    }

    /// What a request does while another with its key runs. Default: 409.
    #[must_use]
    pub fn concurrency(self, concurrency: Concurrency) -> Self {
        self.with(|o| o.spec = o.spec.concurrency(concurrency))
    }

    /// The largest response body kept for replay. Default 1 MiB.
    #[must_use]
    pub fn max_body(self, max_body: usize) -> Self {
        self.with(|o| o.spec = o.spec.max_body(max_body))
    }

    /// The largest request body buffered for the fingerprint; beyond it, 413. Default 1 MiB.
    #[must_use]
    pub fn max_request_body(mut self, limit: usize) -> Self {
        self.max_request_body = limit;
        self
    }

    /// Keeps keys of different principals apart: `scope` reads the principal from the request
    /// (a header, an extension set by the auth layer). A request for which it returns `None`
    /// is refused with 400 `missing-scope` and runs nothing, unless [`Self::allow_unscoped`].
    #[must_use]
    pub fn scope(
        mut self,
        scope: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.scope = Some(Arc::new(scope));
        self
    }

    /// Fingerprints request bodies with `strategy` instead of hashing their raw bytes; the
    /// method, route template and query still count. The strategy sees the body as it came.
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use idempotent_runtime::{
    ///     DefaultFingerprintStrategy, Fingerprint, FingerprintStrategy, MemoryStore,
    ///     service::IdempotencyLayer,
    /// };
    ///
    /// /// JSON bodies compared by content: key order and whitespace do not matter.
    /// struct JsonContent;
    ///
    /// impl FingerprintStrategy for JsonContent {
    ///     fn compute(&self, operation: &str, body: &[u8]) -> Fingerprint {
    ///         match serde_json::from_slice::<serde_json::Value>(body) {
    ///             Ok(json) => DefaultFingerprintStrategy.compute(operation, json.to_string().as_bytes()),
    ///             Err(_) => DefaultFingerprintStrategy.compute(operation, body),
    ///         }
    ///     }
    /// }
    ///
    /// let app: Router = Router::new()
    ///     .route("/payments", post(|| async { "charged" }))
    ///     .route_layer(IdempotencyLayer::new(MemoryStore::new()).fingerprint_strategy(JsonContent));
    /// ```
    #[must_use]
    pub fn fingerprint_strategy(mut self, strategy: impl FingerprintStrategy + 'static) -> Self {
        self.strategy = Some(Arc::new(strategy));
        self
    }

    /// Lets a request whose scope is `None` run, in the one key space shared by every
    /// unscoped request (for endpoints that serve anonymous callers too).
    #[must_use]
    pub fn allow_unscoped(mut self) -> Self {
        self.allow_unscoped = true;
        self
    }
}

impl<S, St: Clone> Layer<S> for IdempotencyLayer<St> {
    type Service = IdempotencyService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            layer: self.clone(),
            inner,
        }
    }
}

/// Whether reading a body failed because it was over the limit (not because the client broke
/// off).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The service of [`IdempotencyLayer`]: wraps the inner service `S` (tower's convention), with
/// its store `St`.
///
/// ```
/// use axum::{Router, routing::post};
/// use idempotent_runtime::{MemoryStore, service::{IdempotencyLayer, IdempotencyService}};
/// use tower_layer::Layer;
///
/// let layer = IdempotencyLayer::new(MemoryStore::new());
/// let service: IdempotencyService<Router, MemoryStore> =
///     layer.layer(Router::new().route("/pay", post(|| async { "paid" })));
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct IdempotencyService<S, St> {
    inner: S,
    layer: IdempotencyLayer<St>,
}

impl<S, St: fmt::Debug> fmt::Debug for IdempotencyService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, St> Service<Request<Body>> for IdempotencyService<S, St>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    St: IdempotencyStore + Clone + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The ready service handles this request; a clone takes its place (tower's pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return Box::pin(inner.call(request));
        }
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let head = RequestHead::from_parts(&parts);
            // The key and the scope first: a bad key is a 400 whatever the body.
            let key = match head.key(&layer.options) {
                Ok(Some(key)) => key,
                Ok(None) => return inner.call(Request::from_parts(parts, body)).await,
                Err(problem) => return Ok(super::reject(&layer.options, problem)),
            };
            let scope = match layer.scope.as_ref().map(|scope| scope(&parts)) {
                Some(None) if !layer.allow_unscoped => {
                    return Ok(super::reject(&layer.options, Problem::missing_scope()));
                }
                Some(scope) => scope,
                None => None,
            };
            let bytes = match axum::body::to_bytes(body, layer.max_request_body).await {
                Ok(bytes) => bytes,
                Err(e) if is_length_limit(&e) => {
                    return Ok(Problem::body_too_large(layer.max_request_body).into_response());
                }
                // The client went away or sent a broken body: nothing ran, nothing to store.
                Err(e) => return Ok(Problem::unreadable_body(&e).into_response()),
            };
            let fingerprint = head.fingerprint(layer.options.operation(), |b| {
                match &layer.strategy {
                    None => b.bytes(&bytes),
                    Some(strategy) => b.bytes(
                        &strategy
                            .compute(layer.options.operation(), &bytes)
                            .to_bytes(),
                    ),
                };
                Ok(())
            });
            let request = Request::from_parts(parts, Body::from(bytes));
            let handler = async move {
                match inner.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            };
            Ok(super::run(
                layer.store,
                layer.options,
                scope,
                Ok(Some(key)),
                fingerprint,
                handler,
            )
            .await)
        })
    }
}
