use idempotent_runtime::{idempotent, Error, MemoryStore};

#[idempotent(key = key, store = store, transaction = tx)]
async fn charge(store: &MemoryStore, key: &str) -> Result<u64, Error> {
    let _ = tx;
    Ok(1)
}

fn main() {}
