//! `ValkeyStore` on the application's own connection — a `redis::Client`, a
//! `ConnectionManager` it also uses, a cluster connection — and with separate connect and
//! response timeouts, against real `redis-server`s this file starts.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use idempotent_runtime::{Error, ValkeyStore};
use idempotent_tests::redis_server::{RedisCluster, RedisServer};
use idempotent_tests::valkey::{charge, key};
use redis::AsyncCommands;

#[tokio::test]
async fn a_store_on_the_applications_connection_manager_shares_it() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).expect("client");
    let mut manager = redis::aio::ConnectionManager::new(client)
        .await
        .expect("the application's connection");
    let store = ValkeyStore::builder()
        .connection_manager(manager.clone())
        .connect()
        .await
        .expect("a store on it");
    let count = AtomicUsize::new(0);
    assert_eq!(
        charge(&store, &key("shared"), &count).await.ok().as_deref(),
        Some("charge #1")
    );
    assert_eq!(
        charge(&store, &key("shared"), &count).await.ok().as_deref(),
        Some("charge #1")
    );
    // The application goes on using the same connection for its own commands.
    let () = manager.set("app:key", "app value").await.expect("SET");
    let value: String = manager.get("app:key").await.expect("GET");
    assert_eq!(value, "app value");
}

#[tokio::test]
async fn a_store_from_a_client_and_from_a_cluster_connection() {
    let server = RedisServer::start();
    let store = ValkeyStore::builder()
        .client(redis::Client::open(server.url()).expect("client"))
        .connect()
        .await
        .expect("a store from a client");
    let count = AtomicUsize::new(0);
    assert_eq!(
        charge(&store, &key("client"), &count).await.ok().as_deref(),
        Some("charge #1")
    );

    let cluster = RedisCluster::shared();
    let connection = redis::cluster::ClusterClient::new(cluster.urls())
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("the application's cluster connection");
    let store = ValkeyStore::builder()
        .cluster_connection(connection)
        .connect()
        .await
        .expect("a store on it");
    let count = AtomicUsize::new(0);
    assert_eq!(
        charge(&store, &key("cluster"), &count)
            .await
            .ok()
            .as_deref(),
        Some("charge #1")
    );
    assert_eq!(
        charge(&store, &key("cluster"), &count)
            .await
            .ok()
            .as_deref(),
        Some("charge #1")
    );
}

/// The application's connection may have no response timeout at all: the store bounds its
/// own calls, so a paused server is a 503 after the store's timeout, never a hang.
#[tokio::test]
async fn the_store_bounds_calls_on_a_connection_without_a_response_timeout() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).expect("client");
    let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(None);
    let manager = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .expect("connection");
    let store = ValkeyStore::builder()
        .connection_manager(manager)
        .response_timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("store");
    let count = AtomicUsize::new(0);
    assert!(charge(&store, &key("warm"), &count).await.is_ok());
    server.pause();
    let paused = tokio::time::timeout(
        Duration::from_secs(10),
        charge(&store, &key("paused"), &count),
    )
    .await
    .expect("the store's own timeout answered");
    server.resume();
    assert!(
        matches!(&paused, Err(e @ Error::StoreUnavailable(_)) if e.may_have_applied()),
        "{paused:?}"
    );
}

#[tokio::test]
async fn connect_and_response_timeouts_are_separate() {
    let server = RedisServer::start();
    server.pause();
    let refused = ValkeyStore::builder()
        .url(server.url())
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_secs(30))
        .connect()
        .await;
    server.resume();
    let message = refused
        .expect_err("a paused server cannot be connected to")
        .to_string();
    assert!(message.contains("within 200ms"), "{message}");
    let store = ValkeyStore::builder()
        .url(server.url())
        .connect_timeout(Duration::from_secs(5))
        .response_timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("connect");
    assert!(format!("{store:?}").contains("300ms"), "{store:?}");
}

