//! [`IdempotencyLayer`]: the protocol as tower middleware for any service over `http` types
//! (an axum router whose handlers cannot be annotated, a hyper service, tonic's routes). It
//! runs the same function as `#[idempotent(key = header)]`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request};
use http_body::Body;
use http_body_util::Limited;
use tower_layer::Layer;
use tower_service::Service;

use super::body::read_whole;
use super::key::HeaderKey;
use super::response::Buffered;
use super::{BoxError, HttpOptions, LayerBody, Problem, ProblemKind, RequestHead};
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
/// It wraps any tower service over `http` requests whose body type it may choose
/// ([`LayerBody`]): axum's `Router` and `Route`, hyper services, and tonic's routes —
/// `Server::builder().layer(IdempotencyLayer::new(store))` protects unary gRPC methods, the
/// key read from the `idempotency-key` metadata, replies replayed with their trailers and
/// refusals answered as gRPC statuses ([`ProblemKind::grpc_code`]); see the `grpc_payments`
/// example.
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

    /// Stores the gRPC responses whose `grpc-status` `stores` accepts (of those whose HTTP
    /// status [`Self::store_status`] accepts: gRPC answers 200); the others release the key.
    /// Default: `OK` only — another status may be tonic's refusal of a request it could not
    /// decode, made before the method ran. Keep a status the method returns after committing
    /// something.
    ///
    /// ```
    /// use idempotent_runtime::{MemoryStore, service::IdempotencyLayer};
    ///
    /// // Also keep FAILED_PRECONDITION (9): a decline the method recorded.
    /// let layer = IdempotencyLayer::new(MemoryStore::new())
    ///     .store_grpc_status(|code| code == 0 || code == 9);
    /// ```
    #[must_use]
    pub fn store_grpc_status(self, stores: fn(i32) -> bool) -> Self {
        self.with(|o| *o = o.clone().store_grpc_status(stores))
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
fn is_length_limit(error: &BoxError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The service of [`IdempotencyLayer`]: wraps the inner service `S` (tower's convention), with
/// its store `St`. It takes requests with any body, hands the inner service a
/// [`LayerBody`] (the protected request's body read into memory, or the original streamed
/// through) and returns the inner response's body, or the captured or replayed one, as a
/// [`LayerBody`] with its trailers.
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

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for IdempotencyService<S, St>
where
    S: Service<Request<LayerBody<ReqB>>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    St: IdempotencyStore + Clone + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError> + Send,
{
    type Response = http::Response<LayerBody<ResB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The ready service handles this request; a clone takes its place (tower's pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if !matches!(
            *request.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return Box::pin(pass(inner, request));
        }
        let layer = self.layer.clone();
        Box::pin(async move {
            let grpc = super::grpc::is_grpc(request.headers());
            let (parts, body) = request.into_parts();
            let key = super::key::header_key(&parts.headers, &layer.options.header);
            let mut head = RequestHead::with_key(&parts, key);
            // The key first: a bad key is a 400 whatever the body.
            let answer = match head.take_key(&layer.options) {
                Ok(Some(key)) => layer.protect(inner, parts, body, &head, key).await,
                Ok(None) => return pass(inner, Request::from_parts(parts, body)).await,
                Err(problem) => super::reject(&layer.options, problem),
            };
            Ok(if grpc { answer.for_grpc() } else { answer }.into_http())
        })
    }
}

/// A request the layer does not protect: the inner service's answer, bodies untouched.
async fn pass<S, ReqB, ResB>(
    mut inner: S,
    request: Request<ReqB>,
) -> Result<http::Response<LayerBody<ResB>>, S::Error>
where
    S: Service<Request<LayerBody<ReqB>>, Response = http::Response<ResB>>,
{
    let response = inner.call(request.map(LayerBody::passed)).await?;
    Ok(response.map(LayerBody::passed))
}

impl<St: IdempotencyStore + Clone + 'static> IdempotencyLayer<St> {
    /// The protocol for one request with `key`: its scope, its body read for the fingerprint,
    /// the inner service run detached under a claim.
    async fn protect<S, ReqB, ResB>(
        self,
        mut inner: S,
        parts: Parts,
        body: ReqB,
        head: &RequestHead,
        key: HeaderKey,
    ) -> Buffered
    where
        S: Service<Request<LayerBody<ReqB>>, Response = http::Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send,
        ReqB: Body<Data = Bytes> + Send + 'static,
        ReqB::Error: Into<BoxError>,
        ResB: Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError> + Send,
    {
        let scope = match self.scope.as_ref().map(|scope| scope(&parts)) {
            Some(None) if !self.allow_unscoped => {
                return super::reject(&self.options, Problem::missing_scope());
            }
            Some(scope) => scope,
            None => None,
        };
        let (bytes, trailers) = match read_whole(Limited::new(body, self.max_request_body)).await {
            Ok(read) => read,
            Err(e) if is_length_limit(&e) => {
                return Problem::body_too_large(self.max_request_body).into();
            }
            // The client went away or sent a broken body: nothing ran, nothing to store.
            Err(e) => return Problem::unreadable_body(&e).into(),
        };
        let fingerprint = head.fingerprint(self.options.operation(), |b| {
            match &self.strategy {
                None => b.bytes(&bytes),
                Some(strategy) => b.bytes(
                    &strategy
                        .compute(self.options.operation(), &bytes)
                        .to_bytes(),
                ),
            };
            Ok(())
        });
        let fingerprint = match fingerprint {
            Ok(fingerprint) => fingerprint,
            Err(e) => return super::reject(&self.options, Problem::from(e)),
        };
        let request = Request::from_parts(parts, LayerBody::buffered(bytes, trailers));
        let stores = self.options.stores;
        // Boxed once, as `service::run` does.
        let handler = Box::pin(async move {
            match inner.call(request).await {
                Ok(response) => Buffered::capture(response, stores).await,
                Err(e) => Problem::new(
                    ProblemKind::Internal,
                    format!("the service failed: {}", e.into()),
                )
                .into(),
            }
        });
        super::run_with(self.store, self.options, scope, key, fingerprint, handler).await
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::convert::Infallible;
    use std::future::Ready;

    use http_body_util::Full;

    use super::*;
    use crate::MemoryStore;

    /// A service that is never ready (backpressure).
    #[derive(Clone)]
    struct NotReady;

    impl Service<Request<LayerBody<Full<Bytes>>>> for NotReady {
        type Response = http::Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, _: Request<LayerBody<Full<Bytes>>>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(Full::default())))
        }
    }

    #[test]
    fn readiness_is_the_inner_services() {
        let mut service = IdempotencyLayer::new(MemoryStore::new()).layer(NotReady);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let ready = Service::<Request<Full<Bytes>>>::poll_ready(&mut service, &mut cx);
        assert!(
            ready.is_pending(),
            "the inner service's backpressure reaches the caller"
        );
    }

    #[test]
    fn the_layer_and_its_service_describe_their_settings() {
        let layer = IdempotencyLayer::new(MemoryStore::new())
            .max_request_body(7)
            .scope(|_| None)
            .allow_unscoped();
        let text = format!("{layer:?}");
        for part in [
            "IdempotencyLayer",
            "max_request_body: 7",
            "scoped: true",
            "allow_unscoped: true",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let service = layer.layer(NotReady);
        let text = format!("{service:?}");
        assert!(
            text.starts_with("IdempotencyService") && text.contains("max_request_body: 7"),
            "{text}"
        );
    }
}
