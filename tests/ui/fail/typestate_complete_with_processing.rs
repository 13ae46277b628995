use idempotent_runtime::{
    Fingerprint, IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, MemoryStore,
};

async fn run(store: MemoryStore, key: IdempotencyKey) -> Result<(), idempotent_runtime::Error> {
    if let InsertResult::Claimed { fencing_token, entry } =
        store.try_insert(&key, IdempotencyEntry::new(Fingerprint::from_u128(1))).await?
    {
        // Forgot to call `entry.complete(response)`: a Processing entry is not a result.
        store.complete(&key, entry, fencing_token).await?;
    }
    Ok(())
}

fn main() {
    drop(run);
}
