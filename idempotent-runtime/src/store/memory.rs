//! [`MemoryStore`]: the embedded default store, sharded and bounded.
//!
//! Keys are spread over shards (128 by default), each a dense table of records behind its own
//! short-held mutex; no lock is ever held across an `.await` or while another is taken.
//! There is no background task: expiry is lazy (an expired record is treated as absent when
//! met) plus amortized sweeping in rounds (while a round is due, every call on a shard looks
//! at the next two records of that shard's sweep cursor and drops them if they expired; a
//! round that went over the shard waits for the earliest expiry it saw). A capacity bound on
//! entries and on payload bytes refuses new claims with [`Error::CapacityExceeded`] — after
//! one sweep of every shard that may hold expired records — and never evicts a live record,
//! since eviction would let a retry run a side effect twice.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
mod builder;
mod key;
mod table;

pub use builder::MemoryStoreBuilder;
use key::Probe;
use table::Table;

use crate::store::lifetimes;
use crate::store::{
    CompletedRecord, ExistingEntry, IdempotencyStore, ImmediateStore, InsertResult,
    ProcessingRecord,
};
use crate::sync::{AtomicUsize, Mutex, MutexGuard};
use crate::{
    CachedResponse, Clock, Completed, Error, FencingToken, Fingerprint, IdempotencyEntry,
    IdempotencyKey, Processing,
};

/// How many records each call looks at for expiry, on the shard it touches.
const SWEEP_PER_CALL: usize = 2;

/// An in-process [`IdempotencyStore`]: the default store.
///
/// Cheap to clone (clones share the records). Works on any async runtime.
///
/// ```
/// use idempotent_runtime::{
///     CachedResponse, DefaultFingerprintStrategy, FingerprintStrategy, IdempotencyEntry,
///     IdempotencyKey, IdempotencyStore, InsertResult, MemoryStore,
/// };
///
/// # async fn demo() -> Result<(), idempotent_runtime::Error> {
/// let store = MemoryStore::builder().max_entries(100_000).max_bytes(64 << 20).build();
/// let key: IdempotencyKey = "order-1".parse()?;
/// let fp = DefaultFingerprintStrategy.compute("orders.pay", b"100 EUR");
/// if let InsertResult::Claimed { fencing_token, entry } =
///     store.try_insert(&key, IdempotencyEntry::new(fp)).await?
/// {
///     store.complete(&key, entry.complete(CachedResponse::from("paid")), fencing_token).await?;
/// }
/// assert_eq!(store.len(), 1);
/// # Ok(())
/// # }
/// # futures_lite_block_on(demo());
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: foldhash::quality::RandomState,
    clock: Arc<dyn Clock>,
    /// The capacity bound, when one is set. Only then do claims reserve from shared
    /// counters; an unbounded store (the default) counts per shard, under the shard's lock, so
    /// claims on different shards share no cache line.
    budget: Option<Budget>,
}

/// A capacity bound and what is taken from it, store-wide.
struct Budget {
    max_entries: usize,
    max_bytes: usize,
    entries: AtomicUsize,
    bytes: AtomicUsize,
}

impl Budget {
    /// The budget of these bounds; `None` when both are unbounded (`usize::MAX`).
    fn of(max_entries: usize, max_bytes: usize) -> Option<Self> {
        (max_entries != usize::MAX || max_bytes != usize::MAX).then(|| Self {
            max_entries,
            max_bytes,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        })
    }

