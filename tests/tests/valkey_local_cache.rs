//! `ValkeyStore`'s opt-in local cache of completed records, against a real `redis-server`:
//! replays answered from process memory (the server paused), bounded, never past the record's
//! remaining TTL, and blind — as documented — to an operator's `DEL`.

use std::time::Duration;

use idempotent_runtime::{
    CachedResponse, Error, ExistingEntry, Fingerprint, IdempotencyEntry, IdempotencyKey,
    IdempotencyStore, InsertResult, ValkeyStore,
};
use idempotent_tests::redis_server::RedisServer;
use idempotent_tests::valkey::{connect, entry, key};
use idempotent_tests::wait::poll_until;

async fn cached(server: &RedisServer, entries: usize) -> ValkeyStore {
    ValkeyStore::builder()
        .url(server.url())
        .timeout(Duration::from_millis(300))
        .local_cache(entries, 1 << 20)
        .connect()
        .await
        .expect("connect")
}

/// Claims and completes `k` with `body`, kept for `ttl`.
async fn complete(store: &ValkeyStore, k: &IdempotencyKey, body: &'static str, ttl: Duration) {
    let claim = IdempotencyEntry::new(Fingerprint::from_u128(1)).with_ttl(ttl);
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry,
    }) = store.try_insert(k, claim).await
    else {
        panic!("claimed");
    };
    let done = entry.complete(CachedResponse::from(body));
    store
        .complete(k, done, fencing_token)
        .await
        .expect("completed");
}

/// What a claim of `k` finds: the replayed body, `None` when it claimed, or the error.
async fn replay(store: &ValkeyStore, k: &IdempotencyKey) -> Result<Option<String>, Error> {
    match store.try_insert(k, entry(1)).await? {
        InsertResult::Exists(ExistingEntry::Completed(done)) => Ok(done
            .response()
            .map(|r| String::from_utf8_lossy(r.body()).into_owned())),
        InsertResult::Exists(ExistingEntry::Processing(_)) => panic!("in flight"),
        InsertResult::Claimed { .. } => Ok(None),
    }
}

#[tokio::test]
async fn replays_are_answered_from_memory_while_the_server_is_paused() {
    let server = RedisServer::start();
    let store = cached(&server, 100).await;
    let elsewhere = connect(&server).await; // another instance, no cache
    let (mine, theirs, fresh) = (key("mine"), key("theirs"), key("fresh"));
    complete(&store, &mine, "done here", Duration::from_mins(1)).await;
    complete(&elsewhere, &theirs, "done there", Duration::from_mins(1)).await;
    assert_eq!(
        replay(&store, &theirs).await.expect("read"),
        Some("done there".into())
    );

    server.pause();
    let paused = (
        replay(&store, &mine).await,
        replay(&store, &theirs).await,
        replay(&store, &fresh).await,
    );
    server.resume();
    assert_eq!(
        paused.0.expect("cached: completed here"),
        Some("done here".into())
    );
    assert_eq!(
        paused.1.expect("cached: read once"),
        Some("done there".into())
    );
    assert!(
        matches!(paused.2, Err(Error::StoreUnavailable(_))),
        "a claim always asks the server: {:?}",
        paused.2
    );
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let server = RedisServer::start();
    let store = cached(&server, 1).await;
    let (first, second) = (key("first"), key("second"));
    complete(&store, &first, "1", Duration::from_mins(1)).await;
    complete(&store, &second, "2", Duration::from_mins(1)).await; // evicts the first

    server.pause();
    let (evicted, kept) = (replay(&store, &first).await, replay(&store, &second).await);
    server.resume();
    assert_eq!(kept.expect("cached"), Some("2".into()));
    assert!(
        matches!(evicted, Err(Error::StoreUnavailable(_))),
        "went to the server: {evicted:?}"
    );
}

#[tokio::test]
async fn a_cached_record_ends_with_the_servers() {
    let server = RedisServer::start();
    let store = cached(&server, 100).await;
    let elsewhere = connect(&server).await;
    let k = key("short");
    complete(&elsewhere, &k, "brief", Duration::from_millis(1500)).await;
    assert_eq!(
        replay(&store, &k).await.expect("read"),
        Some("brief".into())
    );
    let record_key = store.record_key(&k);
    let mut redis = server.client();
    poll_until(
        "the server's record expired",
        Duration::from_secs(10),
        || {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&record_key)
                .query(&mut redis)
                .unwrap_or(true);
            (!exists).then_some(())
        },
        String::new,
    );
    assert_eq!(
        replay(&store, &k).await.expect("claims"),
        None,
        "once the server's record expired, the cache does not replay it"
    );
}

#[tokio::test]
async fn an_operators_delete_is_not_seen_by_the_cache_as_documented() {
    let server = RedisServer::start();
    let store = cached(&server, 100).await;
    let uncached = connect(&server).await;
    let k = key("deleted");
    complete(&store, &k, "kept", Duration::from_mins(1)).await;
    let _: i64 = redis::cmd("DEL")
        .arg(store.record_key(&k))
        .query(&mut server.client())
        .expect("DEL");
    assert_eq!(
        replay(&store, &k).await.expect("cached"),
        Some("kept".into())
    );
    assert_eq!(
        replay(&uncached, &k).await.expect("claims"),
        None,
        "the server's view"
    );
}
