//! `ValkeyStore` against real `redis-server` processes this file starts itself: the conformance
//! suite (standalone and a 3-master cluster), connect-time checks, and faults — kill, pause,
//! script flush, garbage records, a full server, invalid arguments — each with an exact count of
//! side effects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::conformance::Harness;
use idempotent_runtime::{
    Error, Fingerprint, IdempotencyEntry, IdempotencyStore, InsertResult, ValkeyStore, storage_key,
};
use idempotent_tests::redis_server::{RedisCluster, RedisServer};
use idempotent_tests::valkey::{charge, connect, entry, key, raw_record};

struct Server {
    store: ValkeyStore,
}

impl Harness for Server {
    type Store = ValkeyStore;

    fn store(&self) -> &ValkeyStore {
        &self.store
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

impl Server {
    async fn standalone() -> Self {
        Self {
            store: connect(RedisServer::shared()).await,
        }
    }

    async fn cluster() -> Self {
        Self {
            store: ValkeyStore::builder()
                .cluster(RedisCluster::shared().urls())
                .connect()
                .await
                .expect("connect to the test cluster"),
        }
    }
}

/// One test per conformance check, on one server shared by this file's tests.
mod conformance_standalone {
    idempotent_runtime::conformance_tests!(super::Server, super::Server::standalone().await);
}

/// One test per conformance check, on a 3-master cluster shared by this file's tests.
mod conformance_cluster {
    idempotent_runtime::conformance_tests!(super::Server, super::Server::cluster().await);
}

#[tokio::test]
async fn records_spread_over_the_cluster_masters() {
    let store = Server::cluster().await.store;
    let mut records = Vec::new();
    for i in 0..60 {
        let k = key(&format!("spread-{i}-{}", rand_suffix()));
        let claimed = store.try_insert(&k, entry(1)).await.expect("claim");
        assert!(matches!(claimed, InsertResult::Claimed { .. }));
        records.push(store.record_key(&k));
    }
    for node in RedisCluster::shared().nodes() {
        let mut client = node.client();
        // A node answers EXISTS for its own slots and MOVED for the others'.
        let held = records
            .iter()
            .filter(|r| redis::cmd("EXISTS").arg(r).query::<i64>(&mut client) == Ok(1))
            .count();
        assert!(held > 0, "node {} holds none of the records", node.port());
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
}

#[tokio::test]
async fn refuses_an_evicting_server_unless_told_otherwise() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let err = ValkeyStore::connect(&server.url())
        .await
        .expect_err("an evicting server is refused");
    let message = err.to_string();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(
        message.contains("maxmemory-policy is `allkeys-lru`") && message.contains("noeviction"),
        "{message}"
    );
    let store = ValkeyStore::builder()
        .url(server.url())
        .allow_eviction()
        .connect()
        .await
        .expect("opted out");
    assert!(store.get(&key("k")).await.expect("get").is_none());
}

#[tokio::test]
async fn authenticates_from_the_url() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}", server.port());
    let store = ValkeyStore::connect(&url).await.expect("right password");
    let claimed = store
        .try_insert(&key("auth"), entry(1))
        .await
        .expect("claim");
    assert!(matches!(claimed, InsertResult::Claimed { .. }));

    let wrong = format!("redis://:nope@127.0.0.1:{}", server.port());
    let err = ValkeyStore::connect(&wrong)
        .await
        .expect_err("wrong password");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    let none = ValkeyStore::connect(&server.url())
        .await
        .expect_err("no password");
    assert!(matches!(none, Error::StoreUnavailable(_)), "{none:?}");
}

#[tokio::test]
async fn connects_over_tls_with_a_private_ca() {
    let (server, tls_port, ca) = RedisServer::start_tls();
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let store = ValkeyStore::builder()
        .url(&url)
        .tls_root_certificate(ca)
        .connect()
        .await
        .expect("TLS with the test CA");
    let count = AtomicUsize::new(0);
    let k = key("tls");
    assert_eq!(
        charge(&store, &k, &count).await.ok().as_deref(),
        Some("charge #1")
    );
    assert_eq!(
        charge(&store, &k, &count).await.ok().as_deref(),
        Some("charge #1")
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // The record is on the server the plain port also reaches.
    let stored = storage_key("valkey.charge", None, &k);
    let exists: bool = redis::cmd("EXISTS")
        .arg(store.record_key(&stored))
        .query(&mut server.client())
        .expect("EXISTS");
    assert!(exists);
    // Without the CA the server's certificate is not trusted.
    let err = ValkeyStore::builder()
        .url(&url)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn unreachable_server_fails_to_connect_in_time() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let err = ValkeyStore::builder()
        .url(url)
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    let invalid = ValkeyStore::connect("http://not-redis")
        .await
        .expect_err("bad URL");
    assert!(invalid.to_string().contains("invalid URL"), "{invalid}");
}

/// A writing script as the store builds it: the shared prelude, then its body.
macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("../../idempotent-runtime/src/store/valkey/prelude.lua"),
            include_str!(concat!("../../idempotent-runtime/src/store/valkey/", $file))
        )
    };
}

/// Runs `script` on the key `k` with `args`, which it must refuse: the error it answers.
fn refused(server: &RedisServer, script: &str, args: &[&[u8]]) -> String {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(1).arg("k");
    for a in args {
        command.arg(*a);
    }
    let result: redis::RedisResult<redis::Value> = command.query(&mut server.client());
    match result {
        Err(e) => e.to_string(),
        Ok(v) => panic!("accepted {args:?}: {v:?}"),
    }
}

