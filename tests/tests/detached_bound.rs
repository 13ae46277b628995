//! The bound on detached handlers, in a process of its own (it is process-wide): beyond it a
//! new request is 503 `overloaded` with `Retry-After`, runs nothing and leaves its key free;
//! replays are still answered; after `service::shutdown` nothing new starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use idempotent_runtime::{IdempotencyStore, MemoryStore, idempotent, service};
use idempotent_tests::gate::Gate;
use idempotent_tests::http::{post_key, problem, serve};

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    gate: Gate,
    runs: Arc<AtomicUsize>,
}

#[idempotent(key = header, store = state.store, name = "bound.slow")]
async fn slow(State(state): State<App>, body: String) -> String {
    let n = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if body == "hold" {
        state.gate.pass().await;
    }
    format!("run #{n}")
}

#[tokio::test]
async fn beyond_the_bound_a_request_is_503_and_runs_nothing() {
    service::set_max_detached(1);
    let app = App {
        store: Arc::new(MemoryStore::new()),
        gate: Gate::new(),
        runs: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/slow", post(slow))
        .with_state(app.clone());
    let url = format!("{}/slow", serve(router).await);
    assert_eq!(
        post_key(&url, "done", "quick")
            .await
            .text()
            .await
            .ok()
            .as_deref(),
        Some("run #1")
    );

    let held = tokio::spawn({
        let url = url.clone();
        async move { post_key(&url, "held", "hold").await.text().await.ok() }
    });
    app.gate.entered().await; // one handler runs detached: the bound is reached
    let (status, headers, json) = problem(post_key(&url, "refused", "quick").await).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (503, Some("overloaded")),
        "{json}"
    );
    assert_eq!(headers["retry-after"], "1");
    let replay = post_key(&url, "done", "quick").await;
    assert_eq!(
        replay.headers()["idempotent-replayed"],
        "true",
        "replays are never refused"
    );
    assert_eq!(
        app.runs.load(Ordering::SeqCst),
        2,
        "the refused request ran nothing"
    );

    app.gate.open();
    assert_eq!(held.await.expect("held").as_deref(), Some("run #2"));
    assert_eq!(
        post_key(&url, "refused", "quick")
            .await
            .text()
            .await
            .ok()
            .as_deref(),
        Some("run #3"),
        "its key was left free: the retry runs"
    );

    assert!(
        service::shutdown(Duration::from_secs(1)).await,
        "nothing was in flight"
    );
    let (status, _, json) = problem(post_key(&url, "after", "quick").await).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (503, Some("overloaded")),
        "{json}"
    );
    assert_eq!(app.runs.load(Ordering::SeqCst), 3);
}
