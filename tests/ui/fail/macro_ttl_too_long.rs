use idempotent_runtime::idempotent;

#[idempotent(key = key, ttl = "400d")]
async fn charge(key: &str) -> Result<u32, idempotent_runtime::Error> {
    let _ = key;
    Ok(1)
}

fn main() {}
