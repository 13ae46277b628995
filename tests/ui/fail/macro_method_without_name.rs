use idempotent_runtime::idempotent;

struct Service;

impl Service {
    #[idempotent(key = key)]
    async fn pay(&self, key: &str) -> Result<u32, idempotent_runtime::Error> {
        let _ = key;
        Ok(1)
    }
}

fn main() {}
