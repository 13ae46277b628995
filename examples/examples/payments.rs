//! Charging orders through a fake payment gateway, retried by a flaky client.
//!
//! The network loses replies: the server charged the card, but the client never heard back,
//! so it retries with the same idempotency key. `#[idempotent]` makes every order charged
//! exactly once however often the client retries, and tells apart the client bugs (one key
//! reused for another payment) and double clicks (two requests at once).
//!
//! `cargo run --example payments`

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use idempotent_runtime::{Error, IdempotencyKey, MemoryStore, current_claim, idempotent};
use serde::{Deserialize, Serialize};

/// What the client asks for.
#[derive(Debug, Clone, Serialize)]
struct ChargeRequest {
    order: u64,
    cents: u64,
}

/// What the server answers, stored and replayed to retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Receipt {
    charge_id: String,
    order: u64,
    cents: u64,
    /// The claim's fencing token: the gateway could reject writes from an older claim.
    fence: u64,
}

/// The payment gateway: every call moves money, so it counts them.
#[derive(Default)]
struct Gateway {
    charges: AtomicUsize,
    next_id: AtomicU64,
}

impl Gateway {
    async fn charge(&self, order: u64, cents: u64) -> String {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await; // the bank is slow
        self.charges.fetch_add(1, Ordering::SeqCst);
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        format!("ch_{id:04}_order{order}_{cents}c")
    }
}

/// The server's handler: runs at most once per key; retries get the stored receipt.
#[idempotent(key = key, store = store, skip(gateway), name = "payments.charge", ttl = "24h")]
async fn charge_order(
    store: &MemoryStore,
    gateway: &Gateway,
    key: &IdempotencyKey,
    request: ChargeRequest,
) -> Result<Receipt, Error> {
    let fence = current_claim().map_or(0, |claim| claim.fencing_token().counter());
    let charge_id = gateway.charge(request.order, request.cents).await;
    Ok(Receipt {
        charge_id,
        order: request.order,
        cents: request.cents,
        fence,
    })
}

/// A deterministic coin: the network loses a reply when it comes up heads.
struct Network(u64);

impl Network {
    fn loses_reply(&mut self) -> bool {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 33).is_multiple_of(2)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store = MemoryStore::new();
    let gateway = Gateway::default();
    let mut network = Network(7);

    println!("== a flaky client pays 5 orders; the network loses about half the replies ==");
    let mut attempts = 0;
    for order in 1..=5 {
        let key = IdempotencyKey::default(); // one key per payment, reused by its retries
        let request = ChargeRequest {
            order,
            cents: 1_000 * order,
        };
        for attempt in 1.. {
            attempts += 1;
            let receipt = charge_order(&store, &gateway, &key, request.clone()).await?;
            if network.loses_reply() {
                println!("order {order} attempt {attempt}: reply lost, retrying with key {key}");
                continue;
            }
            println!("order {order} attempt {attempt}: got {receipt:?}");
            break;
        }
    }
    println!(
        "{attempts} attempts, {} charges at the gateway (one per order)\n",
        gateway.charges.load(Ordering::SeqCst)
    );

    println!("== a double click: two requests with one key at the same moment ==");
    let key = IdempotencyKey::default();
    let request = ChargeRequest {
        order: 6,
        cents: 600,
    };
    let (a, b) = tokio::join!(
        charge_order(&store, &gateway, &key, request.clone()),
        charge_order(&store, &gateway, &key, request.clone()),
    );
    for result in [a, b] {
        match result {
            Ok(receipt) => println!("  charged: {}", receipt.charge_id),
            Err(e) => println!("  refused: {e}"),
        }
    }
    let replay = charge_order(&store, &gateway, &key, request).await?;
    println!("  the retry after both: replayed {}\n", replay.charge_id);

    println!("== a client bug: the key of order 6 reused for another amount ==");
    match charge_order(
        &store,
        &gateway,
        &key,
        ChargeRequest {
            order: 6,
            cents: 9_999,
        },
    )
    .await
    {
        Ok(receipt) => println!("  charged {receipt:?} (this must not happen)"),
        Err(e) => println!("  refused: {e}"),
    }

    let charges = gateway.charges.load(Ordering::SeqCst);
    println!("\n6 orders, {charges} charges at the gateway");
    assert_eq!(charges, 6, "every order is charged exactly once");
    Ok(())
}
