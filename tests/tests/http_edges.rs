//! HTTP mode at its edges, over a real socket with a real client: a client that hangs up (with
//! a control that shows hyper does cancel what is not detached), a panicking handler, a
//! response over `max_body`, and one key sent with another query, method or route.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_runtime::{IdempotencyStore, ManualClock, MemoryStore, idempotent};
use idempotent_tests::gate::Gate;
use idempotent_tests::http::{client, post_key, problem, serve};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    runs: Arc<AtomicUsize>,
    gate: Gate,
    /// Counts the outer request futures hyper dropped before they finished.
    cancelled: Arc<AtomicUsize>,
    cancel_seen: Arc<Notify>,
}

impl App {
    fn new(store: impl IdempotencyStore + 'static) -> Self {
        Self {
            store: Arc::new(store),
            runs: Arc::new(AtomicUsize::new(0)),
            gate: Gate::new(),
            cancelled: Arc::new(AtomicUsize::new(0)),
            cancel_seen: Arc::new(Notify::new()),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// Notes it when the request future it guards is dropped before it finished.
struct CancelWatch {
    app: App,
    finished: bool,
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if !self.finished {
            self.app.cancelled.fetch_add(1, Ordering::SeqCst);
            self.app.cancel_seen.notify_one();
        }
    }
}

/// Middleware around a whole route: tells the test when hyper dropped the request's future.
async fn watch(State(app): State<App>, request: Request, next: Next) -> Response {
    let mut watch = CancelWatch {
        app,
        finished: false,
    };
    let response = next.run(request).await;
    watch.finished = true;
    response
}

#[idempotent(key = header, store = state.store, name = "edges.detached", skip(state))]
async fn detached(State(state): State<App>) -> String {
    state.gate.pass().await;
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("detached #{n}")
}

/// The control: the same handler without the attribute, so nothing detaches it.
async fn plain(State(state): State<App>) -> String {
    state.gate.pass().await;
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("plain #{n}")
}

/// Sends a POST by hand on its own connection, waits until the handler is inside, then
/// closes the connection: the client hung up mid-request.
async fn hang_up_mid_request(base: &str, path: &str, gate: &Gate) {
    let address = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nidempotency-key: left\r\ncontent-length: 0\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    gate.entered().await;
    drop(socket);
}

/// Waits (bounded) until hyper has dropped `n` request futures in all.
async fn cancelled(app: &App, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while app.cancelled.load(Ordering::SeqCst) < n {
            app.cancel_seen.notified().await;
        }
    })
    .await
    .expect("hyper drops the request future of a closed connection");
}

#[tokio::test]
async fn a_client_that_goes_away_does_not_cancel_the_handler() {
    let app = App::new(MemoryStore::new());
    let router = Router::new()
        .route("/detached", post(detached))
        .route("/plain", post(plain))
        .layer(middleware::from_fn_with_state(app.clone(), watch))
        .with_state(app.clone());
    let base = serve(router).await;

    // The control: hyper drops the un-annotated handler's future when its client hangs up.
    hang_up_mid_request(&base, "/plain", &app.gate).await;
    cancelled(&app, 1).await;

    // The same hang-up on the annotated route: hyper drops this request future too, and only
    // then is the gate opened; the detached handler runs on to the end anyway.
    hang_up_mid_request(&base, "/detached", &app.gate).await;
    cancelled(&app, 2).await;
    app.gate.open();
    let url = format!("{base}/detached");
    let retry = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = post_key(&url, "left", "").await;
            if response.status() != 409 {
                return response;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the detached handler finished");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        retry.text().await.expect("body"),
        "detached #1",
        "the plain handler never got past its gate"
    );
    assert_eq!(app.runs(), 1, "the detached handler finished, once");
}

#[idempotent(key = header, store = state.store, name = "edges.panics", lease = "30s", skip(state))]
async fn panics(State(state): State<App>) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(n > 1, "the first run panics on purpose");
    format!("ran #{n}")
}

