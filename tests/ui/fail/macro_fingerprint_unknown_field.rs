use idempotent_runtime::idempotent;

#[derive(serde::Serialize)]
struct Order {
    amount: u64,
}

#[idempotent(key = key, fingerprint(order.amout))]
async fn charge(key: &str, order: Order) -> Result<u64, idempotent_runtime::Error> {
    let _ = key;
    Ok(order.amount)
}

fn main() {}
