//! What operators see: the `tracing` span of every execution (printed by `tracing-subscriber`
//! when it closes) and a `metrics` snapshot after a first call, a retry, a conflict, a client
//! bug and a malformed key.
//!
//! `cargo run --example observability`

use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::{Error, MemoryStore, idempotent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing_subscriber::fmt::format::FmtSpan;

#[idempotent(key = key, store = store, name = "orders.charge", concurrent = reject)]
async fn charge(store: &MemoryStore, key: &str, cents: u64) -> Result<String, Error> {
    tokio::time::sleep(Duration::from_millis(20)).await; // the bank
    Ok(format!("charged {cents} cents"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_span_events(FmtSpan::CLOSE)
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_target(false)
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;

    let store = Arc::new(MemoryStore::new());
    println!("-- first call, then a retry with the same key");
    charge(&store, "order-7", 1000).await?;
    charge(&store, "order-7", 1000).await?;
    println!("-- two requests with one key at once");
    let (a, b) = tokio::join!(
        charge(&store, "order-8", 500),
        charge(&store, "order-8", 500)
    );
    println!("   {:?} / {:?}", a.map(|_| "ok"), b.map(|_| "ok"));
    println!("-- the key of order 7 reused for another amount, and a malformed key");
    println!("   {:?}", charge(&store, "order-7", 9999).await.err());
    println!(
        "   {:?}",
        charge(&store, "bad key", 1)
            .await
            .err()
            .map(|e| e.to_string())
    );

    println!("\n-- metrics snapshot");
    let mut lines: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(xs) => format!("{} samples", xs.len()),
            };
            format!("{}{{{}}} {value}", key.name(), labels.join(","))
        })
        .collect();
    lines.sort();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
