//! HTTP mode (feature `axum`): `#[idempotent(key = header)]` axum 0.8 handlers and
//! [`IdempotencyLayer`] — a tower layer for any service over `http` types (axum, hyper,
//! tonic) — run the same protocol as plain mode over whole responses, trailers included.
//!
//! - The key comes from a header ([`key_from_headers`]: bare or sf-string form).
//! - The fingerprint covers the method, the route template, the query string and the request
//!   content (the handler's non-skipped arguments, or the body bytes under the layer), each
//!   part length-prefixed.
//! - The handler runs **detached**: in place, and if the client goes away (its request is
//!   dropped) the rest is spawned on the runtime, so a side effect is never cut off half-way
//!   and its response is still stored for the retry.
//! - 2xx–4xx responses of an attribute handler are stored (status, headers in order with
//!   repeats, body up to `max_body`) and replayed byte-identical with `Idempotent-Replayed:
//!   true`; a 5xx releases the claim; with `cache_errors` every response is stored. Under
//!   [`IdempotencyLayer`] only 2xx–3xx are stored by default: a 4xx there may be an inner
//!   extractor's validation rejection, made before anything ran, and the corrected request
//!   with the same key must run (Stripe's rule) — see [`IdempotencyLayer::store_status`].
//! - A response whose body fails after the handler ran is never released (its side effect may
//!   have happened): the key is completed as done-not-replayable, the caller gets a 500
//!   `response-failed` problem and every retry a 409 `not-replayable`.
//! - Every rejection is a [`Problem`] (`application/problem+json`, RFC 9457); to a gRPC
//!   request (`content-type: application/grpc…`) under the layer, a gRPC status
//!   ([`ProblemKind::grpc_code`]) with a `google.rpc.ErrorInfo` (domain `idempotent`, reason
//!   the kind's code in capitals) and, where waiting helps, a `google.rpc.RetryInfo`. A gRPC
//!   response is stored by its `grpc-status` (`OK` only by default:
//!   [`IdempotencyLayer::store_grpc_status`]).

mod body;
pub(crate) mod completion;
mod detached;
mod grpc;
pub(crate) mod head;
mod key;
mod layer;
pub(crate) mod options;
mod problem;
mod response;

use std::future::Future;

use axum::response::{IntoResponse, Response};

pub use body::{BoxError, LayerBody};
use completion::RunToCompletion;
pub(crate) use detached::admit;
pub use detached::{DEFAULT_MAX_DETACHED, set_max_detached, shutdown};
use head::RequestHead;
use key::HeaderKey;
pub use key::{IDEMPOTENCY_KEY_HEADER, key_from_headers};
pub use layer::{IdempotencyLayer, IdempotencyService};
use options::HttpOptions;
pub use problem::{Problem, ProblemKind};
pub use response::REPLAYED_HEADER;
use response::{Buffered, Http};

use crate::observe::{Observer, Outcome};
use crate::protocol::{Step, acquire, release_unstarted, run_claimed};
use crate::{Error, Fingerprint, IdempotencyStore};

/// Runs `handler` under the protocol for one HTTP request, detached from the caller: the one
/// function behind both `#[idempotent(key = header)]` and [`IdempotencyLayer`].
///
/// `key = None` (an optional key that was not sent) runs the handler without any store access.
///
/// A plain fn around an `async move` block, as is each fn between the handler and the protocol:
/// an async fn's state keeps each argument twice (rust-lang/rust#62958), and the framework
/// boxes the handler's future, so its size is an allocation's.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice in its state"
)]
pub(crate) fn run<S, O, F>(
    store: S,
    options: O,
    scope: Option<String>,
    key: Result<Option<HeaderKey>, Problem>,
    fingerprint: Result<Fingerprint, Error>,
    handler: F,
) -> impl Future<Output = Response> + Send
where
    S: IdempotencyStore + 'static,
    O: AsRef<HttpOptions> + Send + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    async move {
        let key = match key {
            Ok(Some(key)) => key,
            Ok(None) => return handler.await,
            Err(problem) => return reject(options.as_ref(), problem).into_response(),
        };
        let fingerprint = match fingerprint {
            Ok(fingerprint) => fingerprint,
            Err(e) => return reject(options.as_ref(), Problem::from(e)).into_response(),
        };
        let stores = options.as_ref().stores;
        // Boxed once here, and polled in that box (the protocol does not box it again): the
        // handler is handed down four levels before it is polled.
        let handler = Box::pin(async move { Buffered::capture(handler.await, stores).await });
        run_with(store, options, scope, key, fingerprint, handler)
            .await
            .into_response()
    }
}

