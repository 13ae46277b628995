use idempotent_runtime::idempotent;

#[idempotent(key = key, skip(db))]
async fn charge(key: &str, amount: u64) -> Result<u64, idempotent_runtime::Error> {
    let _ = key;
    Ok(amount)
}

fn main() {}