    /// Takes `entries` and `bytes`, or refuses and takes nothing: fetch-add, then check, so
    /// the bound is exact.
    fn reserve(&self, entries: usize, bytes: usize) -> Result<(), Error> {
        if entries > 0 {
            let before = self.entries.fetch_add(entries, Ordering::Relaxed);
            if before.saturating_add(entries) > self.max_entries {
                self.entries.fetch_sub(entries, Ordering::Relaxed);
                return Err(Error::CapacityExceeded {
                    limit: "entries",
                    max: self.max_entries,
                });
            }
        }
        let before = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.max_bytes {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.entries.fetch_sub(entries, Ordering::Relaxed);
            return Err(Error::CapacityExceeded {
                limit: "bytes",
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    fn unreserve(&self, entries: usize, bytes: usize) {
        self.entries.fetch_sub(entries, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Keeps each shard's lock on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

struct Shard {
    /// Boxed records keep the table's slots small (56 bytes: the hash, the key as
    /// [`key::Key`] keeps it, the box), so growing a shard moves little memory and an idle
    /// slot costs little. (In place, records cost more: a 136-byte slot, doubled capacity —
    /// 268 B per record at a million, against 190 boxed — and a shard's growth moves
    /// megabytes under its lock.)
    records: Table<Box<Record>>,
    /// The payload bytes of this shard's records.
    bytes: usize,
    /// The last fencing counter issued in this shard; every claim takes the next one.
    counter: u64,
    /// Where amortized sweeping looks next.
    cursor: usize,
    /// No record in this shard expires before this instant (milliseconds of the clock).
    earliest_expiry: u64,
    /// When amortized sweeping next goes round the shard: the earliest expiry the last round
    /// saw, lowered by every completion since (see [`Inner::sweep`]).
    next_round: u64,
    /// The earliest expiry of the records the round in progress has seen live, and of the
    /// expiries set since it began.
    round_min: u64,
    /// Records looked at by amortized sweeping, for tests.
    #[cfg(test)]
    looked_at: usize,
}

impl Shard {
    /// A record's expiry is now `at`: no bound may stay above it.
    fn expires(&mut self, at: u64) {
        self.earliest_expiry = self.earliest_expiry.min(at);
        self.round_min = self.round_min.min(at);
    }
}

/// One record: 104 bytes and the payload — a 112-byte allocation (a unit test pins it). The
/// completed flag is the top bit of the expiry, since a separate one (or a state enum around
/// the response) would make it 112 bytes, a 128-byte allocation: 16 bytes more per record.
struct Record {
    fingerprint: Fingerprint,
    token: FencingToken,
    /// Low 63 bits: milliseconds of the store's clock from which the record is dead. Top bit
    /// ([`COMPLETED`]): the claim completed.
    expiry: u64,
    /// A completed record's response; `None` for one done but not replayable (and while
    /// processing).
    response: Option<CachedResponse>,
}

/// The store's clock, read once, in whole milliseconds.
#[derive(Clone, Copy)]
struct Now {
    /// Rounded down: what has surely passed. A record whose expiry this reaches is dead.
    ms: u64,
    /// Rounded up: where a lease or TTL granted now counts from, so it holds for its whole
    /// length (see `lifetimes`).
    from: u64,
}

impl Now {
    /// The expiry of a lease or TTL of `span` ms (rounded up) granted now.
    fn deadline(self, span: u64) -> u64 {
        self.from.saturating_add(span)
    }
}

/// The expiry's flag of a completed record.
const COMPLETED: u64 = 1 << 63;

/// An expiry of `at` (clamped below the flag) with `flag`.
fn pack(at: u64, flag: u64) -> u64 {
    flag | at.min(!COMPLETED)
}

impl Record {
    fn processing(fingerprint: Fingerprint, token: FencingToken, expires_at: u64) -> Self {
        Self {
            fingerprint,
            token,
            expiry: pack(expires_at, 0),
            response: None,
        }
    }

    fn expires_at(&self) -> u64 {
        self.expiry & !COMPLETED
    }

    fn is_live(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// Moves the expiry to `at`, completed or not as before.
    fn expire_at(&mut self, at: u64) {
        self.expiry = pack(at, self.expiry & COMPLETED);
    }

    fn complete(&mut self, response: Option<CachedResponse>, expires_at: u64) {
        self.response = response;
        self.expiry = pack(expires_at, COMPLETED);
    }

    /// The bytes of its key (`key_len` of them) and of its response.
    fn payload_bytes(&self, key_len: usize) -> usize {
        key_len + self.response.as_ref().map_or(0, CachedResponse::size)
    }

    fn is_completed(&self) -> bool {
        self.expiry & COMPLETED != 0
    }

    /// The record as another request sees it.
    fn to_existing(&self) -> ExistingEntry {
        if self.is_completed() {
            ExistingEntry::Completed(CompletedRecord::new(
                self.fingerprint,
                self.response.clone(),
            ))
        } else {
            ExistingEntry::Processing(ProcessingRecord::new(self.fingerprint))
        }
    }
}

impl MemoryStore {
    /// A store with 128 shards, no capacity bound and the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a store: shards, capacity bounds, clock.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::new()
    }

    /// The number of records held, live or expired but not yet swept. Adds up the shards,
    /// taking each one's lock in turn: for gauges and tests, not for every request.
    ///
    /// ```
    /// use idempotent_runtime::MemoryStore;
    ///
    /// assert!(MemoryStore::new().is_empty());
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.0.lock().records.len())
            .sum()
    }

    /// Whether the store holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload bytes held (keys, result bodies and metadata) — what `max_bytes` bounds.
    /// Adds up the shards, as [`Self::len`] does.
    #[must_use]
    pub fn payload_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.0.lock().bytes)
            .sum()
    }

    /// Drops every expired record now, one shard at a time. Never needed for correctness
    /// (expired records are treated as absent), only to give memory back early.
    pub fn sweep(&self) {
        let now = self.inner.now().ms;
        for shard in &*self.inner.shards {
            let mut shard = shard.0.lock();
            if shard.earliest_expiry <= now {
                self.inner.sweep_all(&mut shard, now);
            }
        }
    }

    /// The shard of `key`, locked, the key's hash and the key as the shard's table looks it
    /// up: bits 32 and up of the hash pick the shard, the table uses the low bits and the top
    /// seven.
    fn shard<'k>(&self, key: &'k IdempotencyKey) -> (MutexGuard<'_, Shard>, u64, Probe<'k>) {
        let probe = Probe::new(key);
        let hash = self.inner.hasher.hash_one(probe);
        let index = usize::try_from(hash >> 32).unwrap_or_default() % self.inner.shards.len();
        (self.inner.shards[index].0.lock(), hash, probe)
    }

    fn insert(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        let (_, lease) = lifetimes::claim(&entry)?;
        let key_len = key.as_str().len();
        let mut swept = false;
        loop {
            let at = self.inner.now();
            let now = at.ms;
            let (mut shard, hash, probe) = self.shard(key);
            self.inner.sweep(&mut shard, now, SWEEP_PER_CALL);
            let counter = shard.counter + 1;
            let token = FencingToken::new(counter, entry.claim_nonce());
            // Built only once the key is known to be free: a replay builds nothing.
            let fresh = || Record::processing(entry.fingerprint(), token, at.deadline(lease));
            if let Some(record) = shard.records.get_mut(hash, &probe) {
                if record.is_live(now) {
                    if !record.is_completed() && record.token.nonce() == entry.claim_nonce() {
                        // This very claim, re-sent: the caller's own.
                        return Ok(InsertResult::Claimed {
                            fencing_token: record.token,
                            entry,
                        });
                    }
                    return Ok(InsertResult::Exists(record.to_existing()));
                }
                // A dead record (lapsed lease or expired TTL): take its place.
                let freed = record.payload_bytes(key_len) - key_len;
                **record = fresh();
                self.inner.unreserve(&mut shard.bytes, 0, freed);
            } else {
                match self.inner.reserve(&mut shard.bytes, 1, key_len) {
                    Ok(()) => {}
                    Err(full) if swept => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(error = %full, "memory store refused a claim at its capacity bound");
                        return Err(full);
                    }
                    Err(_) => {
                        drop(shard);
                        self.sweep();
                        swept = true;
                        continue;
                    }
                }
                if shard
                    .records
                    .insert(hash, probe.to_key(), Box::new(fresh()))
                    .is_err()
                {
                    self.inner.unreserve(&mut shard.bytes, 1, key_len);
                    return Err(Error::CapacityExceeded {
                        limit: "entries per shard",
                        max: u32::MAX as usize,
                    });
                }
            }
            shard.counter = counter;
            let expiry = at.deadline(lease);
            shard.expires(expiry);
            // A claim does not bring the next round forward (it is seen by that round, or
            // completes and lowers it then), unless none is due: then it is the first due.
            if shard.next_round == u64::MAX {
                shard.next_round = expiry;
            }
            return Ok(InsertResult::Claimed {
                fencing_token: token,
                entry,
            });
        }
    }

    fn complete_sync(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error> {
        let ttl = lifetimes::completion(&entry)?;
        let at = self.inner.now();
        let now = at.ms;
        let (mut guard, hash, probe) = self.shard(key);
        let shard = &mut *guard;
        self.inner.sweep(shard, now, SWEEP_PER_CALL);
        let record = held_record(&mut shard.records, hash, &probe, token, now)?;
        if record.fingerprint != entry.fingerprint() {
            return Err(Error::FingerprintMismatch); // not this claim's request
        }
        if record.is_completed() {
            return Ok(()); // the same claim completed twice: the first result stands
        }
        let response = entry.into_response();
        let added = response.as_ref().map_or(0, CachedResponse::size);
        self.inner.reserve(&mut shard.bytes, 0, added)?;
        let expiry = at.deadline(ttl);
        record.complete(response, expiry);
        shard.expires(expiry);
        shard.next_round = shard.next_round.min(expiry);
        Ok(())
    }

    fn release_sync(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error> {
        let now = self.inner.now().ms;
        let (mut shard, hash, probe) = self.shard(key);
        let record = held_record(&mut shard.records, hash, &probe, token, now)?;
        if record.is_completed() {
            return Err(Error::StaleFencingToken); // a completed record is never released
        }
        if let Some(index) = shard.records.position(hash, &probe) {
            let bytes = key.as_str().len();
            shard.records.swap_remove_index(index);
            // The last record moved into `index`, maybe behind the round's cursor.
            if let Some(moved) = shard.records.get_index(index).map(|(_, r)| r.expires_at()) {
                shard.expires(moved);
            }
            self.inner.unreserve(&mut shard.bytes, 1, bytes);
        }
        Ok(())
    }

    fn renew_sync(
        &self,
        key: &IdempotencyKey,
        token: FencingToken,
        lease: Duration,
    ) -> Result<(), Error> {
        let lease = lifetimes::lease(lease)?;
        let at = self.inner.now();
        let (mut shard, hash, probe) = self.shard(key);
        let record = held_record(&mut shard.records, hash, &probe, token, at.ms)?;
        if record.is_completed() {
            return Err(Error::StaleFencingToken); // only an in-flight claim has a lease
        }
        let expiry = at.deadline(lease);
        record.expire_at(expiry);
        shard.expires(expiry);
        Ok(())
    }

    fn get_sync(&self, key: &IdempotencyKey) -> Option<ExistingEntry> {
        let now = self.inner.now().ms;
        let (shard, hash, probe) = self.shard(key);
        shard
            .records
            .get(hash, &probe)
            .filter(|r| r.is_live(now))
            .map(|r| r.to_existing())
    }
}

/// The live record of `key` if `token` names its claim.
fn held_record<'a>(
    records: &'a mut Table<Box<Record>>,
    hash: u64,
    key: &Probe<'_>,
    token: FencingToken,
    now: u64,
) -> Result<&'a mut Record, Error> {
    match records.get_mut(hash, key) {
        Some(record) if record.is_live(now) && record.token == token => Ok(&mut **record),
        _ => Err(Error::StaleFencingToken),
    }
}

impl Inner {
    fn now(&self) -> Now {
        let now = self.clock.now();
        Now {
            ms: lifetimes::millis(now),
            from: lifetimes::millis_up(now),
        }
    }

