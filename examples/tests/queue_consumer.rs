//! The `queue_consumer` example against a real `nats-server -js` (started here on a free port):
//! duplicates published with one key, a redelivery that meets its first delivery still
//! running (ack wait lapsed), a key reused for another order (dead-lettered), and a consumer
//! killed mid-handler and restarted — every order billed exactly once, counted as rows; and the
//! same with the records in Valkey (at most once: exactly once without a crash).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use idempotent_tests::nats_server::NatsServer;
use idempotent_tests::redis_server::RedisServer;
use idempotent_tests::sql::TempDir;
use idempotent_tests::wait::poll_until;

/// A running consumer, its output collected line by line; killed on drop.
struct Consumer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Consumer {
    fn start(nats: &NatsServer, db: &Path) -> Self {
        Self::start_with(nats, db, None)
    }

    fn start_with(nats: &NatsServer, db: &Path, redis_url: Option<&str>) -> Self {
        let mut command = Command::new(support::example_binary("queue_consumer"));
        command.env_remove("IDEMPOTENT_REDIS_URL");
        if let Some(url) = redis_url {
            command.env("IDEMPOTENT_REDIS_URL", url);
        }
        let mut child = command
            .env("NATS_URL", nats.url())
            .env("DATABASE_PATH", db)
            .env("ACK_WAIT_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start queue_consumer");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            }
        });
        let consumer = Self { child, lines };
        consumer.wait_for_line("consuming ORDERS");
        consumer
    }

    fn said(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(needle))
    }

    fn wait_for_line(&self, needle: &str) {
        let what = format!("the consumer prints {needle:?}");
        wait_until(&what, || self.said(needle), || self.output());
    }

    fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded: 30 s — the broker's and the lease's clocks are real) until `done`.
fn wait_until(what: &str, done: impl Fn() -> bool, context: impl Fn() -> String) {
    poll_until(
        what,
        Duration::from_secs(30),
        || done().then_some(()),
        context,
    );
}

async fn publish(nats: &NatsServer, key: &str, order: &serde_json::Value) {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let jetstream = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Idempotency-Key", key);
    jetstream
        .publish_with_headers("orders.new", headers, order.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("the stream stored it");
}

/// Rows per order id.
async fn rows(db: &Path) -> Vec<(String, i64)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the database");
    let rows = sqlx::query_as(
        "SELECT order_id, count(*) FROM charges GROUP BY order_id ORDER BY order_id",
    )
    .fetch_all(&pool)
    .await
    .expect("count");
    pool.close().await;
    rows
}

/// Ten orders each published twice, one slower than the ack wait, one key reused for another
/// order: each order is one row, each duplicate replayed, the reused key dead-lettered.
async fn duplicates_and_redeliveries(redis_url: Option<&str>) {
    let nats = NatsServer::start();
    let dir = TempDir::new("queue");
    let db = dir.path().join("billing.db");
    let consumer = Consumer::start_with(&nats, &db, redis_url);
    for i in 0..10 {
        let order = serde_json::json!({ "order_id": format!("o{i}"), "cents": 100 + i });
        publish(&nats, &format!("k{i}"), &order).await;
        publish(&nats, &format!("k{i}"), &order).await; // the publisher's retry
    }
    // Slower than the ack wait: the broker redelivers it.
    let slow = serde_json::json!({ "order_id": "o-slow", "cents": 7, "hold_ms": 1800 });
    publish(&nats, "k-slow", &slow).await;
    // A key reused for another order: never billed, dead-lettered at once.
    publish(
        &nats,
        "k0",
        &serde_json::json!({ "order_id": "o-other", "cents": 1 }),
    )
    .await;

    consumer.wait_for_line("dead-letter k0: the key was used for another order");
    for i in 0..10 {
        // Each order billed once; its duplicate (in flight, then redelivered, or after) replayed.
        consumer.wait_for_line(&format!("charged k{i} "));
        consumer.wait_for_line(&format!("replayed k{i} "));
    }
    consumer.wait_for_line("charged k-slow");
    // Published once: a second delivery is the broker's, after the ack wait lapsed. It met
    // the first still running (in flight: nak, and the first's ack ends it) or came after
    // (replayed); either way it did not bill again.
    wait_until(
        "a redelivery of k-slow",
        || consumer.said("in flight k-slow") || consumer.said("replayed k-slow"),
        || consumer.output(),
    );
    let mut expected: Vec<(String, i64)> = (0..10)
        .map(|i| (format!("o{i}"), 1))
        .chain([("o-slow".to_owned(), 1)])
        .collect();
    expected.sort();
    assert_eq!(rows(&db).await, expected, "{}", consumer.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_redeliveries_bill_each_order_once() {
    duplicates_and_redeliveries(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_valkey_duplicates_and_redeliveries_bill_each_order_once() {
    let redis = RedisServer::start();
    duplicates_and_redeliveries(Some(&redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_handler_and_restarted_bills_once() {
    let nats = NatsServer::start();
    let dir = TempDir::new("queue-kill");
    let db = dir.path().join("billing.db");
    let first = Consumer::start(&nats, &db);
    let order = serde_json::json!({ "order_id": "o-crash", "cents": 42, "hold_ms": 1500 });
    publish(&nats, "k-crash", &order).await;
    first.wait_for_line("holding k-crash");
    drop(first); // kill -9 mid-handler: its INSERT was never committed
    assert_eq!(
        rows(&db).await,
        vec![],
        "the killed consumer committed nothing"
    );

    // The broker redelivers after the ack wait; the dead claim lapses after its 3 s lease.
    let second = Consumer::start(&nats, &db);
    second.wait_for_line("charged k-crash");
    assert_eq!(
        rows(&db).await,
        vec![("o-crash".to_owned(), 1)],
        "{}",
        second.output()
    );
}
