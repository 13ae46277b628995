//! [`ValkeyStore`]: the multi-node store on Valkey or Redis (>= 7), standalone or cluster.
//!
//! # What it guarantees, and under which settings
//! - Every step (claim, complete, release, renew, get) is one Lua script, run atomically by
//!   the server with EVALSHA (loaded once, reloaded transparently after `SCRIPT FLUSH` or a
//!   restart). Leases are measured on the **server's** clock, so client clock skew does not
//!   matter. Each script checks its arguments before its first write: Redis does not roll back
//!   a script that fails half-way, so a refused call writes nothing.
//! - Every record is one string value (a versioned binary format) under
//!   `{prefix}{<hash of the key>}`: the hash tag comes from a SHA-256 of the key, so user bytes
//!   never choose a cluster slot, and every script touches one slot. A claim's record expires
//!   with its lease and a completed one with its TTL, on the server.
//! - At connect the store refuses a server whose `maxmemory-policy` may evict (anything but
//!   `noeviction`): an evicted claim lets a retry run the side effect twice. Under
//!   `noeviction` a full server refuses writes cleanly ([`Error::StoreUnavailable`]); nothing is
//!   half-written. Opt out with [`ValkeyStoreBuilder::allow_eviction`] only if you accept that.
//! - Fencing: a claim's nonce is random (128 bits, drawn by the runtime with the entry), so a
//!   completion, renewal or release from a lapsed claim is rejected even if the server lost
//!   its data in between. The counter is the server time in microseconds when the claim was
//!   taken (`TIME`, read by the claim script and written into the record): it increases across
//!   claims of a key as long as the server clock does not step back. Every fenced step compares
//!   the whole token — nonce and counter — and a completion's fingerprint with the claim's.
//! - A claim is safe to re-send: the claim script given the nonce of the live claim returns
//!   that claim (with its counter), so the runtime can resolve a claim whose reply was lost
//!   (a response timeout, or a connection that died with the script in flight: both are
//!   reported as [`ReplyLost`]).
//!
//! # What it cannot guarantee
//! - **Durability is the server's.** With `appendonly no` a crash loses every record; use
//!   `appendonly yes` with `appendfsync always` (every acknowledged write survives a crash) or
//!   `everysec` (up to a second lost). A lost record lets a retry run again.
//! - **Failover can lose acknowledged writes**: replication is asynchronous, so a claim or a
//!   completion acknowledged by a primary that dies before replicating is gone on the promoted
//!   replica (`WAIT` narrows the window, it does not close it).
//! - **A paused process past its lease may run twice**: if a holder stalls (GC, SIGSTOP, a
//!   partition) longer than its lease, another request reclaims the key and runs the side
//!   effect. Fencing keeps the stored result the winner's; pass the fencing token downstream
//!   so the downstream system can reject the zombie's writes too.
//!
//! ```no_run
//! use idempotent_runtime::ValkeyStore;
//!
//! # async fn run() -> Result<(), idempotent_runtime::Error> {
//! let store = ValkeyStore::connect("redis://127.0.0.1:6379").await?;
//! let cluster = ValkeyStore::builder()
//!     .cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
//!     .prefix("payments:idem:")
//!     .connect()
//!     .await?;
//! # let _ = (store, cluster);
//! # Ok(())
//! # }
//! ```

mod cache;
mod connect;
mod format;

pub use connect::ValkeyStoreBuilder;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use sha2::{Digest, Sha256};

use crate::hex::push_hex;
use crate::store::{ReplyLost, lifetimes};
use crate::{
    Completed, CompletedRecord, Error, ExistingEntry, FencingToken, IdempotencyEntry,
    IdempotencyKey, IdempotencyStore, InsertResult, Processing,
};
use format::{State, decode_record, encode_record};

/// A script that writes: the `#!lua` shebang (so a full `noeviction` server refuses it before
/// it runs), the shared prelude, then its body — put together at build time.
macro_rules! writing_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                "#!lua\n",
                include_str!("valkey/prelude.lua"),
                include_str!($file)
            ))
        })
    };
}

static CLAIM: LazyLock<Script> = writing_script!("valkey/claim.lua");
static COMPLETE: LazyLock<Script> = writing_script!("valkey/complete.lua");
static RELEASE: LazyLock<Script> = writing_script!("valkey/release.lua");
static RENEW: LazyLock<Script> = writing_script!("valkey/renew.lua");
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=no-writes\n",
        include_str!("valkey/get.lua")
    ))
});

