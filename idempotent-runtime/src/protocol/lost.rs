//! Claims whose reply was lost: resolved in the background so they never block their key for
//! a lease.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::observe::{self, Severity};
use crate::{Error, IdempotencyEntry, IdempotencyStore, InsertResult, Processing, StoredKey};

/// How many lost claims this process resolves at once; beyond it they lapse with their lease.
const MAX_LOST_CLAIMS: usize = 1024;
static LOST_CLAIMS: AtomicUsize = AtomicUsize::new(0);

/// A claim whose reply was lost may have landed: every retry would then see it in flight for
/// a whole lease. The runtime knows the claim it sent, so, in the background, it re-sends that
/// very claim (same nonce) until the store answers, and releases what comes back as its own.
/// Bounded: it gives up after one lease (the claim has lapsed by then anyway), and at most
/// [`MAX_LOST_CLAIMS`] run at once. Needs a store handle that outlives the call
/// ([`IdempotencyStore::detached`]) and a tokio runtime; without either the claim lapses.
pub(super) fn release_lost_claim(
    operation: &str,
    store: &dyn IdempotencyStore,
    key: &StoredKey,
    entry: IdempotencyEntry<Processing>,
) {
    let (Some(store), Ok(runtime)) = (store.detached(), tokio::runtime::Handle::try_current())
    else {
        return;
    };
    if LOST_CLAIMS.fetch_add(1, Ordering::Relaxed) >= MAX_LOST_CLAIMS {
        LOST_CLAIMS.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let (operation, key) = (operation.to_owned(), key.clone());
    runtime.spawn(async move {
        resolve_lost_claim(&operation, &*store, &key, entry).await;
        LOST_CLAIMS.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn resolve_lost_claim(
    operation: &str,
    store: &dyn IdempotencyStore,
    key: &StoredKey,
    entry: IdempotencyEntry<Processing>,
) {
    let give_up = Instant::now() + entry.lease();
    let mut pause = Duration::from_millis(50);
    while Instant::now() < give_up {
        match store.try_insert(key, entry.clone()).await {
            Ok(InsertResult::Claimed { fencing_token, .. }) => {
                // Ours: the claim landed (or the key was free). Give it up.
                while Instant::now() < give_up {
                    match store.release(key, fencing_token).await {
                        Err(Error::StoreUnavailable(_)) => tokio::time::sleep(pause).await,
                        Err(e) => {
                            let why =
                                "a lost claim could not be released; it lapses with its lease";
                            observe::event(Severity::Warn, operation, key.as_str(), why, &e);
                            return;
                        }
                        Ok(()) => return,
                    }
                }
                return;
            }
            // Another request's record: nothing of ours to clean up.
            Ok(InsertResult::Exists(_)) => return,
            Err(Error::StoreUnavailable(_)) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(e) => {
                let why = "a lost claim could not be resolved; it lapses with its lease";
                observe::event(Severity::Warn, operation, key.as_str(), why, &e);
                return;
            }
        }
    }
}
