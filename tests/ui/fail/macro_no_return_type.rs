use idempotent_runtime::idempotent;

#[idempotent(key = key)]
async fn charge(key: &str) {
    let _ = key;
}

fn main() {}