    /// Takes `entries` and `bytes` from the capacity budget (if the store has one), or
    /// refuses and takes nothing; the shard's own count (`shard_bytes`) goes up with it.
    fn reserve(&self, shard_bytes: &mut usize, entries: usize, bytes: usize) -> Result<(), Error> {
        if let Some(budget) = &self.budget {
            budget.reserve(entries, bytes)?;
        }
        *shard_bytes += bytes;
        Ok(())
    }

    fn unreserve(&self, shard_bytes: &mut usize, entries: usize, bytes: usize) {
        if let Some(budget) = &self.budget {
            budget.unreserve(entries, bytes);
        }
        *shard_bytes = shard_bytes.saturating_sub(bytes);
    }

    /// Drops every dead record of `shard`; the next round is due at the earliest expiry left.
    fn sweep_all(&self, shard: &mut Shard, now: u64) {
        let (mut entries, mut bytes, mut earliest) = (0, 0, u64::MAX);
        shard.records.retain(|key, record| {
            if record.is_live(now) {
                earliest = earliest.min(record.expires_at());
                true
            } else {
                entries += 1;
                bytes += record.payload_bytes(key.len());
                false
            }
        });
        self.unreserve(&mut shard.bytes, entries, bytes);
        #[cfg(feature = "tracing")]
        tracing::trace!(dropped = entries, "memory store swept a shard");
        shard.earliest_expiry = earliest;
        shard.next_round = earliest;
        shard.round_min = u64::MAX;
        shard.cursor = 0;
    }

