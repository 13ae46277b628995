//! [`Key`]: a key as a shard keeps it — a key of up to 38 bytes (a UUID's 36) in the table's
//! slot, not in an allocation of its own; a longer one on the heap.
//!
//! One string has one form, so a key matches a lookup's [`Probe`] exactly when their strings
//! are equal. A probe is made without allocating, and the table hashes probes only: the slot
//! keeps its key's hash.
//!
//! The protocol's stored keys (64 hex digits) stay on the heap: kept as the 32 bytes they
//! spell they cost 56 B less per record, but checking and decoding the digits on a claim and
//! spelling them out again on every lookup cost the attribute's first call ~70 ns and a
//! replay ~30 ns (`--bench macro_overhead`), more than the allocation they save.

use crate::IdempotencyKey;

/// Keys of up to this many bytes are kept as they are: with their length and the variant's tag
/// that is 40 bytes, the size of the key variant that points to the heap.
const INLINE: usize = 38;

/// A key of at most [`INLINE`] bytes; zeros after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

/// A key as a table keeps it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) enum Key {
    /// Up to [`INLINE`] bytes, as they are.
    Inline(Inline),
    /// A longer key.
    Heap(Box<str>),
}

/// A key being looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Probe<'a> {
    /// Up to [`INLINE`] bytes, as they are kept.
    Inline(Inline),
    /// A longer key, as its text.
    Text(&'a str),
}

impl<'a> Probe<'a> {
    pub(super) fn new(key: &'a IdempotencyKey) -> Self {
        let text = key.as_str();
        let raw = text.as_bytes();
        let mut bytes = [0; INLINE];
        match (bytes.get_mut(..raw.len()), u8::try_from(raw.len())) {
            (Some(at), Ok(len)) => {
                at.copy_from_slice(raw);
                Probe::Inline(Inline { len, bytes })
            }
            _ => Probe::Text(text),
        }
    }

    /// The key to keep for this probe (an allocation only for a key kept on the heap).
    pub(super) fn to_key(self) -> Key {
        match self {
            Probe::Inline(inline) => Key::Inline(inline),
            Probe::Text(text) => Key::Heap(text.into()),
        }
    }
}

impl Key {
    /// Whether this is the key `probe` looks for.
    pub(super) fn matches(&self, probe: &Probe<'_>) -> bool {
        match (self, probe) {
            (Key::Inline(kept), Probe::Inline(sought)) => kept == sought,
            (Key::Heap(kept), Probe::Text(sought)) => **kept == **sought,
            _ => false,
        }
    }

    /// The length of the key's text, in bytes.
    pub(super) fn len(&self) -> usize {
        match self {
            Key::Inline(inline) => usize::from(inline.len),
            Key::Heap(text) => text.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::new(text).expect("key")
    }

    #[test]
    fn a_key_is_as_large_as_a_pointer_to_one_on_the_heap_and_its_length() {
        assert_eq!(std::mem::size_of::<Key>(), 40);
    }

    #[test]
    fn keys_up_to_38_bytes_are_kept_in_the_slot_longer_ones_on_the_heap() {
        let uuid = key("0d7f5b7e-2f4c-4b8e-9a51-6c1f2e3d4a5b");
        for (k, len) in [(key("k"), 1), (uuid, 36), (key(&"k".repeat(38)), 38)] {
            let kept = Probe::new(&k).to_key();
            assert!(matches!(kept, Key::Inline(_)), "{} inline", k.as_str());
            assert_eq!(kept.len(), len);
        }
        let stored = key(&"0123456789abcdef".repeat(4));
        for k in [key(&"k".repeat(39)), stored, key(&"k".repeat(255))] {
            let kept = Probe::new(&k).to_key();
            assert!(matches!(kept, Key::Heap(_)), "{} on the heap", k.as_str());
            assert_eq!(kept.len(), k.as_str().len());
        }
    }

    /// Keys that differ — in a byte, in length, across the inline bound — never match; each
    /// matches itself.
    #[test]
    fn a_key_matches_only_itself() {
        let texts = [
            "a".to_owned(),
            "a!".to_owned(),
            "b".to_owned(),
            "k".repeat(37),
            "k".repeat(38),
            "k".repeat(39),
            format!("{}j", "k".repeat(37)),
            format!("{}j", "k".repeat(38)),
            "0123456789abcdef".repeat(4),
            "0123456789ABCDEF".repeat(4),
        ];
        let keys: Vec<IdempotencyKey> = texts.iter().map(|t| key(t)).collect();
        for (i, a) in keys.iter().enumerate() {
            let kept = Probe::new(a).to_key();
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(
                    kept.matches(&Probe::new(b)),
                    i == j,
                    "{:?} against {:?}",
                    a.as_str(),
                    b.as_str()
                );
            }
        }
    }
}
