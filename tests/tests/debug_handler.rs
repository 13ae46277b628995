//! `#[axum::debug_handler]` goes below `#[idempotent]`: it then checks the handler as written.
//! (Above, it runs first and checks a fn whose signature `#[idempotent]` then changes — the
//! hidden request-head argument — and fails with "this function takes 2 arguments".)

use axum::Router;
use axum::routing::post;
use idempotent_runtime::idempotent;
use idempotent_tests::http::{post_key, serve};

#[idempotent(key = header, name = "debug.below")]
#[axum::debug_handler]
async fn below(body: String) -> String {
    format!("below {body}")
}

#[tokio::test]
async fn a_debug_handler_below_the_attribute_is_an_idempotent_handler() {
    let base = serve(Router::new().route("/below", post(below))).await;
    let url = format!("{base}/below");
    let first = post_key(&url, "k", "x").await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(first.text().await.ok().as_deref(), Some("below x"));
    let replay = post_key(&url, "k", "x").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}
