//! The examples are part of the product: each is run as a user would (`cargo run --example`)
//! and its output checked.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

mod support;

use idempotent_tests::postgres_server::PostgresServer;
use idempotent_tests::redis_server::RedisServer;

fn run_example(name: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot start cargo for example {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn quickstart_issues_one_credential() {
    let out = run_example("quickstart");
    assert!(out.contains("first call        -> executed"), "{out}");
    assert!(out.contains("retry, same key   -> replayed"), "{out}");
    assert!(out.contains("other request     -> refused"), "{out}");
    assert!(out.contains("credentials issued: 1"), "{out}");
}

#[test]
fn payments_charges_every_order_once() {
    let out = run_example("payments");
    assert!(out.contains("reply lost, retrying"), "{out}");
    assert!(
        out.contains("5 charges at the gateway (one per order)"),
        "{out}"
    );
    assert!(
        out.contains("refused: a request with this idempotency key is still being processed"),
        "{out}"
    );
    assert!(
        out.contains("the retry after both: replayed ch_0006"),
        "{out}"
    );
    assert!(out.contains("6 orders, 6 charges at the gateway"), "{out}");
}

#[test]
fn observability_prints_spans_and_metrics() {
    let out = run_example("observability");
    for expected in [
        "idempotent_executions_total{operation=orders.charge,outcome=executed} 2",
        "idempotent_executions_total{operation=orders.charge,outcome=replayed} 1",
        "idempotent_executions_total{operation=orders.charge,outcome=in_flight} 1",
        "idempotent_executions_total{operation=orders.charge,outcome=mismatch} 1",
        "idempotent_executions_total{operation=orders.charge,outcome=rejected_key} 1",
        "idempotent_store_seconds{store=memory,op=try_insert} 5 samples",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// A running `users_server`, killed on drop.
struct Server {
    child: Child,
    base: String,
    db: PathBuf,
    command: Command,
}

impl Server {
    fn start(redis_url: Option<&str>) -> Self {
        Self::start_with(redis_url, None)
    }

    fn start_with(redis_url: Option<&str>, database_url: Option<&str>) -> Self {
        // One file per server: tests run in parallel, and each removes its own on drop.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db =
            std::env::temp_dir().join(format!("idempotent-example-{}-{n}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        let mut command = Command::new(support::example_binary("users_server"));
        command
            .env("PORT", "0")
            .env("DATABASE_PATH", &db)
            .env_remove("IDEMPOTENT_REDIS_URL")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = redis_url {
            command.env("IDEMPOTENT_REDIS_URL", url);
        }
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let (child, base) = Self::spawn(&mut command);
        Self {
            child,
            base,
            db,
            command,
        }
    }

    fn spawn(command: &mut Command) -> (Child, String) {
        let mut child = command.spawn().expect("start users_server");
        let stdout = child.stdout.take().expect("stdout");
        let base = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned));
        (child, base.expect("the server printed its address"))
    }

    /// `kill -9` of the server, then a new one on the same database.
    fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base) = Self::spawn(&mut self.command);
        self.child = child;
        self.base = base;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.db);
    }
}

/// The README's three curl lines, then `GET /users`: one row, whatever the retries.
async fn readme_walkthrough(server: &Server) {
    let client = reqwest::Client::new();
    let url = format!("{}/users", server.base);
    let post = |body: &'static str| {
        client
            .post(&url)
            .header("Idempotency-Key", "9f1c")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ada = r#"{"name":"Ada","email":"ada@example.com"}"#;
    let first = post(ada).await.expect("first call");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.expect("body");
    assert_eq!(
        first_body,
        r#"{"id":1,"name":"Ada","email":"ada@example.com"}"#
    );

    let retry = post(ada).await.expect("retry");
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), first_body);

    let other = post(r#"{"name":"Eve","email":"eve@example.com"}"#)
        .await
        .expect("other");
    assert_eq!(other.status(), 422);
    assert_eq!(other.headers()["content-type"], "application/problem+json");

    let rows: Vec<serde_json::Value> = client
        .get(&url)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.len(), 1, "exactly one row: {rows:?}");
}

#[tokio::test]
async fn users_server_inserts_one_row_per_key_on_sqlite_in_one_transaction() {
    let server = Server::start(None);
    readme_walkthrough(&server).await;
}

#[tokio::test]
async fn users_server_inserts_one_row_per_key_on_postgres() {
    let postgres = PostgresServer::start();
    let server = Server::start_with(None, Some(&postgres.url()));
    readme_walkthrough(&server).await;
}

#[tokio::test]
async fn users_server_inserts_one_row_per_key_on_valkey() {
    let redis = RedisServer::start();
    let server = Server::start(Some(&redis.url()));
    readme_walkthrough(&server).await;
    let keys: i64 = redis::cmd("DBSIZE")
        .query(&mut redis.client())
        .expect("DBSIZE");
    assert_eq!(keys, 1, "the idempotency record lives in Redis");
}

/// The proof of exactly once across a crash: 200 sign-ups in flight, `kill -9` of the server
/// mid-request, a new server on the same database, every key retried until it answers —
/// exactly 200 rows, each key's one row. (A request cut off mid-handler committed nothing; its
/// key is held until its lease, 5 s in the example, lapses, then it runs once.)
#[tokio::test]
async fn users_server_killed_mid_request_keeps_exactly_one_row_per_key() {
    const KEYS: usize = 200;
    let mut server = Server::start(None);
    let client = reqwest::Client::new();
    let sign_up = |base: String, i: usize| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/users"))
                .header("Idempotency-Key", format!("crash-{i}"))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"name":"user {i}","email":"u{i}@example.com"}}"#
                ))
                .send()
                .await
        }
    };
    let in_flight: Vec<_> = (0..KEYS)
        .map(|i| tokio::spawn(sign_up(server.base.clone(), i)))
        .collect();
    // Let some finish and some be mid-request, then crash.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    server.crash_and_restart();
    let mut cut_off = 0;
    for handle in in_flight {
        if !matches!(handle.await, Ok(Ok(ref r)) if r.status() == 201) {
            cut_off += 1;
        }
    }
    assert!(
        cut_off > 0,
        "the crash cut no request off: nothing was tested"
    );
    let mut ids = std::collections::HashSet::new();
    for i in 0..KEYS {
        let mut answered = None;
        for _ in 0..100 {
            let response = sign_up(server.base.clone(), i).await.expect("request");
            match response.status().as_u16() {
                201 => {
                    let user: serde_json::Value = response.json().await.expect("json");
                    answered = user["id"].as_i64();
                    break;
                }
                409 => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                other => panic!("key crash-{i}: status {other}"),
            }
        }
        ids.insert(answered.expect("every key answered"));
    }
    assert_eq!(ids.len(), KEYS, "each key has its own row");
    let rows: Vec<serde_json::Value> = client
        .get(format!("{}/users", server.base))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.len(), KEYS, "exactly one row per key after the crash");
}
