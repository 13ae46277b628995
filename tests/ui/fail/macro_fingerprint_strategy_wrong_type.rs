use idempotent_runtime::{idempotent, Error};

#[idempotent(key = key, fingerprint_strategy = "sha256")]
async fn charge(key: &str, cents: u64) -> Result<u64, Error> {
    Ok(cents)
}

fn main() {}
