//! HTTP mode over a real TCP socket with a real HTTP client (reqwest): `#[idempotent(key =
//! header)]` axum handlers, the `IdempotencyLayer`, the `IdempotencyKey` extractor, and every
//! rejection as `application/problem+json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{AppendHeaders, IntoResponse};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyKey, IdempotencyStore, MemoryStore, idempotent, storage_key};
use idempotent_tests::http::{client, post_key, problem, serve};
use idempotent_tests::redis_server::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    runs: Arc<AtomicUsize>,
}

impl App {
    fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    fn with_store(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            store,
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Debug, Serialize)]
struct User {
    id: usize,
    name: String,
}

#[idempotent(key = header, store = state.store, name = "users.create")]
async fn create_user(State(state): State<App>, Json(user): Json<NewUser>) -> impl IntoResponse {
    let id = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        AppendHeaders([
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("set-cookie", "session=secret"),
        ]),
        Json(User {
            id,
            name: user.name,
        }),
    )
}

#[idempotent(key = header, store = state.store, name = "slow")]
async fn slow(State(state): State<App>, body: String) -> String {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("slow #{n} {body}")
}

#[idempotent(key = header, store = state.store, name = "slow", concurrent = wait("5s"))]
async fn slow_wait(State(state): State<App>, body: String) -> String {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("slow #{n} {body}")
}

#[idempotent(key = header, store = state.store, name = "flaky")]
async fn flaky(State(state): State<App>) -> (StatusCode, String) {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned())
    } else {
        (StatusCode::OK, format!("up #{n}"))
    }
}

#[idempotent(key = header, store = state.store, name = "failing", cache_errors)]
async fn failing(State(state): State<App>) -> (StatusCode, String) {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::INTERNAL_SERVER_ERROR, format!("failed #{n}"))
}

#[idempotent(key = header("X-Request-Id", optional), store = state.store, name = "optional")]
async fn optional(State(state): State<App>) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("ran #{n}")
}

/// The authenticated principal, from a header (a stand-in for real authentication).
#[derive(Debug, Serialize)]
struct Principal(String);

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StatusCode> {
        parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(|v| Principal(v.to_owned()))
            .ok_or(StatusCode::UNAUTHORIZED)
    }
}

#[idempotent(key = header, store = state.store, name = "notes", scope = user.0, skip(user))]
async fn note(State(state): State<App>, user: Principal, body: String) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    format!("note #{n} by {} : {body}", user.0)
}

async fn by_hand(key: IdempotencyKey) -> String {
    format!("key {key}")
}

async fn by_hand_optional(key: Option<IdempotencyKey>) -> String {
    format!("key {key:?}")
}

fn router(app: &App) -> Router {
    Router::new()
        .route("/users", post(create_user))
        .route("/slow", post(slow))
        .route("/slow-wait", post(slow_wait))
        .route("/flaky", post(flaky))
        .route("/failing", post(failing))
        .route("/optional", post(optional))
        .route("/notes", post(note))
        .route("/by-hand", post(by_hand))
        .route("/by-hand-optional", post(by_hand_optional))
        .with_state(app.clone())
}

