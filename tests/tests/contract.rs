//! The edges of the at-most-once contract, each a test that failed before its fix: a response
//! body that breaks after the handler ran, a holder that stalls past its lease, the layer's
//! scope and validation rules, a full store, the key checked before the body. HTTP goes over a
//! real socket with a real client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_runtime::{
    Error, IdempotencyKey, IdempotencyStore, Idempotent, MemoryStore, current_claim, idempotent,
    storage_key,
};
use idempotent_tests::http::{post_key, problem, serve};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    runs: Arc<AtomicUsize>,
}

impl App {
    fn new(store: impl IdempotencyStore + 'static) -> Self {
        Self {
            store: Arc::new(store),
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A body that yields a first chunk, then fails: the handler's side effect already happened.
fn breaking_body() -> Body {
    Body::from_stream(futures::stream::iter([
        Ok(Bytes::from_static(b"{\"id\":")),
        Err(std::io::Error::other("the disk went away")),
    ]))
}

#[idempotent(key = header, store = state.store, name = "broken")]
async fn broken(State(state): State<App>) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    Response::new(breaking_body())
}

#[idempotent(key = header, store = state.store, name = "users")]
async fn create(State(state): State<App>, body: String) -> (StatusCode, String) {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, format!("user #{n}: {body}"))
}

fn problem_type(slug: &str) -> String {
    format!("urn:idempotent:problem:{slug}")
}

/// Contract point 1: the handler ran, then its body failed. The key is completed as "done,
/// not replayable" — never released — so the retry learns it happened and never re-runs it.
#[tokio::test]
async fn a_body_that_fails_after_the_handler_ran_is_never_run_again() {
    // Behind the attribute.
    let app = App::new(MemoryStore::new());
    let base = serve(
        Router::new()
            .route("/broken", post(broken))
            .with_state(app.clone()),
    )
    .await;
    let url = format!("{base}/broken");
    let (status, _, first) = problem(post_key(&url, "b-1", "").await).await;
    assert_eq!(
        (status, first["type"].as_str()),
        (500, Some(problem_type("response-failed").as_str())),
        "{first}"
    );
    let (status, _, retry) = problem(post_key(&url, "b-1", "").await).await;
    assert_eq!(
        (status, retry["type"].as_str()),
        (409, Some(problem_type("not-replayable").as_str())),
        "{retry}"
    );
    assert_eq!(app.runs(), 1, "the side effect ran once");

    // Behind the layer.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let router = Router::new()
        .route(
            "/broken",
            post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Response::new(breaking_body())
                }
            }),
        )
        .route_layer(IdempotencyLayer::new(MemoryStore::new()));
    let url = format!("{}/broken", serve(router).await);
    let (status, _, _) = problem(post_key(&url, "b-2", "x").await).await;
    assert_eq!(status, 500);
    let (status, _, retry) = problem(post_key(&url, "b-2", "x").await).await;
    assert_eq!(
        (status, retry["type"].as_str()),
        (409, Some(problem_type("not-replayable").as_str()))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Contract points 5 and 8: a holder stalls (its whole runtime blocked, as in a GC pause or a
/// SIGSTOP) past its lease; a second request takes the key over and completes. When the holder
/// wakes, its claim reads as lost *before* it commits, and its caller gets the winner's result,
/// the same answer as every other retry.
#[test]
fn a_holder_that_stalled_past_its_lease_sees_it_lost_and_gets_the_winners_answer() {
    let store = MemoryStore::new();
    let k = IdempotencyKey::new("stalled").expect("key");
    let lease = Duration::from_millis(150);
    let runs = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel();
    let (wake, wake_rx) = mpsc::channel::<()>();
    let (lost_tx, lost) = mpsc::channel();
    let holder = std::thread::spawn({
        let (store, k, runs) = (store.clone(), k.clone(), runs.clone());
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                Idempotent::new("stall")
                    .store(&store)
                    .lease(lease)
                    .run(&k, &1, async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        started_tx.send(()).expect("started");
                        // The stall: this thread (and so its runtime and heartbeat) stops.
                        wake_rx.recv().expect("woken");
                        let claim = current_claim().expect("inside the handler");
                        lost_tx
                            .send((claim.is_lost(), claim.lease_remaining()))
                            .expect("lost");
                        Ok::<_, Error>("zombie".to_owned())
                    })
                    .await
            })
        }
    });
    started.recv().expect("the holder started");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let winner = rt.block_on(async {
        let stored = storage_key("stall", None, &k);
        for _ in 0..200 {
            if store.get(stored.as_key()).await.expect("get").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Idempotent::new("stall")
            .store(&store)
            .lease(lease)
            .run(&k, &1, async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>("winner".to_owned())
            })
            .await
    });
    assert_eq!(
        winner.ok().as_deref(),
        Some("winner"),
        "the retry took over"
    );
    wake.send(()).expect("wake");
    let (is_lost, remaining) = lost.recv().expect("the holder looked");
    assert!(
        is_lost,
        "a claim past its lease reads as lost before commit"
    );
    assert_eq!(remaining, Duration::ZERO);
    let late = holder.join().expect("holder thread");
    assert_eq!(
        late.ok().as_deref(),
        Some("winner"),
        "the stale holder's caller gets the stored answer"
    );
    // Documented: a holder paused past its lease runs twice; it could see that it lost.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[derive(Debug, Serialize, Deserialize)]
