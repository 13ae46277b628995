//! `ValkeyStore` under faults of a real `redis-server` this file starts itself: killed, paused,
//! restarted, scripts flushed, garbage records, a full server, a lost reply — each with an
//! exact count of side effects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{
    CachedResponse, Error, ExistingEntry, FencingToken, IdempotencyStore, Idempotent, InsertResult,
    storage_key,
};
use idempotent_tests::redis_server::RedisServer;
use idempotent_tests::valkey::{charge, connect, entry, key, raw_record};
use tokio::sync::Notify;

#[tokio::test]
async fn killed_server_fails_closed_and_works_again_after_restart() {
    let mut server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(500)).await;
    let count = AtomicUsize::new(0);
    let k = key("killed");

    server.kill();
    let err = charge(&store, &k, &count)
        .await
        .expect_err("server is gone");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 0, "ran without a claim");

    server.restart();
    // The failed call's claim may have been sent when the connection died: the runtime
    // re-sends it in the background until the server answers, then releases it — a retry in
    // between sees it in flight (409, retryable).
    let mut first = None;
    for _ in 0..50 {
        match charge(&store, &k, &count).await {
            Ok(v) => {
                first = Some(v);
                break;
            }
            Err(Error::StoreUnavailable(_) | Error::InFlight) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        first.as_deref(),
        Some("charge #1"),
        "reconnected after restart"
    );
    assert_eq!(
        charge(&store, &k, &count).await.ok().as_deref(),
        Some("charge #1")
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn killed_mid_request_the_handler_result_is_returned_and_the_retry_is_protected() {
    let mut server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(300)).await;
    let count = Arc::new(AtomicUsize::new(0));
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let k = key("mid-request");
    let first = tokio::spawn({
        let (store, k, count, started, go) = (
            store.clone(),
            k.clone(),
            count.clone(),
            started.clone(),
            go.clone(),
        );
        async move {
            Idempotent::new("valkey.mid")
                .store(&store)
                .run(&k, &1, async {
                    started.notify_one();
                    go.notified().await;
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Error>("done".to_owned())
                })
                .await
        }
    });
    started.notified().await;
    server.kill();
    go.notify_one();
    // The side effect happened; completion cannot be stored, so the caller still gets the
    // result (it is true) and the claim is lost with the server's memory.
    assert_eq!(first.await.expect("task").ok().as_deref(), Some("done"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // While the server is down nothing runs.
    let err = Idempotent::new("valkey.mid")
        .store(&store)
        .run(&k, &1, async {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>("again".to_owned())
        })
        .await
        .expect_err("down");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "ran without a claim");
}

#[tokio::test]
async fn paused_server_past_the_lease_the_winner_result_stands() {
    let server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_secs(10)).await;
    let k = key("paused");
    let lease = Duration::from_millis(600);
    let count = Arc::new(AtomicUsize::new(0));
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let zombie = tokio::spawn({
        let (store, k, count, started, go) = (
            store.clone(),
            k.clone(),
            count.clone(),
            started.clone(),
            go.clone(),
        );
        async move {
            Idempotent::new("valkey.paused")
                .store(&store)
                .lease(lease)
                .run(&k, &1, async {
                    count.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    go.notified().await;
                    Ok::<_, Error>("zombie".to_owned())
                })
                .await
        }
    });
    started.notified().await;
    server.pause();
    tokio::time::sleep(lease * 3).await; // the server's clock runs on: the lease lapses
    server.resume();
    tokio::time::sleep(Duration::from_millis(100)).await; // the queued renewal is refused

    let winner = Idempotent::new("valkey.paused")
        .store(&store)
        .lease(lease)
        .run(&k, &1, async {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>("winner".to_owned())
        })
        .await;
    assert_eq!(
        winner.ok().as_deref(),
        Some("winner"),
        "the retry reclaimed"
    );
    go.notify_one();
    // The zombie's completion is stale; its caller gets the winner's stored answer, the same
    // as every other retry (contract point 8).
    let late = zombie.await.expect("task");
    assert_eq!(late.ok().as_deref(), Some("winner"));
    // Documented: a holder paused past its lease runs twice; fencing keeps the winner's result.
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let replay = Idempotent::new("valkey.paused")
        .store(&store)
        .run(&k, &1, async { Ok::<_, Error>("never".to_owned()) })
        .await;
    assert_eq!(replay.ok().as_deref(), Some("winner"));
}

#[tokio::test]
async fn script_flush_is_survived_by_reloading() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let count = AtomicUsize::new(0);
    assert_eq!(
        charge(&store, &key("flush-1"), &count)
            .await
            .ok()
            .as_deref(),
        Some("charge #1")
    );
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.client())
        .expect("SCRIPT FLUSH");
    assert_eq!(
        charge(&store, &key("flush-2"), &count)
            .await
            .ok()
            .as_deref(),
        Some("charge #2")
    );
    assert_eq!(
        charge(&store, &key("flush-1"), &count)
            .await
            .ok()
            .as_deref(),
        Some("charge #1")
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_records_are_corrupt_never_absent() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let mut client = server.client();
    let cases: [(&str, Vec<u8>); 6] = [
        ("unknown version", raw_record(9, b'c', &[])),
        ("unknown state", raw_record(2, b'z', &[])),
        ("truncated header", raw_record(2, b'p', &[])[..20].to_vec()),
        ("truncated response", raw_record(2, b'c', &[0, 200, 0])),
        ("trailing bytes", raw_record(2, b'p', b"junk")),
        ("not ours at all", b"hello world".to_vec()),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let k = key(&format!("garbage-{i}"));
        let record = store.record_key(&k);
        let () = redis::cmd("SET")
            .arg(&record)
            .arg(bytes.as_slice())
            .query(&mut client)
            .expect("SET garbage");
        let claim = store.try_insert(&k, entry(1)).await;
        assert!(
            matches!(claim, Err(Error::Corrupt(_))),
            "{what}: claim gave {claim:?}"
        );
        let get = store.get(&k).await;
        assert!(
            matches!(get, Err(Error::Corrupt(_))),
            "{what}: get gave {get:?}"
        );
        let made_up = FencingToken::new(1, 0);
        for (step, result) in [
            ("release", store.release(&k, made_up).await),
            (
                "renew",
                store.renew(&k, made_up, Duration::from_secs(1)).await,
            ),
        ] {
            assert!(
                matches!(result, Err(Error::Corrupt(_) | Error::StaleFencingToken)),
                "{what}: {step} gave {result:?}"
            );
        }
        let after: Vec<u8> = redis::cmd("GET")
            .arg(&record)
            .query(&mut client)
            .expect("GET");
        assert_eq!(&after, bytes, "{what}: the record was changed");
    }
    // Another kind of value under the record key.
    let k = key("garbage-hash");
    let _: i64 = redis::cmd("HSET")
        .arg(store.record_key(&k))
        .arg("field")
        .arg("value")
        .query(&mut client)
        .expect("HSET");
    let claim = store.try_insert(&k, entry(1)).await;
    assert!(
        matches!(&claim, Err(Error::Corrupt(m)) if m.contains("another kind of value")),
        "{claim:?}"
    );
    // Through the protocol (which stores under the hashed operation, scope and key): the
    // handler never runs on a corrupt record.
    let stored = storage_key("valkey.charge", None, &k);
    let () = redis::cmd("SET")
        .arg(store.record_key(&stored))
        .arg(raw_record(7, b'c', &[]))
        .query(&mut client)
        .expect("SET");
    let count = AtomicUsize::new(0);
    let err = charge(&store, &k, &count).await.expect_err("corrupt");
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_full_server_refuses_cleanly_and_writes_nothing_half() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let mut client = server.client();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut client)
        .expect("INFO");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 512 * 1024)
        .query(&mut client)
        .expect("CONFIG SET maxmemory");
    let body = vec![b'x'; 16 * 1024];
    let mut refused = None;
    for i in 0..1_000 {
        let k = key(&format!("full-{i}"));
        let claim = match store.try_insert(&k, entry(1)).await {
            Ok(InsertResult::Claimed {
                fencing_token,
                entry,
            }) => (fencing_token, entry),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                refused = Some(("claim", k, e));
                break;
            }
        };
        let (token, claimed) = claim;
        if let Err(e) = store
            .complete(
                &k,
                claimed.complete(CachedResponse::new(200, body.clone())),
                token,
            )
            .await
        {
            refused = Some(("complete", k, e));
            break;
        }
    }
    let (step, k, err) = refused.expect("the server filled up");
    assert!(
        matches!(&err, Error::StoreUnavailable(_)) && err.to_string().contains("out of memory"),
        "{step}: {err}"
    );
    // Nothing half-written: a refused claim left no record; a refused completion left the claim.
    match (step, store.get(&k).await.expect("get")) {
        ("claim", None) | ("complete", Some(ExistingEntry::Processing(_))) => {}
        (step, other) => panic!("{step} refused but the record is {other:?}"),
    }
}