/// The default key prefix.
///
/// ```
/// use idempotent_runtime::store::valkey::DEFAULT_PREFIX;
///
/// assert_eq!(DEFAULT_PREFIX, "idempotent:");
/// ```
pub const DEFAULT_PREFIX: &str = "idempotent:";
/// The default number of connections to a standalone server: two, so the server runs one
/// connection's commands while the client reads the other's replies
/// ([`ValkeyStoreBuilder::connections`]).
///
/// ```
/// use idempotent_runtime::store::valkey::DEFAULT_CONNECTIONS;
///
/// assert_eq!(DEFAULT_CONNECTIONS, 2);
/// ```
pub const DEFAULT_CONNECTIONS: usize = 2;
/// The default timeout of every call (connect, and each script).
///
/// ```
/// use idempotent_runtime::store::valkey::DEFAULT_TIMEOUT;
///
/// assert_eq!(DEFAULT_TIMEOUT, std::time::Duration::from_secs(2));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A store on Valkey or Redis >= 7; see the [module docs](self) for its guarantees.
/// Cheap to clone (its multiplexed connections, shared).
///
/// ```no_run
/// use idempotent_runtime::{set_default_store, ValkeyStore};
///
/// # async fn start() -> Result<(), idempotent_runtime::Error> {
/// set_default_store(ValkeyStore::connect("redis://127.0.0.1:6379").await?)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ValkeyStore {
    connection: Connection,
    prefix: Arc<str>,
    /// The response timeout.
    timeout: Duration,
    /// The connection is the application's, whose own response timeout may be none: each call
    /// is bounded here. (Our own connections apply the timeout themselves, with no extra timer.)
    bound_calls: bool,
    /// Completed records kept in process memory (opt-in).
    cache: Option<Arc<cache::LocalCache>>,
}

#[derive(Clone)]
enum Connection {
    /// Multiplexed connections to one server, each reconnecting by itself after the server
    /// comes back.
    Single(Arc<Managers>),
    Cluster(ClusterConnection),
}

/// The connections of a standalone store, taken in turn by its calls: a second connection
/// lets the server work on one connection's commands while the client reads the other's
/// replies (see [`ValkeyStoreBuilder::connections`]).
struct Managers {
    first: ConnectionManager,
    others: Box<[ConnectionManager]>,
    next: AtomicUsize,
}

impl Managers {
    fn new(first: ConnectionManager, others: Vec<ConnectionManager>) -> Self {
        Self {
            first,
            others: others.into(),
            next: AtomicUsize::new(0),
        }
    }

    fn len(&self) -> usize {
        self.others.len() + 1
    }

    /// The next connection in turn.
    fn pick(&self) -> ConnectionManager {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.len();
        match turn.checked_sub(1).and_then(|i| self.others.get(i)) {
            Some(other) => other.clone(),
            None => self.first.clone(),
        }
    }
}

impl std::fmt::Debug for ValkeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyStore")
            .field(
                "mode",
                &match self.connection {
                    Connection::Single(_) => "standalone",
                    Connection::Cluster(_) => "cluster",
                },
            )
            .field(
                "connections",
                &match &self.connection {
                    Connection::Single(managers) => managers.len(),
                    Connection::Cluster(_) => 1,
                },
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("applications_connection", &self.bound_calls)
            .field("local_cache", &self.cache.is_some())
            .finish()
    }
}