struct NewAccount {
    name: String,
}

fn layered(runs: &Arc<AtomicUsize>, layer: IdempotencyLayer<MemoryStore>) -> Router {
    let counter = runs.clone();
    Router::new()
        .route(
            "/accounts",
            post(move |Json(account): Json<NewAccount>| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    (
                        StatusCode::CREATED,
                        format!("account #{n}: {}", account.name),
                    )
                }
            }),
        )
        .route_layer(layer)
}

/// Contract point 6: a scope closure that finds no principal refuses the request (400),
/// unless the application allows unscoped requests explicitly.
#[tokio::test]
async fn the_layer_refuses_a_request_without_a_scope() {
    let runs = Arc::new(AtomicUsize::new(0));
    let by_user = |parts: &axum::http::request::Parts| {
        parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let strict = IdempotencyLayer::new(MemoryStore::new()).scope(by_user);
    let url = format!("{}/accounts", serve(layered(&runs, strict)).await);
    let (status, _, json) = problem(post_key(&url, "s-1", r#"{"name":"ada"}"#).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (400, Some(problem_type("missing-scope").as_str())),
        "{json}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing ran unscoped");

    let lenient = IdempotencyLayer::new(MemoryStore::new())
        .scope(by_user)
        .allow_unscoped();
    let url = format!("{}/accounts", serve(layered(&runs, lenient)).await);
    assert_eq!(
        post_key(&url, "s-1", r#"{"name":"ada"}"#).await.status(),
        201
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Contract point 7: the inner extractor's rejection (400 bad JSON, 422 missing field) is not
/// stored under the layer, so the corrected request with the same key runs.
#[tokio::test]
async fn the_layer_does_not_store_validation_rejections() {
    let runs = Arc::new(AtomicUsize::new(0));
    let url = format!(
        "{}/accounts",
        serve(layered(&runs, IdempotencyLayer::new(MemoryStore::new()))).await
    );
    assert_eq!(post_key(&url, "v-1", "{not json").await.status(), 400);
    assert_eq!(
        post_key(&url, "v-1", r#"{"nom":"ada"}"#).await.status(),
        422
    );
    let fixed = post_key(&url, "v-1", r#"{"name":"ada"}"#).await;
    assert_eq!(fixed.status(), 201);
    assert_eq!(fixed.text().await.expect("body"), "account #1: ada");
    let replay = post_key(&url, "v-1", r#"{"name":"ada"}"#).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Contract point 9: a full store is a transient state: 503 with `Retry-After`, like an
/// unreachable one, never a 500.
#[tokio::test]
async fn a_full_store_is_503_with_retry_after() {
    let app = App::new(MemoryStore::builder().max_entries(1).build());
    let base = serve(
        Router::new()
            .route("/users", post(create))
            .with_state(app.clone()),
    )
    .await;
    let url = format!("{base}/users");
    assert_eq!(post_key(&url, "full-1", "ada").await.status(), 201);
    let (status, headers, json) = problem(post_key(&url, "full-2", "eve").await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (503, Some(problem_type("store-full").as_str())),
        "{json}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(app.runs(), 1);
}

/// Contract point 10: the layer checks the key before it reads the body, so an oversized
/// body with a bad key is told about the key.
#[tokio::test]
async fn the_layer_checks_the_key_before_the_body() {
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::new(MemoryStore::new()).max_request_body(8);
    let url = format!("{}/accounts", serve(layered(&runs, layer)).await);
    let (status, _, json) = problem(post_key(&url, "has space", &"x".repeat(100)).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (400, Some(problem_type("invalid-key").as_str()))
    );
    let missing = idempotent_tests::http::client()
        .post(&url)
        .body("x".repeat(100))
        .send()
        .await
        .expect("request");
    let (status, _, json) = problem(missing).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (400, Some(problem_type("missing-key").as_str()))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}