/// The server holds no key: `what` wrote nothing.
fn assert_no_keys(client: &mut redis::Connection, what: &str) {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(client).expect("KEYS");
    assert!(keys.is_empty(), "{what} wrote {keys:?}");
}

#[tokio::test]
async fn scripts_validate_their_arguments_before_writing() {
    let server = RedisServer::start();
    let mut client = server.client();
    let (claim, renew, complete) = (
        script!("claim.lua"),
        script!("renew.lua"),
        script!("complete.lua"),
    );
    let eval = |script: &str, args: &[&[u8]]| refused(&server, script, args);
    // The claim is sent the record's 32-byte id, fingerprint and nonce (the script writes
    // the version and state before it and the counter after).
    let processing = raw_record(2, b'p', &[]);
    let claim_id = |record: &[u8]| record[2..34].to_vec();
    let completed = raw_record(2, b'c', &[0, 200, 0, 0, 0, 0, 0, 0]);
    // The claim checks a lease's upper bound itself and leaves the rest to its SET, which
    // refuses before it writes (a cheaper check than converting the lease in Lua).
    for (bad, claim_says) in [
        ("0", "invalid expire time"),
        ("-5", "invalid expire time"),
        ("1.5", "not an integer"),
        ("abc", "not an integer"),
        ("31536000001", "invalid lease"),
        ("", "not an integer"),
    ] {
        let b = bad.as_bytes();
        let message = eval(claim, &[&claim_id(&processing), b]);
        assert!(message.contains(claim_says), "{bad:?}: {message}");
        let message = eval(renew, &[&[0; 24], b]);
        assert!(message.contains("invalid lease"), "{message}");
        let message = eval(complete, &[b, &completed]);
        assert!(message.contains("invalid ttl"), "{message}");
    }
    // Ids of the wrong size are refused too.
    let message = eval(claim, &[&processing[..34], b"1000"]);
    assert!(
        message.contains("invalid record"),
        "a header with version and state: {message}"
    );
    let message = eval(claim, &[&processing, b"1000"]);
    assert!(
        message.contains("invalid record"),
        "a whole header, counter and all: {message}"
    );
    let message = eval(claim, &[&processing[2..33], b"1000"]);
    assert!(message.contains("invalid record"), "a short id: {message}");
    let message = eval(complete, &[b"1000", &processing]);
    assert!(
        message.contains("invalid record"),
        "a processing record: {message}"
    );
    assert_no_keys(&mut client, "invalid calls");
    // And through the store API: refused before the round trip.
    let store = connect(&server).await;
    let zero = IdempotencyEntry::new(Fingerprint::from_u128(1)).with_ttl(Duration::ZERO);
    let err = store
        .try_insert(&key("zero"), zero)
        .await
        .expect_err("zero ttl");
    assert!(matches!(err, Error::InvalidDuration { .. }), "{err:?}");
}

/// Durations Lua reads as numbers but that are not plain digits: a script hands a checked
/// duration on as it was sent, and the server refuses these itself — nothing is written.
#[tokio::test]
async fn durations_that_are_not_plain_digits_are_refused_by_the_server() {
    let server = RedisServer::start();
    let mut client = server.client();
    let (claim, complete) = (script!("claim.lua"), script!("complete.lua"));
    let processing = raw_record(2, b'p', &[]);
    let completed = raw_record(2, b'c', &[0, 200, 0, 0, 0, 0, 0, 0]);
    // A completion gets that far only for the live claim: one is stored for it, and stays.
    for odd in ["1e3", " 1000", "0x10"] {
        let b = odd.as_bytes();
        let message = refused(&server, claim, &[&processing[2..34], b]);
        assert!(message.contains("not an integer"), "{odd:?}: {message}");
        let () = redis::cmd("SET")
            .arg("k")
            .arg(&processing)
            .query(&mut client)
            .expect("SET");
        let message = refused(&server, complete, &[b, &completed]);
        assert!(message.contains("not an integer"), "{odd:?}: {message}");
        let kept: Vec<u8> = redis::cmd("GETDEL")
            .arg("k")
            .query(&mut client)
            .expect("GETDEL");
        assert_eq!(kept, processing, "{odd:?}: the claim is as it was");
    }
    assert_no_keys(&mut client, "refused calls");
}

#[tokio::test]
async fn leases_run_on_the_server_clock() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let k = key("server-clock");
    let short = || {
        IdempotencyEntry::new(Fingerprint::from_u128(1))
            .with_lease(Duration::from_millis(200))
            .with_ttl(Duration::from_mins(1))
    };
    let InsertResult::Claimed {
        fencing_token: first,
        ..
    } = store.try_insert(&k, short()).await.expect("claim")
    else {
        panic!("not claimed");
    };
    let ttl: i64 = redis::cmd("PTTL")
        .arg(store.record_key(&k))
        .query(&mut server.client())
        .expect("PTTL");
    assert!(
        (1..=200).contains(&ttl),
        "a claim lives for its lease: {ttl}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let InsertResult::Claimed {
        fencing_token: second,
        ..
    } = store.try_insert(&k, short()).await.expect("reclaim")
    else {
        panic!("lapsed claim not reclaimed");
    };
    assert!(second.counter() > first.counter());
    assert_ne!(second.nonce(), first.nonce());
}