impl ValkeyStore {
    /// Connects to a standalone server with the defaults: see [`ValkeyStoreBuilder::url`].
    ///
    /// # Errors
    /// As [`ValkeyStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().url(url).connect().await
    }

    /// A builder: prefix, timeout, cluster, eviction opt-out.
    pub fn builder() -> ValkeyStoreBuilder {
        ValkeyStoreBuilder::new()
    }

    /// The server key a record lives under: the prefix, then a hash tag made of the first
    /// 128 bits of SHA-256 of the key, in hex. Public so operators can find a record.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), idempotent_runtime::Error> {
    /// # let store = idempotent_runtime::ValkeyStore::connect("redis://127.0.0.1:6379").await?;
    /// let key = idempotent_runtime::IdempotencyKey::new("order-42")?;
    /// assert!(store.record_key(&key).starts_with("idempotent:{"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn record_key(&self, key: &IdempotencyKey) -> String {
        let digest = Sha256::digest(key.as_str().as_bytes());
        let mut out = String::with_capacity(self.prefix.len() + 34);
        out.push_str(&self.prefix);
        out.push('{');
        push_hex(&mut out, &digest[..16]);
        out.push('}');
        out
    }

    /// Runs `script` on `key` with the arguments `args` adds: EVALSHA, and after a NOSCRIPT
    /// (a flush or a restart) SCRIPT LOAD and once more. The command is built once, straight
    /// into its wire buffer.
    async fn invoke(
        &self,
        script: &Script,
        key: &str,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Value, Error> {
        let mut command = redis::cmd("EVALSHA");
        command.arg(script.get_hash()).arg(1).arg(key);
        args(&mut command);
        let result = match self.send(&command).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                match self.load(script).await {
                    Ok(_) => self.send(&command).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        result.map_err(from_redis)
    }

    /// Sends one command; a server error reply becomes an `Err`. Our connections apply the
    /// response timeout themselves; an application's is bounded here.
    async fn send(&self, command: &redis::Cmd) -> Result<Value, RedisError> {
        let reply = self.bounded(async {
            match self.connection.clone() {
                Connection::Single(managers) => managers.pick().req_packed_command(command).await,
                Connection::Cluster(mut c) => c.req_packed_command(command).await,
            }
        });
        reply.await.and_then(Value::extract_error)
    }

    /// Loads `script` (on every primary, for a cluster).
    async fn load(&self, script: &Script) -> Result<String, RedisError> {
        self.bounded(async {
            match self.connection.clone() {
                Connection::Single(managers) => script.load_async(&mut managers.pick()).await,
                Connection::Cluster(mut c) => script.load_async(&mut c).await,
            }
        })
        .await
    }

    /// `call`, bounded by the response timeout when the connection is the application's (a
    /// timeout is an I/O `TimedOut`, as the client reports its own).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        if !self.bound_calls {
            return call.await;
        }
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no reply within {:?}", self.timeout),
                )))
            })
    }
}

/// The record a reply carries: a bulk string, decoded (sharing the reply's buffer); anything
/// else is corrupt.
fn record(value: Option<Value>) -> Result<ExistingEntry, Error> {
    match value {
        Some(Value::BulkString(bytes)) => decode_record(bytes),
        other => Err(Error::Corrupt(format!("unexpected record reply {other:?}"))),
    }
}

