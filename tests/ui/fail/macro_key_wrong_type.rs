use idempotent_runtime::idempotent;

#[idempotent(key = id)]
async fn charge(id: u64) -> Result<u64, idempotent_runtime::Error> {
    Ok(id)
}

fn main() {}
