use idempotent_runtime::idempotent;

struct Receipt;

#[idempotent(key = key)]
async fn charge(key: &str) -> Result<Receipt, idempotent_runtime::Error> {
    let _ = key;
    Ok(Receipt)
}

fn main() {}
