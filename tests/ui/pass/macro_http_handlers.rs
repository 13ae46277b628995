#![deny(warnings, clippy::pedantic)]
//! HTTP mode: every option, `impl IntoResponse`, a `Result` of responses, shadowed prelude
//! names, and the handlers mounted on a router (so they are axum handlers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyStore, idempotent};

#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;

#[derive(Clone)]
struct AppState {
    idempotency: Arc<dyn IdempotencyStore>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NewUser {
    email: String,
    name: String,
}

/// Creates a user once per key.
#[idempotent(
    key = header,
    ttl = "24h",
    lease = "30s",
    store = state.idempotency,
    fingerprint(p.email),
    name = "users.create",
    concurrent = wait("5s"),
)]
async fn create_user(
    State(state): State<AppState>,
    Json(p): Json<NewUser>,
) -> Result<(StatusCode, Json<NewUser>), StatusCode> {
    Ok((StatusCode::CREATED, Json(p)))
}

/// Keyed by a custom header that may be absent; errors are stored too.
#[idempotent(key = header("X-Request-Id", optional), skip(state), scope = tenant, cache_errors)]
async fn import(State(state): State<AppState>, tenant: String) -> impl IntoResponse {
    let _ = state;
    tenant
}

fn main() {
    let _app: Router = Router::new()
        .route("/users", post(create_user))
        .route("/imports", post(import))
        .with_state(AppState {
            idempotency: Arc::new(idempotent_runtime::MemoryStore::new()),
        });
}
