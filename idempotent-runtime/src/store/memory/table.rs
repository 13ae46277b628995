//! [`Table`]: one shard's records — a dense vector the sweep's cursor walks, and a hash index
//! of 32-bit positions into it.
//!
//! What `IndexMap` would do, with two costs taken out, measured at a million records: its
//! index holds 8-byte positions (here 4), and it grows its entries to the capacity of its
//! index (7/8 of a power of two), so a shard just past a doubling held almost twice the
//! entries it used — 182 B per record beyond the payload against 148 here. Keys are kept in
//! their slots ([`Key`]), not each in an allocation of its own.

use hashbrown::HashTable;

use super::key::{Key, Probe};

/// A key's record and the key's hash (kept, so growing the index re-reads no key).
struct Slot<V> {
    hash: u64,
    key: Key,
    value: V,
}

/// Records by key, in a dense vector; removal moves the last record into the hole.
pub(super) struct Table<V> {
    slots: Vec<Slot<V>>,
    index: HashTable<u32>,
}

impl<V> Table<V> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            index: HashTable::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The position of `key` (whose hash is `hash`).
    pub(super) fn position(&self, hash: u64, key: &Probe<'_>) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&at| {
                slots
                    .get(at as usize)
                    .is_some_and(|slot| slot.hash == hash && slot.key.matches(key))
            })
            .map(|&at| at as usize)
    }

    pub(super) fn get(&self, hash: u64, key: &Probe<'_>) -> Option<&V> {
        let at = self.position(hash, key)?;
        self.slots.get(at).map(|slot| &slot.value)
    }

    pub(super) fn get_mut(&mut self, hash: u64, key: &Probe<'_>) -> Option<&mut V> {
        let at = self.position(hash, key)?;
        self.slots.get_mut(at).map(|slot| &mut slot.value)
    }

    /// The key and record at `at`.
    pub(super) fn get_index(&self, at: usize) -> Option<(&Key, &V)> {
        self.slots.get(at).map(|slot| (&slot.key, &slot.value))
    }

    /// Adds `key`, which must be absent. `Err` (nothing added) when the table already holds
    /// as many records as a 32-bit position can name.
    pub(super) fn insert(&mut self, hash: u64, key: Key, value: V) -> Result<(), V> {
        let Ok(at) = u32::try_from(self.slots.len()) else {
            return Err(value);
        };
        self.slots.push(Slot { hash, key, value });
        self.index.insert_unique(hash, at, hash_at(&self.slots));
        Ok(())
    }

    /// Removes the record at `at`; the last record moves into its place.
    pub(super) fn swap_remove_index(&mut self, at: usize) -> Option<(Key, V)> {
        let hash = self.slots.get(at)?.hash;
        let last = self.slots.len() - 1;
        if let Ok(entry) = self.index.find_entry(hash, |&p| p as usize == at) {
            entry.remove();
        }
        if at != last {
            let moved = self.slots.get(last).map_or(0, |slot| slot.hash);
            if let Some(position) = self.index.find_mut(moved, |&p| p as usize == last) {
                // `at` < `last`, which is a u32.
                *position = u32::try_from(at).unwrap_or(u32::MAX);
            }
        }
        let slot = self.slots.swap_remove(at);
        Some((slot.key, slot.value))
    }

    /// Keeps the records `keep` says to, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Key, &V) -> bool) {
        let before = self.slots.len();
        self.slots.retain(|slot| keep(&slot.key, &slot.value));
        if self.slots.len() == before {
            return;
        }
        self.index.clear();
        for (at, slot) in (0u32..).zip(&self.slots) {
            self.index
                .insert_unique(slot.hash, at, hash_at(&self.slots));
        }
    }
}

/// The hash of the slot at a position, for the index to rehash with.
fn hash_at<V>(slots: &[Slot<V>]) -> impl Fn(&u32) -> u64 + '_ {
    |&at| slots.get(at as usize).map_or(0, |slot| slot.hash)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use super::{Probe, Table};
    use crate::IdempotencyKey;

    fn hash_of(key: &Probe<'_>) -> u64 {
        foldhash::quality::FixedState::default().hash_one(key)
    }

    /// The table and a `HashMap` agree through inserts, swap-removes at the front, the middle
    /// and the end, and a retain; every position and the index agree.
    #[test]
    fn agrees_with_a_hash_map_through_removals() {
        let (mut table, mut model) = (Table::new(), HashMap::new());
        // Short keys, and 64-digit ones past the inline bound: both forms.
        let text = |i: usize| match i % 2 {
            0 => format!("k-{i}"),
            _ => format!("{i:>064}-long"),
        };
        let key = |i: usize| IdempotencyKey::new(&text(i)).expect("key");
        for i in 0..1000_usize {
            let key = key(i);
            let probe = Probe::new(&key);
            assert!(table.insert(hash_of(&probe), probe.to_key(), i).is_ok());
            model.insert(text(i), i);
        }
        for at in [0, 500, 997, 3, 995] {
            let (kept, value) = table.swap_remove_index(at).expect("in range");
            assert!(kept.matches(&Probe::new(&key(value))), "its own key");
            assert_eq!(model.remove(&text(value)), Some(value));
        }
        assert!(table.swap_remove_index(table.len()).is_none());
        table.retain(|_, value| value % 3 != 0);
        model.retain(|_, value| *value % 3 != 0);
        assert_eq!(table.len(), model.len());
        for i in 0..1000 {
            let key = key(i);
            let probe = Probe::new(&key);
            let expected = model.get(&text(i));
            assert_eq!(table.get(hash_of(&probe), &probe), expected, "{i}");
            if let Some(at) = table.position(hash_of(&probe), &probe) {
                let (kept, value) = table.get_index(at).expect("in range");
                assert!(
                    kept.matches(&probe) && Some(value) == expected,
                    "{i} at {at}"
                );
            }
        }
    }
}
