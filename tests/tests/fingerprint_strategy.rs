//! A user's `FingerprintStrategy` through every entry point — `Idempotent`, the attribute in
//! both modes, `IdempotencyLayer` — with a strategy observably unlike the default: it ignores
//! a `trace_id` field, so a retry with a new trace id replays while the default refuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_runtime::{
    DefaultFingerprintStrategy, Error, Fingerprint, FingerprintStrategy, IdempotencyKey,
    IdempotencyStore, Idempotent, MemoryStore, idempotent,
};
use idempotent_tests::http::{post_key, problem, serve};
use serde::{Deserialize, Serialize};

/// Drops every `trace_id` member, at any depth, then hashes the rest the default way.
struct IgnoreTraceId;

fn strip(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::Object(fields) => {
            fields.remove("trace_id");
            fields.values_mut().for_each(strip);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

impl FingerprintStrategy for IgnoreTraceId {
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
        match serde_json::from_slice::<serde_json::Value>(content) {
            Ok(mut json) => {
                strip(&mut json);
                DefaultFingerprintStrategy.compute(operation, json.to_string().as_bytes())
            }
            Err(_) => DefaultFingerprintStrategy.compute(operation, content),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    cents: u64,
    trace_id: String,
}

fn order(cents: u64, trace_id: &str) -> Order {
    Order {
        cents,
        trace_id: trace_id.to_owned(),
    }
}

async fn pay(op: &Idempotent<'_>, runs: &AtomicUsize, order: Order) -> Result<usize, Error> {
    let key = IdempotencyKey::new("k-builder").expect("key");
    op.run(&key, &order, async {
        Ok::<_, Error>(runs.fetch_add(1, Ordering::SeqCst) + 1)
    })
    .await
}

#[tokio::test]
async fn the_builder_uses_the_strategy_and_the_default_does_not() {
    let store = MemoryStore::new();
    let runs = AtomicUsize::new(0);
    let custom = Idempotent::new("pay")
        .store(&store)
        .fingerprint_strategy(&IgnoreTraceId);
    assert_eq!(pay(&custom, &runs, order(100, "a")).await.ok(), Some(1));
    assert_eq!(
        pay(&custom, &runs, order(100, "b")).await.ok(),
        Some(1),
        "another trace id: the same request, replayed"
    );
    assert!(matches!(
        pay(&custom, &runs, order(200, "a")).await,
        Err(Error::FingerprintMismatch)
    ));

    let default = Idempotent::new("pay-default").store(&store);
    assert_eq!(pay(&default, &runs, order(100, "a")).await.ok(), Some(2));
    assert!(
        matches!(
            pay(&default, &runs, order(100, "b")).await,
            Err(Error::FingerprintMismatch)
        ),
        "the default strategy sees the trace id"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = key, store = store, fingerprint_strategy = IgnoreTraceId)]
async fn pay_plain(store: &MemoryStore, key: &str, order: Order) -> Result<u64, Error> {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(order.cents)
}

#[tokio::test]
async fn the_attribute_uses_the_strategy_in_plain_mode() {
    let store = MemoryStore::new();
    assert_eq!(
        pay_plain(&store, "k-plain", order(100, "a")).await.ok(),
        Some(100)
    );
    assert_eq!(
        pay_plain(&store, "k-plain", order(100, "b")).await.ok(),
        Some(100)
    );
    assert!(matches!(
        pay_plain(&store, "k-plain", order(200, "a")).await,
        Err(Error::FingerprintMismatch)
    ));
    assert_eq!(PLAIN_RUNS.load(Ordering::SeqCst), 1);
}

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    strategy: Arc<dyn FingerprintStrategy>,
    runs: Arc<AtomicUsize>,
}

#[idempotent(key = header, store = state.store, fingerprint_strategy = state.strategy)]
async fn pay_http(State(state): State<App>, Json(order): Json<Order>) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("payment #{n}: {} cents", order.cents)
}

/// The same key: another trace id replays, another amount or query is 422.
async fn assert_trace_id_ignored(url: &str, runs: &AtomicUsize) {
    let first = post_key(url, "k-http", r#"{"cents":100,"trace_id":"a"}"#).await;
    assert_eq!(first.status(), 200);
    let body = first.text().await.expect("body");
    let retry = post_key(url, "k-http", r#"{"cents":100,"trace_id":"b"}"#).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), body);
    for (target, request) in [
        (url.to_owned(), r#"{"cents":200,"trace_id":"a"}"#),
        (
            format!("{url}?amount=large"),
            r#"{"cents":100,"trace_id":"a"}"#,
        ),
    ] {
        let (status, _, json) = problem(post_key(&target, "k-http", request).await).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (422, Some("key_reused")),
            "{target} {request}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_attribute_uses_the_strategy_in_http_mode() {
    let app = App {
        store: Arc::new(MemoryStore::new()),
        strategy: Arc::new(IgnoreTraceId),
        runs: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/pay", post(pay_http))
        .with_state(app.clone());
    let url = format!("{}/pay", serve(router).await);
    assert_trace_id_ignored(&url, &app.runs).await;
}

#[tokio::test]
async fn the_layer_uses_the_strategy_on_the_body() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let router = Router::new()
        .route(
            "/pay",
            post(move |Json(order): Json<Order>| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("payment #{n}: {} cents", order.cents) }
            }),
        )
        .route_layer(
            IdempotencyLayer::new(MemoryStore::new())
                .allow_unscoped()
                .fingerprint_strategy(IgnoreTraceId),
        );
    let url = format!("{}/pay", serve(router).await);
    assert_trace_id_ignored(&url, &runs).await;

    // The control: the default layer hashes the raw body, trace id and all.
    let plain = Router::new()
        .route("/pay", post(|| async { "paid" }))
        .route_layer(IdempotencyLayer::new(MemoryStore::new()).allow_unscoped());
    let url = format!("{}/pay", serve(plain).await);
    assert_eq!(
        post_key(&url, "k", r#"{"cents":100,"trace_id":"a"}"#)
            .await
            .status(),
        200
    );
    let (status, _, _) =
        problem(post_key(&url, "k", r#"{"cents":100,"trace_id":"b"}"#).await).await;
    assert_eq!(status, 422);
}
