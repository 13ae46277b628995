#![deny(warnings, clippy::pedantic)]

// Transactional mode in both forms compiles cleanly: a plain fn and an axum handler whose
// queries run on the transaction the library commits.
use axum::extract::State;
use axum::http::StatusCode;
use idempotent_runtime::{idempotent, Error, PostgresStore, SqliteStore};

#[idempotent(key = key, store = store, transaction = tx)]
async fn add(store: &SqliteStore, key: &str, name: &str) -> Result<i64, Error> {
    sqlx::query_scalar("INSERT INTO users (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| Error::StoreUnavailable(Box::new(e)))
}

#[idempotent(key = header, store = store, transaction = tx, name = "users.create")]
async fn create(State(store): State<PostgresStore>, body: String) -> Result<String, StatusCode> {
    sqlx::query("INSERT INTO users (name) VALUES ($1)")
        .bind(&body)
        .execute(&mut **tx)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if body.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(body)
}

fn main() {
    let _ = (add, axum::routing::post(create));
    let _: axum::Router<PostgresStore> = axum::Router::new().route("/users", axum::routing::post(create));
}
