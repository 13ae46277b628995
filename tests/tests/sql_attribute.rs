//! `#[idempotent(…, transaction = tx)]`: the attribute's transactional mode, as a plain async fn
//! and as an axum handler over a real socket — the body's queries run on `tx`, which the
//! library commits with the record.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{Error, SqliteStore, idempotent};
use idempotent_tests::http::{post_key, problem, serve};
use idempotent_tests::sql::TempDir;
use serde::{Deserialize, Serialize};

async fn database() -> (SqliteStore, sqlx::SqlitePool, TempDir) {
    let (pool, dir) = idempotent_tests::sql::sqlite("attr").await;
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("users");
    let store = SqliteStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    (store, pool, dir)
}

async fn rows(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[idempotent(key = key, store = store, transaction = tx, name = "users.add")]
async fn add_user(store: &SqliteStore, key: &str, name: &str) -> Result<i64, Error> {
    if name.is_empty() {
        // Written, then refused: the error rolls the insert back.
        sqlx::query("INSERT INTO users (name) VALUES ('')")
            .execute(&mut **tx)
            .await
            .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
        return Err(Error::NotReplayable);
    }
    sqlx::query_scalar("INSERT INTO users (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| Error::StoreUnavailable(Box::new(e)))
}

#[tokio::test]
async fn a_plain_fn_commits_its_writes_with_the_record() {
    let (store, pool, dir) = database().await;
    assert!(matches!(
        add_user(&store, "k-empty", "").await,
        Err(Error::NotReplayable)
    ));
    assert_eq!(rows(&pool).await, 0, "the refused call committed nothing");
    let first = add_user(&store, "k-ada", "ada").await.expect("added");
    let retry = add_user(&store, "k-ada", "ada").await.expect("replayed");
    assert_eq!(first, retry);
    assert!(matches!(
        add_user(&store, "k-ada", "eve").await,
        Err(Error::FingerprintMismatch)
    ));
    assert_eq!(rows(&pool).await, 1);
    drop(dir);
}

#[derive(Clone)]
struct Db {
    store: SqliteStore,
}

#[derive(Debug, Serialize, Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Debug, Serialize)]
struct User {
    id: i64,
    name: String,
}

#[idempotent(key = header, store = db.store, transaction = tx, name = "users.create")]
async fn create_user(
    State(db): State<Db>,
    Json(user): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), StatusCode> {
    let id: i64 = sqlx::query_scalar("INSERT INTO users (name) VALUES ($1) RETURNING id")
        .bind(&user.name)
        .fetch_one(&mut **tx)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if user.name == "fail" {
        // A 5xx after a write: rolled back with it, and the key freed.
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok((
        StatusCode::CREATED,
        Json(User {
            id,
            name: user.name,
        }),
    ))
}

#[tokio::test]
async fn an_axum_handler_commits_its_writes_with_the_record() {
    let (store, pool, dir) = database().await;
    let app = Router::new()
        .route("/users", post(create_user))
        .with_state(Db { store });
    let url = format!("{}/users", serve(app).await);
    let first = post_key(&url, "u-1", r#"{"name":"ada"}"#).await;
    assert_eq!(first.status(), 201);
    let body = first.text().await.expect("body");
    let retry = post_key(&url, "u-1", r#"{"name":"ada"}"#).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), body);
    let (status, _, json) = problem(post_key(&url, "u-1", r#"{"name":"eve"}"#).await).await;
    assert_eq!((status, json["code"].as_str()), (422, Some("key_reused")));
    assert_eq!(
        post_key(&url, "u-2", r#"{"name":"fail"}"#).await.status(),
        503
    );
    assert_eq!(rows(&pool).await, 1, "the 5xx rolled its insert back");
    let missing = idempotent_tests::http::client()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"name":"bob"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 400);
    assert_eq!(rows(&pool).await, 1);
    drop(dir);
}
