use idempotent_runtime::{idempotent, Error};

#[idempotent(key = key, skip(note, note))]
async fn charge(key: &str, note: &str) -> Result<u64, Error> {
    let _ = (key, note);
    Ok(1)
}

fn main() {}
