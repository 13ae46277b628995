use idempotent_runtime::{idempotent, Error};

#[idempotent(key = key, crate = "not a path")]
async fn charge(key: &str) -> Result<u64, Error> {
    Ok(1)
}

fn main() {}
