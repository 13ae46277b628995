//! A queue consumer: orders from NATS JetStream, each billed **exactly once** — the charge row
//! and the idempotency record commit in one SQLite transaction — however often the broker
//! redelivers a message (its ack wait lapsed, the consumer crashed before it acked) or a
//! publisher sends it twice.
//!
//! The pattern:
//! - **The key is the publisher's**, carried in the `Idempotency-Key` header: a retry of the
//!   same order has the same key whatever its stream sequence (a broker's redelivery keeps
//!   the sequence; a publisher's retry does not).
//! - **Ack after the result is stored** (the idempotent call returned): a crash before the ack
//!   is a redelivery, which replays.
//! - **In flight** (another delivery of the same key still runs): `Nak` with a delay, so it
//!   comes back after that one finished, and replays.
//! - **A key reused with another order** (422 in HTTP terms) never succeeds however often it is
//!   retried: `Term` it (dead-letter) and say so — never a redelivery loop. So are messages
//!   without a key or that are not an order.
//! - **Store unavailable**: `Nak` with a delay; nothing ran.
//!
//! `NATS_URL` (default `nats://127.0.0.1:4222`), `DATABASE_PATH` (default `billing.db`),
//! `ACK_WAIT_MS` (default 30000). Prints one line per delivery.
//!
//! With `IDEMPOTENT_REDIS_URL`, the idempotency records live in Valkey/Redis (`ValkeyStore`)
//! and the charge row is written on its own: the same pattern, at most once — a consumer
//! killed after its side effect and before the result is stored leaves the key to lapse, and
//! the redelivery runs it again.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use futures::StreamExt;
use idempotent_runtime::{Error, Execution, SqliteStore, ValkeyStore, idempotent, with_execution};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    #[serde(rename = "order_id")]
    id: String,
    cents: i64,
    /// How long billing takes (for the demonstration of a slow handler and a crash).
    #[serde(default)]
    hold_ms: u64,
}

#[idempotent(key = key, store = store, transaction = tx, name = "billing.charge", ttl = "7d", lease = "3s")]
async fn charge(store: &SqliteStore, key: &str, order: Order) -> Result<i64, Error> {
    let row: i64 =
        sqlx::query_scalar("INSERT INTO charges (order_id, cents) VALUES (?, ?) RETURNING id")
            .bind(&order.id)
            .bind(order.cents)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    hold(key, row, &order).await; // not committed until the call returns
    Ok(row)
}

/// The charge row alone (its idempotency record lives in Valkey): at most once.
#[idempotent(key = key, store = store, skip(pool), name = "billing.charge", ttl = "7d", lease = "3s")]
async fn charge_with_valkey(
    store: &ValkeyStore,
    pool: &sqlx::SqlitePool,
    key: &str,
    order: Order,
) -> Result<i64, Error> {
    let row: i64 =
        sqlx::query_scalar("INSERT INTO charges (order_id, cents) VALUES (?, ?) RETURNING id")
            .bind(&order.id)
            .bind(order.cents)
            .fetch_one(pool)
            .await
            .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    hold(key, row, &order).await;
    Ok(row)
}

/// The demonstration's slow billing, after the row is written.
async fn hold(key: &str, row: i64, order: &Order) {
    if order.hold_ms > 0 {
        println!("holding {key} (row {row})");
        tokio::time::sleep(Duration::from_millis(order.hold_ms)).await;
    }
}

/// Where billing keeps its idempotency records.
#[derive(Clone)]
enum Billing {
    /// With the charge rows, in one transaction: exactly once.
    Sqlite(SqliteStore),
    /// In Valkey, the rows in SQLite: at most once.
    Valkey(ValkeyStore, sqlx::SqlitePool),
}

impl Billing {
    async fn charge(&self, key: &str, order: Order) -> Result<i64, Error> {
        match self {
            Self::Sqlite(store) => charge(store, key, order).await,
            Self::Valkey(store, pool) => charge_with_valkey(store, pool, key, order).await,
        }
    }
}

/// One delivery: bill it once, then ack, nak or dead-letter it.
async fn handle(billing: Billing, message: jetstream::Message) {
    let key = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Idempotency-Key"))
        .map(|v| v.as_str().to_owned());
    let Some(key) = key else {
        println!("dead-letter: a message without an Idempotency-Key");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let order: Order = match serde_json::from_slice(&message.payload) {
        Ok(order) => order,
        Err(e) => {
            println!("dead-letter {key}: not an order ({e})");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let (billed, execution) = with_execution(billing.charge(&key, order)).await;
    let (reply, line) = match billed {
        Ok(row) if execution == Some(Execution::Replayed) => {
            (AckKind::Ack, format!("replayed {key} row {row}"))
        }
        Ok(row) => (AckKind::Ack, format!("charged {key} row {row}")),
        Err(Error::InFlight) => (
            AckKind::Nak(Some(Duration::from_millis(500))),
            format!("in flight {key}: later"),
        ),
        Err(e @ Error::StoreUnavailable(_)) => (
            AckKind::Nak(Some(Duration::from_secs(1))),
            format!("store unavailable for {key}: later ({e})"),
        ),
        Err(Error::FingerprintMismatch) => (
            AckKind::Term,
            format!("dead-letter {key}: the key was used for another order"),
        ),
        Err(e) => (AckKind::Term, format!("dead-letter {key}: {e}")),
    };
    println!("{line}");
    if let Err(e) = message.ack_with(reply).await {
        eprintln!("could not answer the broker for {key}: {e}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let path = std::env::var("DATABASE_PATH").unwrap_or_else(|_| "billing.db".to_owned());
    let ack_wait: u64 = std::env::var("ACK_WAIT_MS").map_or(Ok(30_000), |v| v.parse())?;

    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = sqlx::SqlitePool::connect_with(options).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL, cents INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let billing = if let Ok(url) = std::env::var("IDEMPOTENT_REDIS_URL") {
        Billing::Valkey(ValkeyStore::connect(&url).await?, pool)
    } else {
        let store = SqliteStore::new(pool);
        store.migrate().await?;
        Billing::Sqlite(store)
    };

    let jetstream = jetstream::new(async_nats::connect(&url).await?);
    let orders = jetstream
        .get_or_create_stream(stream::Config {
            name: "ORDERS".to_owned(),
            subjects: vec!["orders.>".to_owned()],
            ..Default::default()
        })
        .await?;
    let consumer = orders
        .get_or_create_consumer(
            "billing",
            pull::Config {
                durable_name: Some("billing".to_owned()),
                ack_wait: Duration::from_millis(ack_wait),
                ..Default::default()
            },
        )
        .await?;
    let mut deliveries = consumer.messages().await?;
    println!("consuming ORDERS from {url}");
    while let Some(delivery) = deliveries.next().await {
        match delivery {
            // Concurrently: a redelivery may meet its first delivery still running.
            Ok(message) => drop(tokio::spawn(handle(billing.clone(), message))),
            Err(e) => eprintln!("delivery failed: {e}"),
        }
    }
    Ok(())
}