/// Runs `handler` in transactional mode for one HTTP request (the caller detaches the whole
/// future): the response is captured inside the transaction, and a status the options do not
/// store rolls it back.
pub(crate) async fn run_transactional<S, O, H, F>(
    store: S,
    options: O,
    scope: Option<String>,
    key: Result<Option<HeaderKey>, Problem>,
    fingerprint: Result<Fingerprint, Error>,
    handler: H,
) -> Response
where
    S: crate::store::TransactionalStore + 'static,
    O: AsRef<HttpOptions>,
    H: FnOnce(S::Transaction) -> F,
    F: Future<Output = (S::Transaction, Response)>,
{
    let options = options.as_ref();
    let key = match key {
        Ok(Some(key)) => key,
        // A transactional handler needs a claim to run in: without a key (even an optional
        // one), it is refused.
        Ok(None) => return reject(options, Problem::missing_key(&options.header)).into_response(),
        Err(problem) => return reject(options, problem).into_response(),
    };
    let fingerprint = match fingerprint {
        Ok(fingerprint) => fingerprint,
        Err(e) => return reject(options, Problem::from(e)).into_response(),
    };
    let (spec, operation, stores) = (&options.spec, options.operation(), options.stores);
    // Hashed here, so the header's bytes (the request's) go now, not with the transaction.
    let stored_key = key.stored_key(options, scope.as_deref());
    drop(key);
    let capture = move |transaction| {
        let ran = handler(transaction);
        async move {
            let (transaction, response) = ran.await;
            (transaction, Buffered::capture(response, stores).await)
        }
    };
    crate::protocol::transaction::run::<Buffered, Http, S, _, _>(
        &store,
        spec,
        operation,
        stored_key,
        Ok(fingerprint),
        capture,
    )
    .await
    .into_response()
}

/// The answer for a request refused before the protocol ran (a bad key or scope, a request
/// that cannot be fingerprinted), recorded as the execution's outcome.
fn reject(options: &HttpOptions, problem: Problem) -> Buffered {
    Observer::start(options.operation()).outcome(Outcome::RejectedKey);
    Buffered::from(problem)
}

/// Claims `key` and runs `handler` (which captures its response) detached; replays and
/// conflicts are answered without running it.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice in its state"
)]
fn run_with<S, O, F>(
    store: S,
    options: O,
    scope: Option<String>,
    key: HeaderKey,
    fingerprint: Fingerprint,
    handler: F,
) -> impl Future<Output = Buffered> + Send
where
    S: IdempotencyStore + 'static,
    O: AsRef<HttpOptions> + Send + 'static,
    F: Future<Output = Buffered> + Send + Unpin + 'static,
{
    async move {
        let (spec, operation) = (&options.as_ref().spec, options.as_ref().operation());
        let stored_key = match key.stored_key(options.as_ref(), scope.as_deref()) {
            Ok(stored_key) => stored_key,
            Err(e) => return reject(options.as_ref(), Problem::from(e)),
        };
        // The header's bytes are the request's: let them go now, not when the handler is done.
        drop(key);
        let observer = Observer::start(operation);
        let step =
            acquire::<Buffered, Http>(&observer, &store, spec, operation, stored_key, fingerprint);
        // Replays and conflicts answer here; only a claimed execution is detached.
        let claim = match observer.in_span(step).await {
            Step::Done(buffered) => return buffered,
            Step::Claimed(claim) => claim,
        };
        // Only a claimed execution needs a detached handler (replays and conflicts answered
        // above are never refused for load); one refused gives its claim back before
        // answering.
        let permit = match detached::admit() {
            Ok(permit) => permit,
            Err(problem) => {
                release_unstarted(&observer, &store, claim).await;
                return reject(options.as_ref(), problem);
            }
        };
        RunToCompletion::new(observer.clone().in_span(async move {
            let _in_flight = permit;
            let spec = &options.as_ref().spec;
            run_claimed::<Buffered, Http, _>(&observer, &store, spec, claim, handler).await
        }))
        .await
        .unwrap_or_else(Buffered::from)
    }
}