/// The status word of a script reply (`"ok"`, `"stale"`, `"mismatch"`, `"corrupt"`).
fn status(reply: &Value) -> Result<(), Error> {
    let word = match reply {
        Value::BulkString(b) => b.as_slice(),
        Value::SimpleString(s) => s.as_bytes(),
        Value::Okay => b"ok",
        other => return Err(Error::Corrupt(format!("unexpected reply {other:?}"))),
    };
    match word {
        b"ok" => Ok(()),
        b"stale" => Err(Error::StaleFencingToken),
        b"mismatch" => Err(Error::FingerprintMismatch),
        b"corrupt" => Err(Error::Corrupt(
            "valkey record has missing or malformed fields".to_owned(),
        )),
        other => Err(Error::Corrupt(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// A token as the scripts compare it: nonce, then counter, big-endian (the record's bytes
/// 19..=42).
fn token_bytes(token: FencingToken) -> [u8; 24] {
    let mut out = [0; 24];
    out[..16].copy_from_slice(&token.nonce().to_be_bytes());
    out[16..].copy_from_slice(&token.counter().to_be_bytes());
    out
}

fn unavailable(message: impl Into<String>) -> Error {
    Error::StoreUnavailable(message.into().into())
}

/// A server or connection error in the vocabulary of the store trait.
fn from_redis(e: RedisError) -> Error {
    match e.code() {
        Some("WRONGTYPE") => {
            Error::Corrupt(format!("the record key holds another kind of value: {e}"))
        }
        Some("OOM") => unavailable(format!(
            "the server is out of memory (maxmemory reached under noeviction); nothing was written: {e}"
        )),
        // Sent, but no reply in time, or the connection died with the command in flight: the
        // script may have run. (A refused connection sent nothing.)
        _ if e.is_timeout() || (e.is_connection_dropped() && !e.is_connection_refusal()) => {
            Error::StoreUnavailable(Box::new(ReplyLost::new(e)))
        }
        _ => Error::StoreUnavailable(Box::new(e)),
    }
}

#[async_trait]
impl IdempotencyStore for ValkeyStore {
    async fn try_insert(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error> {
        let (_, lease) = lifetimes::claim(&entry)?;
        // Looked up by the key as given: a hit hashes nothing and allocates nothing.
        if let Some(done) = self.cache.as_ref().and_then(|c| c.get(key.as_str())) {
            return Ok(InsertResult::Exists(ExistingEntry::Completed(done)));
        }
        let record_key = self.record_key(key);
        let nonce = entry.claim_nonce();
        let id = format::claim_id(entry.fingerprint(), nonce);
        let sent_at = tokio::time::Instant::now();
        let reply = self
            .invoke(&CLAIM, &record_key, |c| {
                c.arg(id.as_slice()).arg(lease);
                if self.cache.is_some() {
                    c.arg(1);
                }
            })
            .await?;
        match reply {
            Value::Int(counter) => {
                let counter = u64::try_from(counter)
                    .map_err(|_| Error::Corrupt(format!("negative claim counter {counter}")))?;
                Ok(InsertResult::Claimed {
                    fencing_token: FencingToken::new(counter, nonce),
                    entry,
                })
            }
            Value::BulkString(bytes) => Ok(InsertResult::Exists(decode_record(bytes)?)),
            Value::Array(items) => {
                let mut items = items.into_iter();
                let existing = record(items.next())?;
                if let (Some(cache), ExistingEntry::Completed(done), Some(Value::Int(pttl))) =
                    (&self.cache, &existing, items.next())
                {
                    // PTTL: -1 (no expiry) and -2 (gone) are never cached.
                    if let Ok(ms @ 1..) = u64::try_from(pttl) {
                        let remaining = Duration::from_millis(ms);
                        cache.put(key.as_str(), done.clone(), sent_at, remaining);
                    }
                }
                Ok(InsertResult::Exists(existing))
            }
            other => Err(Error::Corrupt(format!("unexpected claim reply {other:?}"))),
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error> {
        let ttl = lifetimes::completion(&entry)?;
        let state = match entry.response() {
            Some(response) => State::Completed(response),
            None => State::NotReplayable,
        };
        let value = encode_record(entry.fingerprint(), token, state)?;
        let record_key = self.record_key(key);
        let sent_at = tokio::time::Instant::now();
        let reply = self
            .invoke(&COMPLETE, &record_key, |c| {
                c.arg(ttl).arg(value.as_slice());
            })
            .await?;
        status(&reply)?;
        if let Some(cache) = &self.cache {
            let done = CompletedRecord::new(entry.fingerprint(), entry.response().cloned());
            cache.put(key.as_str(), done, sent_at, Duration::from_millis(ttl));
        }
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey, token: FencingToken) -> Result<(), Error> {
        let record_key = self.record_key(key);
        let token = token_bytes(token);
        let reply = self
            .invoke(&RELEASE, &record_key, |c| {
                c.arg(token.as_slice());
            })
            .await?;
        status(&reply)
    }

    async fn renew(
        &self,
        key: &IdempotencyKey,
        token: FencingToken,
        lease: Duration,
    ) -> Result<(), Error> {
        let lease = lifetimes::lease(lease)?;
        let record_key = self.record_key(key);
        let token = token_bytes(token);
        let reply = self
            .invoke(&RENEW, &record_key, |c| {
                c.arg(token.as_slice()).arg(lease);
            })
            .await?;
        status(&reply)
    }

    async fn get(&self, key: &IdempotencyKey) -> Result<Option<ExistingEntry>, Error> {
        let record_key = self.record_key(key);
        match self.invoke(&GET, &record_key, |_| {}).await? {
            Value::Nil => Ok(None),
            value => record(Some(value)).map(Some),
        }
    }

    fn kind(&self) -> &'static str {
        "valkey"
    }

    fn detached(&self) -> Option<Arc<dyn IdempotencyStore>> {
        Some(Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    /// The prelude carries the largest accepted duration as a constant, and the claim checks
    /// a lease against its digits: both must be ours.
    #[test]
    fn scripts_know_the_largest_duration() {
        let ms = crate::MAX_DURATION.as_millis();
        let prelude = include_str!("valkey/prelude.lua");
        assert!(prelude.contains(&format!("local MAX_DURATION = {ms}\n")));
        let digits = ms.to_string();
        let claim = include_str!("valkey/claim.lua");
        let check = format!(
            "#lease > {0} or (#lease == {0} and lease > '{digits}')",
            digits.len()
        );
        assert!(claim.contains(&check), "{check}");
    }
}
