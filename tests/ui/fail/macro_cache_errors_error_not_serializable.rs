use idempotent_runtime::idempotent;

#[derive(Debug)]
struct Declined;

impl From<idempotent_runtime::Error> for Declined {
    fn from(_: idempotent_runtime::Error) -> Self {
        Self
    }
}

#[idempotent(key = key, cache_errors)]
async fn charge(key: &str) -> Result<u64, Declined> {
    let _ = key;
    Err(Declined)
}

fn main() {}
