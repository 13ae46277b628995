//! Helpers of the Valkey tests: keys, entries, a connected store, a counted charge through the
//! protocol, raw records in the store's format.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{
    Error, Fingerprint, IdempotencyEntry, IdempotencyKey, Idempotent, ValkeyStore,
};

use crate::redis_server::RedisServer;

/// A key for a test, which must be valid.
#[must_use]
pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("valid test key")
}

/// An entry with fingerprint `n`, a 5 s lease and a 1 min TTL.
pub fn entry(n: u128) -> IdempotencyEntry {
    IdempotencyEntry::new(Fingerprint::from_u128(n))
        .with_lease(Duration::from_secs(5))
        .with_ttl(Duration::from_mins(1))
}

/// A store on `server` whose calls time out after `timeout`.
pub async fn connect_with_timeout(server: &RedisServer, timeout: Duration) -> ValkeyStore {
    ValkeyStore::builder()
        .url(server.url())
        .timeout(timeout)
        .connect()
        .await
        .expect("connect to the test server")
}

/// A store on `server` with the defaults.
pub async fn connect(server: &RedisServer) -> ValkeyStore {
    ValkeyStore::connect(&server.url())
        .await
        .expect("connect to the test server")
}

/// Runs `op` once for `k` through the protocol, counting executions in `count`.
///
/// # Errors
/// The protocol's.
pub async fn charge(
    store: &ValkeyStore,
    k: &IdempotencyKey,
    count: &AtomicUsize,
) -> Result<String, Error> {
    Idempotent::new("valkey.charge")
        .store(store)
        .run(k, &"order-1", async {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, Error>(format!("charge #{n}"))
        })
        .await
}

/// A record in the store's format (claim.lua): version, state, fingerprint, nonce, counter,
/// rest.
#[must_use]
pub fn raw_record(version: u8, state: u8, rest: &[u8]) -> Vec<u8> {
    let mut bytes = vec![version, state];
    bytes.extend_from_slice(&[0; 16]); // fingerprint
    bytes.extend_from_slice(&[0xab; 16]); // nonce
    bytes.extend_from_slice(&1000u64.to_be_bytes()); // counter
    bytes.extend_from_slice(rest);
    bytes
}
