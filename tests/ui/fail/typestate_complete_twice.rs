use idempotent_runtime::{CachedResponse, Fingerprint, IdempotencyEntry};

fn main() {
    let done = IdempotencyEntry::new(Fingerprint::from_u128(1)).complete(CachedResponse::from("a"));
    let _again = done.complete(CachedResponse::from("b"));
}
