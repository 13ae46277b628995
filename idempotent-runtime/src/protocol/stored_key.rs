//! [`storage_key`]: the key a record is stored under, never a client's key.

use sha2::{Digest, Sha256};

use crate::{IdempotencyKey, KeyError, StoredKey};

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
    hash(operation, scope, key.as_str())
}

/// The stored key of a client key given as text, checked by the rules of
/// [`IdempotencyKey::new`] without copying it into one.
pub(crate) fn checked_storage_key(
    operation: &str,
    scope: Option<&str>,
    key: &str,
) -> Result<StoredKey, KeyError> {
    IdempotencyKey::validate(key.as_bytes())?;
    Ok(hash(operation, scope, key))
}

fn hash(operation: &str, scope: Option<&str>, key: &str) -> StoredKey {
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
    part(key.as_bytes());
    StoredKey::from_digest(&hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::storage_key;
    use crate::IdempotencyKey;

    /// The stored keys of v1, pinned: a change would orphan every stored record.
    #[test]
    fn stored_keys_are_unchanged() {
        let key = IdempotencyKey::new("order-42").expect("key");
        let long = IdempotencyKey::new(&"k".repeat(255)).expect("key");
        let cases = [
            (
                storage_key("orders.pay", None, &key),
                "f8c91d18b87e8c931b6f7da2a7964cfd966d43bd7d2d73b2e084d6f1601e07f1",
            ),
            (
                storage_key("orders.pay", Some("alice"), &key),
                "d1ee83cded33e3b281a9b06f0f4fda3147e8defc9493f693441ea4b489b89f55",
            ),
            (
                storage_key("orders.pay", Some("alice"), &long),
                "0d5bff884ca42f6b20c451cb331ab03c1aa1ae45d244cfb08a94e484ed9bafb8",
            ),
        ];
        for (stored, golden) in cases {
            assert_eq!(stored.as_str(), golden);
        }
    }
}
