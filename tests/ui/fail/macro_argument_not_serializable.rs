use idempotent_runtime::idempotent;

struct Connection;

#[idempotent(key = key)]
async fn charge(key: &str, db: Connection) -> Result<u64, idempotent_runtime::Error> {
    let _ = (key, db);
    Ok(1)
}

fn main() {}