/// Status, headers without `date`, and body bytes.
async fn snapshot(response: reqwest::Response) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(n, _)| *n != "date")
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn a_retry_replays_status_headers_and_body_byte_identical() {
    let app = App::new();
    let base = serve(router(&app)).await;
    let url = format!("{base}/users");
    let first = post_key(&url, "key-1", r#"{"name":"ada"}"#).await;
    assert!(
        first.headers().get("set-cookie").is_some(),
        "the first response has its cookie"
    );
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, mut headers, body) = snapshot(first).await;
    assert_eq!(status, 201);
    assert_eq!(body, br#"{"id":1,"name":"ada"}"#);

    let retry = post_key(&url, "key-1", r#"{"name":"ada"}"#).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert!(
        retry.headers().get("set-cookie").is_none(),
        "a session cookie is never replayed"
    );
    let (r_status, mut r_headers, r_body) = snapshot(retry).await;
    headers.retain(|(n, _)| n != "set-cookie");
    r_headers.retain(|(n, _)| n != "idempotent-replayed");
    assert_eq!((r_status, &r_headers, &r_body), (status, &headers, &body));
    let multi: Vec<_> = r_headers.iter().filter(|(n, _)| n == "x-multi").collect();
    assert_eq!(
        multi.len(),
        2,
        "repeated headers are kept in order: {r_headers:?}"
    );
    assert_eq!(app.runs(), 1);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_run_the_handler_once() {
    for (path, wait) in [("/slow", false), ("/slow-wait", true)] {
        let app = App::new();
        let base = serve(router(&app)).await;
        let url = format!("{base}{path}");
        let requests = (0..200).map(|_| post_key(&url, "same", "payload"));
        let responses = futures::future::join_all(requests).await;
        let (mut ok, mut conflicts) = (0, 0);
        for response in responses {
            match response.status().as_u16() {
                200 => {
                    ok += 1;
                    assert_eq!(response.text().await.expect("body"), "slow #1 payload");
                }
                409 if !wait => {
                    conflicts += 1;
                    let (_, headers, body) = problem(response).await;
                    assert_eq!(body["type"], "urn:idempotent:problem:in-flight");
                    assert_eq!(headers["retry-after"], "1");
                }
                other => panic!("{path}: unexpected status {other}"),
            }
        }
        assert_eq!(app.runs(), 1, "{path}");
        if wait {
            assert_eq!(ok, 200, "with `wait` every request gets the response");
        } else {
            assert!(ok >= 1, "the first request gets the response");
            assert!(
                conflicts >= 1,
                "requests that met the running one were refused with 409"
            );
            assert_eq!(ok + conflicts, 200, "every request got one of the two");
        }
    }
}

#[tokio::test]
async fn every_rejection_is_a_problem_json() {
    let app = App::new();
    let base = serve(router(&app)).await;
    let url = format!("{base}/users");
    let body = r#"{"name":"ada"}"#;

    let missing = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let (status, _, json) = problem(missing).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (400, Some("urn:idempotent:problem:missing-key"))
    );
    assert!(
        json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("idempotency-key")),
        "{json}"
    );

    for bad in ["has space", "", "\"unterminated", &"k".repeat(256)] {
        let (status, _, json) = problem(post_key(&url, bad, body).await).await;
        assert_eq!(
            (status, json["type"].as_str()),
            (400, Some("urn:idempotent:problem:invalid-key")),
            "{bad:?}"
        );
    }
    let twice = client()
        .post(&url)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let (status, _, json) = problem(twice).await;
    assert_eq!(status, 400);
    assert!(
        json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("more than once")),
        "{json}"
    );

    assert_eq!(post_key(&url, "reused", body).await.status(), 201);
    let (status, _, json) = problem(post_key(&url, "reused", r#"{"name":"eve"}"#).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (422, Some("urn:idempotent:problem:key-reused"))
    );
    let quoted = post_key(&url, "\"reused\"", body).await;
    assert_eq!(
        quoted.headers()["idempotent-replayed"],
        "true",
        "the sf-string form is the same key"
    );
    assert_eq!(app.runs(), 1);
}

