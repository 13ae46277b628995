use idempotent_runtime::{idempotent, Error};

// A typo inside the body is rustc's own error, and the only one: the attribute does not parse
// the body.
#[idempotent(key = key)]
async fn charge(key: &str) -> Result<u64, Error> {
    let = 1;
    Ok(1)
}

fn main() {}
