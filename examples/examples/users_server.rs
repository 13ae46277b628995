//! A little user service made retry-safe with one attribute: `POST /users` inserts a row, so
//! "exactly once" is visible as rows (`GET /users`).
//!
//! `cargo run --example users_server` — listens on 127.0.0.1:3000 (`PORT` to change, 0 for
//! any free port) and keeps its users **and its idempotency records in one SQLite database**
//! (a temporary file; `DATABASE_PATH` to choose), in transactional mode: the user row and the
//! record commit in one transaction, so a crash, an error or a stalled request never leaves a
//! row without its record — exactly once. With `DATABASE_URL=postgres://…` the same runs on
//! PostgreSQL. With `IDEMPOTENT_REDIS_URL=redis://…` the records live in Valkey/Redis instead
//! (several instances share them; at most once, not transactional).
//!
//! ```sh
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'   # replayed
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Eve","email":"eve@example.com"}'   # 422
//! ```

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyStore, PostgresStore, SqliteStore, ValkeyStore, idempotent};
use serde::{Deserialize, Serialize};

const INSERT: &str = "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id";
const LIST: &str = "SELECT id, name, email FROM users ORDER BY id";

#[derive(Debug, Serialize, Deserialize)]
struct NewUser {
    name: String,
    email: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct User {
    id: i64,
    name: String,
    email: String,
}

/// What the API answers when the database fails.
struct ApiError(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A 5xx rolls the transaction back and releases the key: the client may retry.
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self(format!("database: {e}"))
    }
}

/// Creates a user: once per `Idempotency-Key`. The insert runs on `tx`, the transaction the
/// library commits together with the idempotency record. A request cut off by a crash holds
/// its key for one lease (5 s here), with nothing committed; then the retry runs.
#[idempotent(key = header, ttl = "24h", lease = "5s", store = store, transaction = tx, name = "users.create")]
async fn create_user(
    State(store): State<SqliteStore>,
    Json(p): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (id,): (i64,) = sqlx::query_as(INSERT)
        .bind(&p.name)
        .bind(&p.email)
        .fetch_one(&mut **tx)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(User {
            id,
            name: p.name,
            email: p.email,
        }),
    ))
}

/// The same on PostgreSQL.
#[idempotent(key = header, ttl = "24h", store = store, transaction = tx, name = "users.create")]
async fn create_user_pg(
    State(store): State<PostgresStore>,
    Json(p): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (id,): (i64,) = sqlx::query_as(INSERT)
        .bind(&p.name)
        .bind(&p.email)
        .fetch_one(&mut **tx)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(User {
            id,
            name: p.name,
            email: p.email,
        }),
    ))
}

/// With the records in Valkey: the row commits on its own, the record in Redis (at most once).
#[derive(Clone)]
struct Shared {
    db: sqlx::SqlitePool,
    idempotency: Arc<dyn IdempotencyStore>,
}

#[idempotent(key = header, ttl = "24h", store = state.idempotency, name = "users.create")]
async fn create_user_shared(
    State(state): State<Shared>,
    Json(p): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let (id,): (i64,) = sqlx::query_as(INSERT)
        .bind(&p.name)
        .bind(&p.email)
        .fetch_one(&state.db)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(User {
            id,
            name: p.name,
            email: p.email,
        }),
    ))
}

async fn list_sqlite(State(store): State<SqliteStore>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(sqlx::query_as(LIST).fetch_all(store.pool()).await?))
}

async fn list_postgres(State(store): State<PostgresStore>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(sqlx::query_as(LIST).fetch_all(store.pool()).await?))
}

async fn list_shared(State(state): State<Shared>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(sqlx::query_as(LIST).fetch_all(&state.db).await?))
}

/// The app and a line saying where its data lives.
async fn app() -> Result<(Router, String), Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let pool = sqlx::PgPool::connect(&url).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)")
            .execute(&pool)
            .await?;
        let store = PostgresStore::new(pool);
        store.migrate().await?;
        let router = Router::new()
            .route("/users", post(create_user_pg).get(list_postgres))
            .with_state(store);
        return Ok((
            router,
            "users and idempotency records: PostgreSQL, transactional".to_owned(),
        ));
    }
    let path = std::env::var("DATABASE_PATH").map_or_else(
        |_| std::env::temp_dir().join(format!("idempotent-users-{}.db", std::process::id())),
        std::path::PathBuf::from,
    );
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let db = sqlx::SqlitePool::connect_with(options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT NOT NULL)")
        .execute(&db)
        .await?;
    if let Ok(url) = std::env::var("IDEMPOTENT_REDIS_URL") {
        let idempotency = Arc::new(ValkeyStore::connect(&url).await?);
        let router = Router::new()
            .route("/users", post(create_user_shared).get(list_shared))
            .with_state(Shared { db, idempotency });
        let place = format!(
            "users: {}; idempotency records: valkey at {url}",
            path.display()
        );
        return Ok((router, place));
    }
    let store = SqliteStore::new(db);
    store.migrate().await?;
    let router = Router::new()
        .route("/users", post(create_user).get(list_sqlite))
        .route("/health", get(|| async { "ok" }))
        .with_state(store);
    let place = format!(
        "users and idempotency records: {} (SQLite, transactional)",
        path.display()
    );
    Ok((router, place))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, place) = app().await?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("{place}");
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