#[tokio::test]
async fn an_unreachable_store_is_503_and_a_corrupt_record_is_500() {
    let mut server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(500)).await;
    let app = App::with_store(Arc::new(store.clone()));
    let base = serve(router(&app)).await;
    let url = format!("{base}/users");

    let stored = storage_key(
        "users.create",
        None,
        &IdempotencyKey::new("broken").expect("key"),
    );
    let () = redis::cmd("SET")
        .arg(store.record_key(&stored))
        .arg("garbage")
        .query(&mut server.client())
        .expect("SET");
    let (status, _, json) = problem(post_key(&url, "broken", r#"{"name":"ada"}"#).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (500, Some("urn:idempotent:problem:corrupt-record"))
    );

    server.kill();
    let (status, headers, json) = problem(post_key(&url, "k", r#"{"name":"ada"}"#).await).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (503, Some("urn:idempotent:problem:store-unavailable"))
    );
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(app.runs(), 0, "nothing ran without a claim");
}

#[tokio::test]
async fn one_principal_never_sees_another_principals_response() {
    let app = App::new();
    let base = serve(router(&app)).await;
    let url = format!("{base}/notes");
    let send = |user: &'static str| {
        client()
            .post(&url)
            .header("idempotency-key", "shared-key")
            .header("x-user", user)
            .body("hello")
            .send()
    };
    let alice = send("alice")
        .await
        .expect("alice")
        .text()
        .await
        .expect("body");
    let bob = send("bob").await.expect("bob").text().await.expect("body");
    assert_eq!(alice, "note #1 by alice : hello");
    assert_eq!(bob, "note #2 by bob : hello", "bob gets his own execution");
    let alice_again = send("alice").await.expect("alice");
    assert_eq!(alice_again.headers()["idempotent-replayed"], "true");
    assert_eq!(alice_again.text().await.expect("body"), alice);
    assert_eq!(app.runs(), 2);
}

#[tokio::test]
async fn server_errors_release_the_key_unless_errors_are_cached() {
    let app = App::new();
    let base = serve(router(&app)).await;
    let first = post_key(&format!("{base}/flaky"), "f", "").await;
    assert_eq!(first.status(), 503);
    let second = post_key(&format!("{base}/flaky"), "f", "").await;
    assert_eq!(
        second.status(),
        200,
        "a 5xx released the key: the retry ran"
    );
    assert_eq!(second.text().await.expect("body"), "up #2");
    let third = post_key(&format!("{base}/flaky"), "f", "").await;
    assert_eq!(third.headers()["idempotent-replayed"], "true");

    let failed = post_key(&format!("{base}/failing"), "e", "").await;
    assert_eq!(failed.status(), 500);
    let replayed = post_key(&format!("{base}/failing"), "e", "").await;
    assert_eq!(replayed.status(), 500);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.text().await.expect("body"), "failed #3");
    assert_eq!(app.runs(), 3);
}

#[tokio::test]
async fn an_optional_key_runs_unprotected_without_one_and_a_custom_header_is_read() {
    let app = App::new();
    let base = serve(router(&app)).await;
    let url = format!("{base}/optional");
    for n in 1..=2 {
        let text = client()
            .post(&url)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        assert_eq!(text, format!("ran #{n}"));
    }
    let keyed = || client().post(&url).header("x-request-id", "r1").send();
    assert_eq!(
        keyed().await.expect("request").text().await.expect("body"),
        "ran #3"
    );
    let retry = keyed().await.expect("request");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), "ran #3");
    // `Idempotency-Key` is not this handler's header: it runs unprotected.
    let other = client()
        .post(&url)
        .header("idempotency-key", "r1")
        .send()
        .await
        .expect("request");
    assert_eq!(other.text().await.expect("body"), "ran #4");
}

#[tokio::test]
async fn the_key_extractor_rejects_with_a_problem() {
    let base = serve(router(&App::new())).await;
    let ok = post_key(&format!("{base}/by-hand"), "\"k-1\"", "").await;
    assert_eq!(ok.text().await.expect("body"), "key k-1");
    let missing = client()
        .post(format!("{base}/by-hand"))
        .send()
        .await
        .expect("request");
    let (status, _, json) = problem(missing).await;
    assert_eq!(
        (status, json["type"].as_str()),
        (400, Some("urn:idempotent:problem:missing-key"))
    );
    let none = client()
        .post(format!("{base}/by-hand-optional"))
        .send()
        .await
        .expect("request");
    assert_eq!(none.text().await.expect("body"), "key None");
    let bad = post_key(&format!("{base}/by-hand-optional"), "a b", "").await;
    assert_eq!(bad.status(), 400);
}