/// Contract point 4: the claim's reply is lost (the server paused past the response timeout),
/// so the caller gets 503 — and the claim lands when the server resumes. The runtime knows the
/// nonce it sent: it re-sends that claim and releases it, so a retry one second after the
/// server resumes runs, once.
#[tokio::test]
async fn a_claim_whose_reply_was_lost_does_not_block_the_key() {
    let server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(300)).await;
    let count = AtomicUsize::new(0);
    // The scripts are loaded (a claim sent before that would come back NOSCRIPT, no ghost).
    let warm = charge(&store, &key("warm-up"), &count).await;
    assert_eq!(warm.ok().as_deref(), Some("charge #1"));
    let k = key("ghost");
    server.pause();
    let lost = charge(&store, &k, &count).await.expect_err("no reply");
    assert!(
        lost.may_have_applied(),
        "a timeout may have applied: {lost:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the server stays paused a while
    server.resume();
    // The runtime re-sends the lost claim in the background and releases it: the retry runs
    // within a few seconds, not after the claim's 30 s lease.
    let mut retry = Err(Error::InFlight);
    for _ in 0..50 {
        retry = charge(&store, &k, &count).await;
        if !matches!(retry, Err(Error::InFlight | Error::StoreUnavailable(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(retry.ok().as_deref(), Some("charge #2"), "the retry ran");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// What an operator does to a record while its handler runs.
#[derive(Debug, Clone, Copy)]
enum Operator {
    Del,
    Pexpire,
}

/// An operator's `DEL` or `PEXPIRE key 1` while the holder is mid-handler. With `winner`, a
/// retry then reclaims the key, runs and completes: the holder's completion is stale and its
/// caller gets the winner's answer. Without, the holder's completion finds no claim of its own
/// and is refused: `StaleFencingToken` (409 in HTTP mode), nothing stored.
async fn operator_mid_handler(op: Operator, winner: bool) {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let k = key(&format!("operator-{op:?}-{winner}"));
    let count = Arc::new(AtomicUsize::new(0));
    let gate = idempotent_tests::gate::Gate::new();
    let run = |label: &'static str| {
        let (store, k, count, gate) = (store.clone(), k.clone(), count.clone(), gate.clone());
        async move {
            Idempotent::new("valkey.operator")
                .store(&store)
                .run(&k, &1, async {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        gate.pass().await;
                    }
                    Ok::<_, Error>(format!("{label} #{n}"))
                })
                .await
        }
    };
    let holder = tokio::spawn(run("holder"));
    gate.entered().await;
    let record = store.record_key(&storage_key("valkey.operator", None, &k));
    let mut client = server.client();
    let touched: i64 = match op {
        Operator::Del => redis::cmd("DEL").arg(&record).query(&mut client),
        Operator::Pexpire => redis::cmd("PEXPIRE").arg(&record).arg(1).query(&mut client),
    }
    .expect("operator command");
    assert_eq!(touched, 1, "{op:?}: the holder's claim was there");
    for _ in 0..1000 {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&record)
            .query(&mut client)
            .expect("EXISTS");
        if exists == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    if winner {
        assert_eq!(
            run("winner").await.ok().as_deref(),
            Some("winner #2"),
            "{op:?}: the reclaim runs"
        );
    }
    gate.open();
    let late = holder.await.expect("holder task");
    if winner {
        assert_eq!(
            late.ok().as_deref(),
            Some("winner #2"),
            "{op:?}: the holder's caller gets the winner's answer"
        );
        assert_eq!(count.load(Ordering::SeqCst), 2);
    } else {
        assert!(
            matches!(late, Err(Error::StaleFencingToken)),
            "{op:?}: {late:?}"
        );
        assert_eq!(
            store
                .get(&storage_key("valkey.operator", None, &k))
                .await
                .expect("get"),
            None,
            "{op:?}: the holder's refused completion stored nothing"
        );
    }
}

#[tokio::test]
async fn an_operator_deleting_a_claim_mid_handler_leaves_one_answer() {
    for op in [Operator::Del, Operator::Pexpire] {
        for winner in [true, false] {
            operator_mid_handler(op, winner).await;
        }
    }
}
