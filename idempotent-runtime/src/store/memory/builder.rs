//! [`MemoryStoreBuilder`]: shards, capacity bounds and the clock of a [`MemoryStore`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::table::Table;
use super::{Budget, Inner, MemoryStore, Padded, Shard};
use crate::sync::Mutex;
use crate::{Clock, SystemClock};

/// Configures a [`MemoryStore`]; from [`MemoryStore::builder`].
///
/// ```
/// use idempotent_runtime::MemoryStore;
///
/// let store = MemoryStore::builder().shards(16).max_entries(10_000).max_bytes(8 << 20).build();
/// assert!(store.is_empty());
/// ```
#[derive(Debug)]
#[must_use]
pub struct MemoryStoreBuilder {
    shards: usize,
    max_entries: usize,
    max_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl MemoryStoreBuilder {
    /// 128 shards, no capacity bound, the system clock.
    pub(super) fn new() -> Self {
        Self {
            shards: 128,
            max_entries: usize::MAX,
            max_bytes: usize::MAX,
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// The number of shards (rounded up to at least 1). Default 128.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The most records the store holds; a claim past it is refused. Default: unbounded.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// The most payload bytes (keys, result bodies and metadata) the store holds; a claim or
    /// completion past it is refused. Default: unbounded.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The clock that leases and TTLs are measured on. Default: [`SystemClock`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use idempotent_runtime::{ManualClock, MemoryStore};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let store = MemoryStore::builder().clock(clock.clone()).build();
    /// ```
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the store.
    #[must_use]
    pub fn build(self) -> MemoryStore {
        // Counters start at the wall clock in microseconds, so a restarted process keeps
        // issuing larger fencing tokens than the one before it (unless it issued more than one
        // claim per microsecond per shard).
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let shards = (0..self.shards)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    records: Table::new(),
                    bytes: 0,
                    counter: start,
                    cursor: 0,
                    earliest_expiry: u64::MAX,
                    next_round: u64::MAX,
                    round_min: u64::MAX,
                    #[cfg(test)]
                    looked_at: 0,
                }))
            })
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                hasher: foldhash::quality::RandomState::default(),
                clock: self.clock,
                budget: Budget::of(self.max_entries, self.max_bytes),
            }),
        }
    }
}
