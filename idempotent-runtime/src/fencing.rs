//! [`FencingToken`]: proof of holding the current claim on a key.

use std::cmp::Ordering;
use std::fmt;

/// Issued by the store with each successful claim.
///
/// It carries a random 128-bit **nonce** and a per-key **counter**:
/// - equality is by both: a completion, renewal or release must present the current claim's
///   token, else the store answers [`Error::StaleFencingToken`](crate::Error::StaleFencingToken)
///   and changes nothing. Because the nonce is random, this holds even after a store lost its
///   data and a counter restarted;
/// - order is by the counter, which strictly increases across successive claims of one key, so
///   a handler can pass it to a downstream system to fence its writes (reject any write that
///   carries a smaller counter than one already seen).
///
/// ```
/// use idempotent_runtime::FencingToken;
///
/// let first = FencingToken::generate(1);
/// let second = FencingToken::generate(2);
/// assert!(first < second);
/// assert_ne!(FencingToken::generate(1), first, "another claim, another nonce");
/// assert_eq!(FencingToken::new(first.counter(), first.nonce()), first);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FencingToken {
    counter: u64,
    nonce: [u8; 16],
}

impl FencingToken {
    /// A token from its parts, for stores that read one back.
    #[must_use]
    pub const fn new(counter: u64, nonce: u128) -> Self {
        Self {
            counter,
            nonce: nonce.to_le_bytes(),
        }
    }

    /// A token for a new claim with `counter` and a fresh random nonce.
    #[must_use]
    pub fn generate(counter: u64) -> Self {
        Self::new(counter, rand::random())
    }

    /// The per-key counter: strictly increasing across successive claims of a key.
    #[must_use]
    pub const fn counter(&self) -> u64 {
        self.counter
    }

    /// The random claim nonce.
    #[must_use]
    pub const fn nonce(&self) -> u128 {
        u128::from_le_bytes(self.nonce)
    }
}

impl PartialOrd for FencingToken {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered by counter; the nonce only breaks ties so the order agrees with `Eq`.
impl Ord for FencingToken {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.counter, self.nonce()).cmp(&(other.counter, other.nonce()))
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:032x}", self.counter, self.nonce())
    }
}

impl fmt::Debug for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencingToken({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_needs_the_nonce_and_order_follows_the_counter() {
        let a = FencingToken::new(5, 1);
        assert_eq!(a, FencingToken::new(5, 1));
        assert_ne!(a, FencingToken::new(5, 2));
        assert_ne!(a, FencingToken::new(6, 1));
        assert!(FencingToken::new(5, u128::MAX) < FencingToken::new(6, 0));
        assert_eq!(a.counter(), 5);
        assert_eq!(a.nonce(), 1);
    }

    #[test]
    fn generated_nonces_differ() {
        let tokens: std::collections::HashSet<u128> = (0..1000)
            .map(|_| FencingToken::generate(1).nonce())
            .collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn display_shows_counter_and_nonce() {
        assert_eq!(
            FencingToken::new(7, 0xab).to_string(),
            format!("7-{:032x}", 0xab)
        );
        assert_eq!(
            format!("{:?}", FencingToken::new(7, 0)),
            format!("FencingToken(7-{:032x})", 0)
        );
    }
}
