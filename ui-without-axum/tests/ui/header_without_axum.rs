use idempotent_runtime::idempotent;

#[idempotent(key = header)]
async fn charge(amount: u64) -> Result<u64, idempotent_runtime::Error> {
    Ok(amount)
}

fn main() {}
