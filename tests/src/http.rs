//! HTTP test helpers: serve a router on a free loopback port, send keyed requests with a real
//! client, read problem responses.

use axum::Router;
use axum::http::HeaderMap;

/// Serves `router` on a free loopback port; returns its base URL.
///
/// # Panics
/// When the port cannot be bound (a test harness failure).
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    format!("http://{address}")
}

/// A real HTTP client.
#[must_use]
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST url` with the `Idempotency-Key` header and a JSON content type.
///
/// # Panics
/// When the request cannot be sent.
pub async fn post_key(url: &str, key: &str, body: &str) -> reqwest::Response {
    client()
        .post(url)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

/// A problem response's status, headers and JSON body; checks its content type and that the
/// body's `status` is the response's.
///
/// # Panics
/// When the response is not `application/problem+json`.
pub async fn problem(response: reqwest::Response) -> (u16, HeaderMap, serde_json::Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    (status, headers, body)
}
