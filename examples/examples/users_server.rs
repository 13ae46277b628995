//! A little user service made retry-safe with one attribute: `POST /users` inserts a row into
//! an embedded SQLite database, so "exactly once" is visible as rows (`GET /users`).
//!
//! `cargo run --example users_server` — listens on 127.0.0.1:3000 (`PORT` to change, 0 for
//! any free port), keeps its database in a temporary file (`DATABASE_PATH` to choose), and
//! uses the in-memory idempotency store, or `ValkeyStore` when `IDEMPOTENT_REDIS_URL` is set.
//!
//! ```sh
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'   # replayed
//! curl -i -X POST localhost:3000/users -H 'Idempotency-Key: 9f1c' -H 'content-type: application/json' -d '{"name":"Eve","email":"eve@example.com"}'   # 422
//! ```

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{IdempotencyStore, MemoryStore, ValkeyStore, idempotent};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct AppState {
    db: Arc<Mutex<rusqlite::Connection>>,
    idempotency: Arc<dyn IdempotencyStore>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NewUser {
    name: String,
    email: String,
}

#[derive(Debug, Serialize)]
struct User {
    id: i64,
    name: String,
    email: String,
}

/// What the API answers when the database fails.
struct ApiError(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A 5xx releases the idempotency key: the client may retry.
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

/// Creates a user: runs once per `Idempotency-Key`; retries get the stored response.
#[idempotent(key = header, ttl = "24h", store = state.idempotency, skip(state), name = "users.create")]
async fn create_user(
    State(state): State<AppState>,
    Json(p): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let db = state.db.clone();
    let user = tokio::task::spawn_blocking(move || {
        let db = db
            .lock()
            .map_err(|_| ApiError("database lock poisoned".into()))?;
        db.execute(
            "INSERT INTO users (name, email) VALUES (?1, ?2)",
            (&p.name, &p.email),
        )
        .map_err(|e| ApiError(format!("insert failed: {e}")))?;
        Ok::<_, ApiError>(User {
            id: db.last_insert_rowid(),
            name: p.name,
            email: p.email,
        })
    })
    .await
    .map_err(|e| ApiError(format!("database task failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Lists every user row.
async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    let db = state
        .db
        .lock()
        .map_err(|_| ApiError("database lock poisoned".into()))?;
    let mut query = db
        .prepare("SELECT id, name, email FROM users ORDER BY id")
        .map_err(|e| ApiError(e.to_string()))?;
    let rows = query
        .query_map([], |row| {
            Ok(User {
                id: row.get(0)?,
                name: row.get(1)?,
                email: row.get(2)?,
            })
        })
        .map_err(|e| ApiError(e.to_string()))?;
    let users = rows
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError(e.to_string()))?;
    Ok(Json(users))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("DATABASE_PATH").map_or_else(
        |_| std::env::temp_dir().join(format!("idempotent-users-{}.db", std::process::id())),
        std::path::PathBuf::from,
    );
    let db = rusqlite::Connection::open(&path)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            email TEXT NOT NULL
        )",
    )?;
    let (idempotency, kind): (Arc<dyn IdempotencyStore>, String) =
        match std::env::var("IDEMPOTENT_REDIS_URL") {
            Ok(url) => (
                Arc::new(ValkeyStore::connect(&url).await?),
                format!("valkey at {url}"),
            ),
            Err(_) => (Arc::new(MemoryStore::new()), "in-memory".to_owned()),
        };
    let state = AppState {
        db: Arc::new(Mutex::new(db)),
        idempotency,
    };
    let app = Router::new()
        .route("/users", post(create_user).get(list_users))
        .with_state(state);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("database: {}", path.display());
    println!("idempotency store: {kind}");
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
