use idempotent_runtime::{idempotent, Error};

struct Config {
    ttl_seconds: u64,
}

#[idempotent(key = key, ttl = config.ttl_seconds, skip(config))]
async fn charge(config: &Config, key: &str) -> Result<u64, Error> {
    Ok(config.ttl_seconds)
}

fn main() {}