/// A call that never reached the server (the connection was refused) cannot have applied; one
/// whose connection died with it in flight may have.
#[tokio::test]
async fn a_refused_connection_is_not_a_lost_reply() {
    let mut server = RedisServer::start();
    let store = ValkeyStore::builder()
        .url(server.url())
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("connect");
    let count = AtomicUsize::new(0);
    assert!(charge(&store, &key("warm"), &count).await.is_ok());
    server.kill();
    let mut refused = None;
    for i in 0..20 {
        let failed = charge(&store, &key(&format!("down-{i}")), &count)
            .await
            .expect_err("the server is gone");
        assert!(matches!(failed, Error::StoreUnavailable(_)), "{failed:?}");
        if !failed.may_have_applied() {
            refused = Some(failed);
            break;
        }
    }
    assert!(
        refused.is_some(),
        "once the connection is refused, calls are known not to have applied"
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn the_builder_and_the_store_describe_themselves() {
    let builder = ValkeyStore::builder()
        .url("redis://127.0.0.1:1")
        .connect_timeout(Duration::from_millis(250))
        .response_timeout(Duration::from_millis(750));
    let shown = format!("{builder:?}");
    for part in [
        "connect_timeout: 250ms",
        "response_timeout: 750ms",
        "supplied: false",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
}

#[tokio::test]
async fn the_store_names_its_kind() {
    let server = RedisServer::start();
    let store = idempotent_tests::valkey::connect(&server).await;
    assert_eq!(idempotent_runtime::IdempotencyStore::kind(&store), "valkey");
}

/// Over RESP3 `CONFIG GET` answers with a map: the eviction check reads it as well.
#[tokio::test]
async fn the_eviction_check_reads_a_resp3_reply() {
    let safe = RedisServer::start();
    let store = ValkeyStore::connect(&format!("{}?protocol=resp3", safe.url()))
        .await
        .expect("a noeviction server over RESP3 is accepted");
    let count = AtomicUsize::new(0);
    assert_eq!(
        charge(&store, &key("resp3"), &count).await.ok().as_deref(),
        Some("charge #1")
    );
    let evicting = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let refused = ValkeyStore::connect(&format!("{}?protocol=resp3", evicting.url()))
        .await
        .expect_err("an evicting server is refused over RESP3 too")
        .to_string();
    assert!(
        refused.contains("maxmemory-policy is `allkeys-lru`"),
        "{refused}"
    );
}

/// The store's connections, as the server lists them: (id, last command) of every client
/// but the one asking.
fn store_connections(server: &RedisServer) -> Vec<(String, String)> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.client())
        .expect("CLIENT LIST");
    list.lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .map(|l| {
            let field = |name: &str| {
                l.split(' ')
                    .find_map(|kv| kv.strip_prefix(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("id="), field("cmd="))
        })
        .collect()
}

#[tokio::test]
async fn a_standalone_store_uses_its_connections_in_turn() {
    let server = RedisServer::start();
    let store = ValkeyStore::connect(&server.url()).await.expect("store");
    assert_eq!(
        store_connections(&server).len(),
        idempotent_runtime::store::valkey::DEFAULT_CONNECTIONS,
        "the default"
    );
    drop(store);
    let store = ValkeyStore::builder()
        .url(server.url())
        .connections(3)
        .connect()
        .await
        .expect("store");
    let count = AtomicUsize::new(0);
    // Each charge is two calls (claim, complete): calls go to the connections in turn.
    for n in 0..6 {
        let k = key(&format!("turn-{n}"));
        assert!(charge(&store, &k, &count).await.is_ok());
    }
    let connections = store_connections(&server);
    assert_eq!(connections.len(), 3, "{connections:?}");
    assert!(
        connections.iter().all(|(_, cmd)| cmd == "evalsha"),
        "every connection ran scripts: {connections:?}"
    );
    assert!(format!("{store:?}").contains("connections: 3"), "{store:?}");
}

#[tokio::test]
async fn zero_connections_is_refused_with_a_clear_error() {
    let err = ValkeyStore::builder()
        .url("redis://127.0.0.1:1")
        .connections(0)
        .connect()
        .await
        .expect_err("no connections");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("at least one connection"), "{err}");
}
