//! The opt-in local cache of completed records ([`ValkeyStoreBuilder::local_cache`]): a
//! completed record cannot change until it expires, so a replay may be answered from process
//! memory — bounded in entries and bytes, and never past the record's remaining TTL as the
//! server reported it.
//!
//! [`ValkeyStoreBuilder::local_cache`]: super::ValkeyStoreBuilder::local_cache

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Duration;

use bytes::Bytes;
use foldhash::fast::FixedState;
use tokio::time::Instant;

use crate::sync::Mutex;
use crate::{CachedResponse, CompletedRecord};

/// At most this many shards, each with its own lock and its share of the bounds, so replays
/// on different keys do not wait for each other; one per 1024 entries allowed (a small cache
/// is one shard, so its bounds are exact).
const MAX_SHARDS: usize = 16;
const ENTRIES_PER_SHARD: usize = 1024;

/// Completed records by the key a store call is given (the record key derives from it), each
/// until its server-side expiry.
#[derive(Debug)]
pub(crate) struct LocalCache {
    max_entries: usize,
    max_bytes: usize,
    hasher: FixedState,
    shards: Box<[Mutex<Entries>]>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Cached, FixedState>,
    bytes: usize,
}

#[derive(Debug)]
struct Cached {
    record: CompletedRecord,
    expires: Instant,
    size: usize,
}

/// A copy of `record` whose response is in buffers of its own: one decoded from a reply
/// shares the reply's whole buffer (the record's header and lengths with it), which the byte
/// bound, counting the response, would not see. Made once per entry kept.
fn own(record: CompletedRecord) -> CompletedRecord {
    let fingerprint = record.fingerprint();
    let response = record.into_response().map(|response| {
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.clone(), Bytes::copy_from_slice(value)))
            .collect();
        CachedResponse::new(response.status(), Bytes::copy_from_slice(response.body()))
            .with_headers(headers)
    });
    CompletedRecord::new(fingerprint, response)
}

/// What an entry counts against the byte bound: its key, its response, and a fixed share for
/// the map's own bookkeeping.
fn size_of(key: &str, record: &CompletedRecord) -> usize {
    const OVERHEAD: usize = 96;
    key.len() + record.response().map_or(0, CachedResponse::size) + OVERHEAD
}

impl LocalCache {
    /// A cache of at most `max_entries` records and `max_bytes` bytes in all (each shard
    /// holds its share, rounded down).
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        let shards = (max_entries / ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        Self {
            max_entries: max_entries / shards,
            max_bytes: max_bytes / shards,
            hasher: FixedState::default(),
            shards: (0..shards)
                .map(|_| Mutex::new(Entries::default()))
                .collect(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Entries> {
        // The modulo keeps the index below the shard count: the truncation is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        &self.shards[index]
    }

    /// The completed record under `key`, if cached and not expired.
    pub(crate) fn get(&self, key: &str) -> Option<CompletedRecord> {
        let mut entries = self.shard(key).lock();
        let cached = entries.map.get(key)?;
        if Instant::now() < cached.expires {
            return Some(cached.record.clone());
        }
        entries.remove(key);
        None
    }

    /// Keeps `record` until `read_at + remaining`: `read_at` is taken before the call that
    /// read `remaining` was sent, so the server's own expiry is never earlier. Entries are
    /// evicted to stay within the bounds; a record larger than the byte bound is not kept.
    pub(crate) fn put(
        &self,
        key: &str,
        record: CompletedRecord,
        read_at: Instant,
        remaining: Duration,
    ) {
        let size = size_of(key, &record);
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        let Some(expires) = read_at.checked_add(remaining) else {
            return;
        };
        let record = own(record);
        let mut entries = self.shard(key).lock();
        entries.remove(key);
        while entries.map.len() >= self.max_entries || entries.bytes + size > self.max_bytes {
            // Any entry will do: they are all correct until they expire.
            let Some(victim) = entries.map.keys().next().cloned() else {
                break;
            };
            entries.remove(&victim);
        }
        entries.bytes += size;
        entries.map.insert(
            key.to_owned(),
            Cached {
                record,
                expires,
                size,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

impl Entries {
    fn remove(&mut self, key: &str) {
        if let Some(gone) = self.map.remove(key) {
            self.bytes -= gone.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fingerprint;

    fn record(body: &'static str) -> CompletedRecord {
        CompletedRecord::new(Fingerprint::from_u128(1), Some(CachedResponse::from(body)))
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_served_until_its_remaining_ttl_ends() {
        let cache = LocalCache::new(10, 1 << 20);
        cache.put("k", record("a"), Instant::now(), Duration::from_secs(2));
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert_eq!(cache.get("k"), Some(record("a")));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get("k"), None, "expired with the server's record");
        assert_eq!(cache.len(), 0, "and dropped");
    }

    /// A record decoded from a reply shares the reply's buffer; the cache keeps a copy of just
    /// the response, so what it holds is what its byte bound counts.
    #[tokio::test]
    async fn an_entry_keeps_its_response_in_buffers_of_its_own() {
        let reply = Bytes::from(vec![7u8; 4096]);
        let (body, value) = (reply.slice(100..110), reply.slice(200..201));
        let shared = CompletedRecord::new(
            Fingerprint::from_u128(1),
            Some(CachedResponse::new(201, body).with_header("x-a", value)),
        );
        let cache = LocalCache::new(10, 1 << 20);
        cache.put("k", shared.clone(), Instant::now(), Duration::from_secs(60));
        let kept = cache.get("k").expect("cached");
        assert_eq!(kept, shared, "the same record");
        let outside = |part: &[u8]| {
            let (whole, part) = (reply.as_ptr_range(), part.as_ptr_range());
            part.end <= whole.start || whole.end <= part.start
        };
        let response = kept.response().expect("a response");
        assert!(outside(response.body()), "the body is a copy");
        assert!(
            outside(&response.headers()[0].1),
            "a header value is a copy"
        );
    }

    fn fill(cache: &LocalCache, n: usize) {
        for k in 0..n {
            let key = format!("key-{k:03}");
            cache.put(&key, record("x"), Instant::now(), Duration::from_secs(60));
        }
    }

    #[tokio::test]
    async fn entries_and_bytes_are_bounded() {
        let entry = size_of("key-000", &record("x"));
        let cache = LocalCache::new(2, 1 << 20);
        fill(&cache, 3);
        assert_eq!(cache.len(), 2, "a small cache's bound is exact");
        let small = LocalCache::new(100, 2 * entry);
        fill(&small, 3);
        assert_eq!((small.len(), small.bytes()), (2, 2 * entry));
        let tiny = LocalCache::new(100, 10);
        tiny.put("a", record("x"), Instant::now(), Duration::from_secs(60));
        assert_eq!(tiny.len(), 0, "a record over the byte bound is not kept");
        let none = LocalCache::new(0, 1 << 20);
        fill(&none, 10);
        assert_eq!(none.len(), 0, "no entries allowed, none kept");
        let sharded = LocalCache::new(4 * ENTRIES_PER_SHARD, 1 << 30);
        assert_eq!(sharded.shards.len(), 4);
        fill(&sharded, 5 * ENTRIES_PER_SHARD);
        assert!(
            sharded.len() <= 4 * ENTRIES_PER_SHARD,
            "{} entries",
            sharded.len()
        );
        assert!(
            sharded.len() > 3 * ENTRIES_PER_SHARD,
            "{} entries",
            sharded.len()
        );
    }
}
