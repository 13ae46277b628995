use idempotent_runtime::idempotent;

#[idempotent(key = key)]
async fn charge(key: &str) -> u64 {
    let _ = key;
    1
}

fn main() {}
