use idempotent_runtime::{idempotent, Error};

#[idempotent(key = key, transaction = tx)]
async fn charge(key: &str) -> Result<u64, Error> {
    let _ = (key, tx);
    Ok(1)
}

fn main() {}