    /// Looks at up to `budget` records from the shard's cursor and drops the dead ones, while a
    /// round is due.
    ///
    /// A round goes once over the shard, then waits until the earliest expiry it saw (and any
    /// completion's since): until then nothing it saw can have died, so looking again would
    /// only cost a cache miss per record. Claims made since do not bring it forward — most
    /// complete within their lease, and the next round sees the rest — so a claim whose lease
    /// lapsed is dropped by the next round, no later than the shard's earliest completed
    /// record expires (or when its key is claimed again; the capacity bound sweeps it at once).
    fn sweep(&self, shard: &mut Shard, now: u64, budget: usize) {
        if shard.next_round > now {
            return;
        }
        for _ in 0..budget {
            if shard.cursor >= shard.records.len() {
                // The round is over.
                shard.cursor = 0;
                shard.next_round = shard.round_min;
                shard.round_min = u64::MAX;
                return;
            }
            #[cfg(test)]
            {
                shard.looked_at += 1;
            }
            let Some((key, record)) = shard.records.get_index(shard.cursor) else {
                return;
            };
            if record.is_live(now) {
                let expiry = record.expires_at();
                shard.round_min = shard.round_min.min(expiry);
                shard.cursor += 1;
            } else {
                let bytes = record.payload_bytes(key.len());
                // The last record moves into the cursor's slot; look at it next.
                shard.records.swap_remove_index(shard.cursor);
                self.unreserve(&mut shard.bytes, 1, bytes);
            }
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("entries", &self.len())
            .field("payload_bytes", &self.payload_bytes())
            .field(
                "max_entries",
                &self
                    .inner
                    .budget
                    .as_ref()
                    .map_or(usize::MAX, |b| b.max_entries),
            )
            .field(
                "max_bytes",
                &self
                    .inner
                    .budget
                    .as_ref()
                    .map_or(usize::MAX, |b| b.max_bytes),
            )
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn try_insert(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        self.insert(key, entry)
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error> {
        self.complete_sync(key, entry, token)
    }

    async fn release(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error> {
        self.release_sync(key, token)
    }

    async fn renew(
        &self,
        key: &IdempotencyKey,
        token: FencingToken,
        lease: Duration,
    ) -> Result<(), Error> {
        self.renew_sync(key, token, lease)
    }

    async fn get(&self, key: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error> {
        Ok(self.get_sync(key))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn detached(&self) -> Option<Arc<dyn IdempotencyStore>> {
        Some(Arc::new(self.clone()))
    }

    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        Some(self)
    }
}

impl ImmediateStore for MemoryStore {
    fn try_insert_now(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        self.insert(key, entry)
    }

    fn complete_now(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error> {
        self.complete_sync(key, entry, token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::MemoryStore;
    use crate::{
        CachedResponse, DefaultFingerprintStrategy, FingerprintStrategy, IdempotencyEntry,
        IdempotencyKey, InsertResult, ManualClock,
    };

    /// Claims and completes `key` (lease 1 s, TTL 10 min).
    fn claim_complete(store: &MemoryStore, key: &str) {
        let key = IdempotencyKey::new(key).expect("key");
        let fingerprint = DefaultFingerprintStrategy.compute("op", key.as_str().as_bytes());
        let entry = IdempotencyEntry::new(fingerprint)
            .with_lease(Duration::from_secs(1))
            .with_ttl(Duration::from_secs(600));
        let Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) = store.insert(&key, entry)
        else {
            panic!("{key:?} not claimed");
        };
        store
            .complete_sync(
                &key,
                entry.complete(CachedResponse::from("ok")),
                fencing_token,
            )
            .expect("completed");
    }

    fn looked_at(store: &MemoryStore) -> usize {
        store.inner.shards[0].0.lock().looked_at
    }

    /// Once a round has seen every record live, sweeping waits for the earliest expiry it saw:
    /// it does not look at the same live records on every call (a cache miss each) just
    /// because some claim's lease has passed.
    #[test]
    fn a_round_that_finds_every_record_live_waits_for_the_earliest_expiry() {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::builder()
            .shards(1)
            .clock(clock.clone())
            .build();
        for i in 0..50 {
            claim_complete(&store, &format!("a-{i}"));
        }
        // Past every claim's lease, long before any TTL: a round is due, and finds all live.
        clock.advance(Duration::from_secs(2));
        for i in 0..100 {
            claim_complete(&store, &format!("b-{i}"));
        }
        let after_the_round = looked_at(&store);
        assert!(
            after_the_round >= 50,
            "the round looked at {after_the_round}"
        );
        for i in 0..100 {
            claim_complete(&store, &format!("c-{i}"));
        }
        assert_eq!(
            looked_at(&store),
            after_the_round,
            "live records looked at again"
        );
        assert_eq!(store.len(), 250);
        // Past the TTLs: the next round drops every record, a few per call.
        clock.advance(Duration::from_secs(600));
        for i in 0..200 {
            claim_complete(&store, &format!("d-{i}"));
        }
        assert_eq!(store.len(), 200);
    }

    /// A clock read to the nanosecond, set by hand: the store's whole milliseconds meet
    /// instants between them.
    #[derive(Debug, Default)]
    struct NanoClock(std::sync::atomic::AtomicU64);

    impl NanoClock {
        fn set(&self, at: Duration) {
            let nanos = u64::try_from(at.as_nanos()).expect("a test instant");
            self.0.store(nanos, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl crate::Clock for NanoClock {
        fn now(&self) -> Duration {
            Duration::from_nanos(self.0.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    /// A lease or TTL granted between two whole milliseconds still holds until its whole
    /// length has passed: the holder's own deadline is when it sent the call plus the lease,
    /// so a store that ended it at the whole millisecond before would let another request
    /// take the key over while the holder still reads its claim as held. Claim, renewal (for
    /// 150.5 ms) and completion granted at 10.9, 20.9 and 40.9 ms: each live 1 µs before its
    /// end; the record dead a millisecond after its TTL.
    #[test]
    fn a_lease_or_ttl_granted_between_milliseconds_holds_for_its_whole_length() {
        let clock = Arc::new(NanoClock::default());
        let store = MemoryStore::builder().clock(clock.clone()).build();
        let key = IdempotencyKey::new("sub-ms").expect("key");
        let fingerprint = DefaultFingerprintStrategy.compute("op", b"sub-ms");
        let (lease, ttl) = (Duration::from_millis(150), Duration::from_millis(600));
        let entry = || {
            IdempotencyEntry::new(fingerprint)
                .with_lease(lease)
                .with_ttl(ttl)
        };
        let just_before = |granted: Duration, span: Duration| {
            (granted + span).saturating_sub(Duration::from_micros(1))
        };
        let held = |store: &MemoryStore| {
            matches!(store.insert(&key, entry()), Ok(InsertResult::Exists(_)))
        };

        let granted = Duration::from_micros(10_900);
        clock.set(granted);
        let Ok(InsertResult::Claimed {
            fencing_token,
            entry: claimed,
        }) = store.insert(&key, entry())
        else {
            panic!("not claimed");
        };
        clock.set(just_before(granted, lease));
        assert!(held(&store), "the claim ended before its lease had passed");

        // A lease of a fraction of a millisecond more holds for that fraction too.
        let (renewed, longer) = (
            Duration::from_micros(20_900),
            Duration::from_micros(150_500),
        );
        clock.set(renewed);
        store
            .renew_sync(&key, fencing_token, longer)
            .expect("renewed");
        clock.set(just_before(renewed, longer));
        assert!(
            held(&store),
            "the renewal ended before its lease had passed"
        );

        let completed = Duration::from_micros(40_900);
        clock.set(completed);
        store
            .complete_sync(
                &key,
                claimed.complete(CachedResponse::from("ok")),
                fencing_token,
            )
            .expect("completed");
        clock.set(just_before(completed, ttl));
        assert!(held(&store), "the record expired before its TTL had passed");
        clock.set(completed + ttl + Duration::from_millis(1));
        assert!(!held(&store), "the record outlived its TTL");
    }

    /// A boxed record is one allocation of the allocator's 112-byte class (104 bytes and the
    /// 8 of malloc's header): one byte more and every record costs 16 more.
    #[test]
    fn a_record_is_104_bytes() {
        assert_eq!(std::mem::size_of::<super::Record>(), 104);
    }
}
