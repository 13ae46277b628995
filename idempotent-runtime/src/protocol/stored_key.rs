//! [`storage_key`]: the key a record is stored under, never a client's key.

use std::sync::OnceLock;

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
    finish(
        shared_parts(operation, scope.is_some()),
        scope,
        key.as_str(),
    )
}

/// The hash of the parts of a stored key that every call of one operation shares (the
/// version, the operation, whether it is scoped), made on first use: a call hashes only its
/// scope and key on top of a copy. With an operation name of 15 bytes or more that is a whole
/// SHA-256 block, one of the two a call would compress. The macro keeps one per
/// `#[idempotent]` fn, in a `static`, for that fn's one operation; HTTP options keep one for
/// theirs. A clone keeps what was hashed: it is for the same operation.
#[derive(Clone)]
pub struct KeyPrefix {
    /// Unscoped, scoped.
    states: [OnceLock<Sha256>; 2],
}

impl KeyPrefix {
    /// A prefix not yet hashed.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            states: [OnceLock::new(), OnceLock::new()],
        }
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPrefix").finish_non_exhaustive()
    }
}

/// The stored key of a client key given as text, checked by the rules of
/// [`IdempotencyKey::new`] without copying it into one; `prefix` is `operation`'s own.
pub(crate) fn checked_storage_key(
    prefix: &KeyPrefix,
    operation: &str,
    scope: Option<&str>,
    key: &str,
) -> Result<StoredKey, KeyError> {
    IdempotencyKey::validate(key.as_bytes())?;
    Ok(prefixed(prefix, operation, scope, key))
}

/// The stored key of a client key given as text (checked already) on `operation`'s own
/// `prefix`: [`storage_key`] without the `IdempotencyKey`.
pub(crate) fn prefixed(
    prefix: &KeyPrefix,
    operation: &str,
    scope: Option<&str>,
    key: &str,
) -> StoredKey {
    let shared = prefix.states[usize::from(scope.is_some())]
        .get_or_init(|| shared_parts(operation, scope.is_some()));
    finish(shared.clone(), scope, key)
}

fn part(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The version, the operation, and whether a scope follows.
fn shared_parts(operation: &str, scoped: bool) -> Sha256 {
    let mut hasher = Sha256::new();
    part(&mut hasher, b"idempotent.key.v1");
    part(&mut hasher, operation.as_bytes());
    let marker: &[u8] = if scoped { b"scoped" } else { b"unscoped" };
    part(&mut hasher, marker);
    hasher
}

/// The scope (when there is one) and the key, after the shared parts.
fn finish(mut hasher: Sha256, scope: Option<&str>, key: &str) -> StoredKey {
    if let Some(scope) = scope {
        part(&mut hasher, scope.as_bytes());
    }
    part(&mut hasher, key.as_bytes());
    StoredKey::from_digest(&hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::{KeyPrefix, checked_storage_key, storage_key};
    use crate::IdempotencyKey;

    /// A key hashed on top of its operation's prefix is the stored key `storage_key` gives,
    /// for operations shorter and longer than a SHA-256 block, scoped and not, with one prefix
    /// serving both and every call after the first.
    #[test]
    fn keys_hashed_on_a_prefix_are_the_stored_keys() {
        let keys = ["k", &"k".repeat(36), &"k".repeat(255)];
        let long_scope = "s".repeat(100);
        for operation in [
            "o",
            "orders.pay",
            "fifteen.bytes.o",
            &"o".repeat(23),
            &"o".repeat(200),
        ] {
            let prefix = KeyPrefix::new();
            for _ in 0..2 {
                for scope in [None, Some("alice"), Some(long_scope.as_str())] {
                    for key in keys {
                        let expected =
                            storage_key(operation, scope, &IdempotencyKey::new(key).expect("key"));
                        let hashed = checked_storage_key(&prefix, operation, scope, key);
                        assert_eq!(
                            hashed.as_ref().map(crate::StoredKey::as_str),
                            Ok(expected.as_str())
                        );
                    }
                }
            }
        }
        let invalid = checked_storage_key(&KeyPrefix::new(), "o", None, "a b");
        assert!(invalid.is_err());
    }

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
