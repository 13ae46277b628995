//! The runtime API on the embedded in-memory store: a credential is issued once per key, a
//! retry gets the stored credential, and a retry with another request is refused.
//!
//! `cargo run --example quickstart`

use std::sync::atomic::{AtomicUsize, Ordering};

use idempotent_runtime::{
    CachedResponse, DefaultFingerprintStrategy, Error, ExistingEntry, FingerprintStrategy,
    IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, MemoryStore,
};

/// The side effect: issuing a credential. Counts how often it really ran.
static ISSUED: AtomicUsize = AtomicUsize::new(0);

async fn issue_credential(subject: &str) -> String {
    tokio::task::yield_now().await; // stands for a call to a signing service
    let n = ISSUED.fetch_add(1, Ordering::SeqCst) + 1;
    format!("VerifiableCredential #{n} for {subject}")
}

/// What a server would do for one request carrying `key`.
async fn handle(store: &MemoryStore, key: &IdempotencyKey, subject: &str) -> Result<String, Error> {
    let fingerprint =
        DefaultFingerprintStrategy.compute("POST /credentials/issue", subject.as_bytes());
    match store
        .try_insert(key, IdempotencyEntry::new(fingerprint))
        .await?
    {
        InsertResult::Claimed {
            fencing_token,
            entry,
        } => {
            let credential = issue_credential(subject).await;
            let response = CachedResponse::from(credential.clone());
            store
                .complete(key, entry.complete(response), fencing_token)
                .await?;
            Ok(format!("executed: {credential}"))
        }
        InsertResult::Exists(existing) if existing.fingerprint() != fingerprint => {
            Err(Error::FingerprintMismatch)
        }
        InsertResult::Exists(ExistingEntry::Completed(done)) => {
            let body = done
                .response()
                .map(|r| String::from_utf8_lossy(r.body()).into_owned());
            Ok(format!(
                "replayed: {}",
                body.unwrap_or_else(|| "(done, not replayable)".into())
            ))
        }
        InsertResult::Exists(ExistingEntry::Processing(_)) => Err(Error::InFlight),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let store = MemoryStore::new();
    let key = IdempotencyKey::default();
    println!("idempotency key {key}");
    println!(
        "first call        -> {}",
        handle(&store, &key, "did:example:alice").await?
    );
    println!(
        "retry, same key   -> {}",
        handle(&store, &key, "did:example:alice").await?
    );
    match handle(&store, &key, "did:example:mallory").await {
        Err(e) => println!("other request     -> refused: {e}"),
        Ok(unexpected) => println!("other request     -> {unexpected} (unexpected)"),
    }
    println!("credentials issued: {}", ISSUED.load(Ordering::SeqCst));
    Ok(())
}
