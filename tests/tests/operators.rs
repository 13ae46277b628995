//! Contract point 13, what operators see: with an ordinary `fmt` subscriber, store outages,
//! corrupt records, panics and stale completions are WARN and ERROR events with the operation
//! and the error — and never the client's key. Needs the runtime's `tracing` (feature
//! `observe` of this package).

use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::{
    Error, IdempotencyKey, IdempotencyStore, Idempotent, InsertResult, MemoryStore, storage_key,
};
use idempotent_tests::log::Log;

const SECRET: &str = "customer-secret-key-4711";

/// Contract point 13, the store: with an ordinary `fmt` subscriber a corrupt record is an
/// ERROR and an outage a WARN, each with the operation and the error's text — and the client's
/// key appears nowhere.
#[tokio::test]
async fn operators_see_corrupt_records_and_store_outages() {
    use idempotent_tests::redis_server::RedisServer;

    let (log, _guard) = Log::capture();
    let k = IdempotencyKey::new(SECRET).expect("key");
    let mut server = RedisServer::start();
    let valkey =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(300)).await;
    let () = redis::cmd("SET")
        .arg(valkey.record_key(&storage_key("ops.corrupt", None, &k)))
        .arg("garbage")
        .query(&mut server.client())
        .expect("SET");
    let corrupt = Idempotent::new("ops.corrupt")
        .store(&valkey)
        .run(&k, &1, async { Ok::<_, Error>(1) })
        .await;
    assert!(matches!(corrupt, Err(Error::Corrupt(_))), "{corrupt:?}");
    let lines = log.lines("ERROR", "stored idempotency record unreadable");
    assert_eq!(lines.len(), 1, "{}", log.text());
    assert!(
        lines[0].contains("ops.corrupt") && lines[0].contains("error="),
        "{lines:?}"
    );

    server.kill();
    let down = Idempotent::new("ops.down")
        .store(&valkey)
        .run(&k, &1, async { Ok::<_, Error>(1) })
        .await;
    assert!(matches!(down, Err(Error::StoreUnavailable(_))), "{down:?}");
    let lines = log.lines("WARN", "idempotency store unavailable");
    assert_eq!(lines.len(), 1, "{}", log.text());
    assert!(lines[0].contains("ops.down"), "{lines:?}");
    assert!(
        !log.text().contains(SECRET),
        "the client's key leaked: {}",
        log.text()
    );
}

/// Contract point 13, the handler: a panic is an ERROR, a stale completion (the holder's lease
/// lapsed on the store's clock and another request holds the key) a WARN.
#[tokio::test]
async fn operators_see_panics_and_stale_completions() {
    use idempotent_runtime::{IdempotencyEntry, ManualClock};

    let (log, _guard) = Log::capture();
    let k = IdempotencyKey::new(SECRET).expect("key");
    let store = MemoryStore::new();
    let panicked = Idempotent::new("ops.panic")
        .store(&store)
        .run(&k, &1, async {
            assert!(SECRET.is_empty(), "handler bug");
            Ok::<u32, Error>(1)
        })
        .await;
    assert!(
        matches!(panicked, Err(Error::HandlerPanicked)),
        "{panicked:?}"
    );
    let lines = log.lines("ERROR", "idempotent handler panicked");
    assert_eq!(lines.len(), 1, "{}", log.text());
    assert!(lines[0].contains("ops.panic"), "{lines:?}");

    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let (started, go) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let op = Idempotent::new("ops.stale").store(&store);
    let holder = op.run(&k, &1, {
        let (started, go) = (started.clone(), go.clone());
        async move {
            started.notify_one();
            go.notified().await;
            Ok::<u32, Error>(1)
        }
    });
    let taker = async {
        started.notified().await;
        clock.advance(Duration::from_mins(1));
        let fingerprint = op.fingerprint(&1).expect("fingerprint");
        let taken = store
            .try_insert(
                &storage_key("ops.stale", None, &k),
                IdempotencyEntry::new(fingerprint),
            )
            .await
            .expect("take over");
        assert!(matches!(taken, InsertResult::Claimed { .. }), "{taken:?}");
        go.notify_one();
    };
    let (late, ()) = tokio::join!(holder, taker);
    assert!(matches!(late, Err(Error::StaleFencingToken)), "{late:?}");
    let lines = log.lines("WARN", "the claim lapsed before its result was stored");
    assert_eq!(lines.len(), 1, "{}", log.text());
    assert!(lines[0].contains("ops.stale"), "{lines:?}");
    assert!(
        !log.text().contains(SECRET),
        "the client's key leaked: {}",
        log.text()
    );
}
