//! `IdempotencyLayer` over a real TCP socket with a real HTTP client: the same protocol for
//! handlers that cannot be annotated.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use idempotent_runtime::MemoryStore;
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_tests::http::{client, post_key, problem, serve};

#[tokio::test]
async fn the_layer_runs_the_same_protocol_for_unannotated_handlers() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let router = Router::new()
        .route(
            "/payments",
            post(move |body: String| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    (StatusCode::CREATED, format!("payment #{n}: {body}"))
                }
            })
            .get(|| async { "listing" }),
        )
        .route_layer(
            IdempotencyLayer::new(MemoryStore::new())
                .operation("payments")
                .max_request_body(64)
                .scope(|parts| {
                    parts
                        .headers
                        .get("x-user")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .allow_unscoped(),
        );
    let base = serve(router).await;
    let url = format!("{base}/payments");
    let first = post_key(&url, "p1", "10 EUR").await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.text().await.expect("body"), "payment #1: 10 EUR");
    let retry = post_key(&url, "p1", "10 EUR").await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), "payment #1: 10 EUR");
    let (status, _, _) = problem(post_key(&url, "p1", "99 EUR").await).await;
    assert_eq!(status, 422, "another body with the same key");
    let (status, _, json) = problem(post_key(&url, "p2", &"x".repeat(65)).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (413, Some("urn:idempotent:problem:body-too-large"))
    );
    let (status, _, _) =
        problem(client().post(&url).body("1").send().await.expect("request")).await;
    assert_eq!(status, 400, "a POST needs a key");
    let listing = client().get(&url).send().await.expect("request");
    assert_eq!(
        listing.text().await.expect("body"),
        "listing",
        "GET passes through"
    );
    let other_user = client()
        .post(&url)
        .header("idempotency-key", "p1")
        .header("x-user", "bob")
        .body("10 EUR")
        .send()
        .await
        .expect("request");
    assert_eq!(
        other_user.text().await.expect("body"),
        "payment #2: 10 EUR",
        "scoped per user"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_layer_tells_a_broken_body_from_a_large_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let router = Router::new()
        .route(
            "/payments",
            post(move |body: String| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    body
                }
            }),
        )
        .route_layer(IdempotencyLayer::new(MemoryStore::new()));
    let base = serve(router).await;
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /payments HTTP/1.1\r\nhost: x\r\nidempotency-key: k\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .expect("write");
    stream
        .shutdown()
        .await
        .expect("half-close: the body breaks off");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("urn:idempotent:problem:unreadable-body"),
        "{response}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the handler never ran");
}

/// A hyper service, no axum anywhere: counts its runs, answers 201 with the body it got.
#[derive(Clone)]
struct Echo(Arc<AtomicUsize>);

impl<B> tower_service::Service<http::Request<B>> for Echo
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let runs = self.0.clone();
        Box::pin(async move {
            use http_body_util::BodyExt as _;
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let body = request
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let text = format!("run #{n}: {}", String::from_utf8_lossy(&body));
            let mut response = http::Response::new(http_body_util::Full::from(text));
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        })
    }
}

#[tokio::test]
async fn the_layer_protects_a_plain_hyper_service() {
    use tower_layer::Layer as _;
    let runs = Arc::new(AtomicUsize::new(0));
    let service = IdempotencyLayer::new(MemoryStore::new()).layer(Echo(runs.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/orders", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
            );
        }
    });
    let first = post_key(&url, "o-1", "2 books").await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.text().await.expect("body"), "run #1: 2 books");
    let retry = post_key(&url, "o-1", "2 books").await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), "run #1: 2 books");
    let reused = post_key(&url, "o-1", "3 books").await;
    assert_eq!(problem(reused).await.2["code"], "key_reused");
    let listing = client().get(&url).send().await.expect("GET");
    assert_eq!(
        listing.text().await.expect("body"),
        "run #2: ",
        "GET passes through, runs"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_layers_operation_and_header_are_its_own() {
    let store = MemoryStore::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let route = |runs: Arc<AtomicUsize>| {
        post(move || {
            let runs = runs.clone();
            async move { format!("run #{}", runs.fetch_add(1, Ordering::SeqCst) + 1) }
        })
    };
    let router = Router::new()
        .route("/a", route(runs.clone()))
        .route_layer(IdempotencyLayer::new(store.clone()).operation("orders.a"))
        .merge(
            Router::new().route("/b", route(runs.clone())).route_layer(
                IdempotencyLayer::new(store.clone())
                    .operation("orders.b")
                    .header("x-request-key"),
            ),
        );
    let base = serve(router).await;
    let a = post_key(&format!("{base}/a"), "same", "").await;
    assert_eq!(a.text().await.expect("body"), "run #1");
    // Another operation on the same store: the same key is another key, not a reuse.
    let b = client()
        .post(format!("{base}/b"))
        .header("x-request-key", "same")
        .send()
        .await
        .expect("request");
    assert_eq!(b.status(), 200, "read from the layer's own header");
    assert_eq!(b.text().await.expect("body"), "run #2");
    let without = post_key(&format!("{base}/b"), "same", "").await;
    let (status, _, body) = problem(without).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("missing_key")));
}