/// A panic may have come after the side effect: the key is neither completed nor released
/// (a retry is 409 while the lease holds), and runs again once the lease lapsed.
#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_and_its_key_lapses_with_its_lease() {
    let clock = Arc::new(ManualClock::new());
    let app = App::new(MemoryStore::builder().clock(clock.clone()).build());
    let router = Router::new()
        .route("/panics", post(panics))
        .with_state(app.clone());
    let url = format!("{}/panics", serve(router).await);

    let (status, _, json) = problem(post_key(&url, "boom", "").await).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (500, Some("handler_panicked")),
        "{json}"
    );
    let (status, headers, json) = problem(post_key(&url, "boom", "").await).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (409, Some("in_flight")),
        "not released: {json}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(app.runs(), 1);

    clock.advance(Duration::from_secs(31));
    let after = post_key(&url, "boom", "").await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.text().await.expect("body"), "ran #2");
    let replay = post_key(&url, "boom", "").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.expect("body"), "ran #2");
    assert_eq!(app.runs(), 2);
}

#[idempotent(key = header, store = state.store, name = "edges.large", skip(state))]
async fn large(State(state): State<App>) -> String {
    state.runs.fetch_add(1, Ordering::SeqCst);
    "x".repeat(idempotent_runtime::DEFAULT_MAX_BODY + 1)
}

/// Asserts that `url` answers a first request in full and a retry with 409 `not_replayable`.
async fn done_but_not_replayable(url: &str, body_len: usize, runs: &AtomicUsize) {
    let first = post_key(url, "big", "").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.expect("body").len(), body_len);
    let (status, _, json) = problem(post_key(url, "big", "").await).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (409, Some("not_replayable")),
        "{json}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{url}: never run again");
}

/// A response over `max_body` reaches its client; the key records that the request happened,
/// so a retry learns it is done and not replayable instead of running it again.
#[tokio::test]
async fn a_response_over_max_body_is_done_and_not_replayable() {
    let app = App::new(MemoryStore::new());
    let router = Router::new()
        .route("/large", post(large))
        .with_state(app.clone());
    let url = format!("{}/large", serve(router).await);
    done_but_not_replayable(&url, idempotent_runtime::DEFAULT_MAX_BODY + 1, &app.runs).await;

    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let layered = Router::new()
        .route(
            "/large",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "y".repeat(65) }
            }),
        )
        .route_layer(
            IdempotencyLayer::new(MemoryStore::new())
                .max_body(64)
                .allow_unscoped(),
        );
    let url = format!("{}/large", serve(layered).await);
    done_but_not_replayable(&url, 65, &runs).await;
}

#[idempotent(key = header, store = state.store, name = "edges.orders", skip(state))]
async fn order(State(state): State<App>) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("order #{n}")
}

/// The same key with another query, method or route than the request that took it is 422;
/// the original request still replays.
async fn other_request_is_key_reused(base: &str, runs: &AtomicUsize) {
    let http = client();
    let send = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .header("idempotency-key", "k-orders")
            .send()
    };
    let first = send(reqwest::Method::POST, "/orders?size=1")
        .await
        .expect("send");
    assert_eq!(first.text().await.expect("body"), "order #1");
    for (method, path) in [
        (reqwest::Method::POST, "/orders?size=2"),
        (reqwest::Method::PUT, "/orders?size=1"),
        (reqwest::Method::POST, "/orders-v2?size=1"),
    ] {
        let (status, _, json) = problem(send(method.clone(), path).await.expect("send")).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (422, Some("key_reused")),
            "{method} {path}: {json}"
        );
    }
    let replay = send(reqwest::Method::POST, "/orders?size=1")
        .await
        .expect("send");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.expect("body"), "order #1");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_key_with_another_query_method_or_route_is_422() {
    let app = App::new(MemoryStore::new());
    let router = Router::new()
        .route("/orders", post(order).put(order))
        .route("/orders-v2", post(order))
        .with_state(app.clone());
    other_request_is_key_reused(&serve(router).await, &app.runs).await;

    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let handler = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { format!("order #{n}") }
    };
    let layered = Router::new()
        .route("/orders", post(handler.clone()).put(handler.clone()))
        .route("/orders-v2", post(handler))
        .route_layer(IdempotencyLayer::new(MemoryStore::new()).allow_unscoped());
    other_request_is_key_reused(&serve(layered).await, &runs).await;
}
