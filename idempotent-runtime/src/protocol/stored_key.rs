//! [`storage_key`]: the key a record is stored under, never a client's key.

use sha2::{Digest, Sha256};

use crate::{IdempotencyKey, StoredKey};

/// The key a record is stored under: SHA-256 over the length-prefixed (version, operation,
/// scope, client key), as 64 hex digits. Fixed length, no user bytes: no principal's key can
/// meet another's, and no client can pick a Redis Cluster hash tag. Operators find a customer's
/// request in the logs by its first 16 digits (the `key` of spans and events).
///
/// ```
/// use idempotent_runtime::{storage_key, IdempotencyKey};
///
/// let key = IdempotencyKey::new("k")?;
/// let alice = storage_key("orders.pay", Some("alice"), &key);
/// let bob = storage_key("orders.pay", Some("bob"), &key);
/// assert_ne!(alice, bob);
/// assert_eq!(alice.as_str().len(), 64);
/// # Ok::<(), idempotent_runtime::KeyError>(())
/// ```
#[must_use]
pub fn storage_key(operation: &str, scope: Option<&str>, key: &IdempotencyKey) -> StoredKey {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(b"idempotent.key.v1");
    part(operation.as_bytes());
    match scope {
        Some(scope) => {
            part(b"scoped");
            part(scope.as_bytes());
        }
        None => part(b"unscoped"),
    }
    part(key.as_str().as_bytes());
    StoredKey::from_digest(&hasher.finalize().into())
}
