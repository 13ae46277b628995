#![deny(warnings, clippy::pedantic)]
//! Every option at once, shadowed prelude names, strict lints.

use idempotent_runtime::{Error, MemoryStore, idempotent};

#[allow(dead_code)]
type Result = ();
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Duration;

#[derive(serde::Serialize)]
struct Order {
    amount: u64,
    note: String,
}

struct State {
    store: MemoryStore,
}

/// Charges an order once per key.
#[idempotent(
    key = key,
    ttl = "24h",
    lease = "30s",
    store = state.store,
    fingerprint(order.amount),
    scope = tenant,
    name = "orders.charge",
    concurrent = wait("5s"),
    cache_errors,
)]
pub async fn charge(
    state: &State,
    tenant: &str,
    key: &str,
    order: Order,
    (a, b): (u8, u8),
) -> core::result::Result<u64, Failure> {
    let _ = (&order.note, a, b);
    Ok(order.amount)
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Failure(String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self(e.to_string())
    }
}

/// The default store, `skip`, generics.
#[idempotent(key = key, skip(extra))]
pub async fn generic<T: serde::Serialize + Send>(key: String, value: T, extra: T) -> core::result::Result<u8, Error> {
    let _ = (value, extra);
    Ok(1)
}

fn main() {
    let _ = (charge, generic::<u8>);
}
