// The README's examples use the macro, both stores and UUID keys: it is the crate doc (and
// doctested) when those features are on, as in the README's test command.
#![cfg_attr(
    all(feature = "macros", feature = "memory", feature = "uuid", feature = "valkey", feature = "axum"),
    doc = include_str!("../../README.md")
)]
#![cfg_attr(
    not(all(
        feature = "macros",
        feature = "memory",
        feature = "uuid",
        feature = "valkey"
    )),
    doc = "Run side effects at most once per idempotency key and replay the same result to every retry. See the README."
)]
#![cfg_attr(feature = "macros", doc = include_str!("observability.md"))]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod clock;
mod entry;
mod error;
mod fencing;
mod fingerprint;
#[cfg(any(feature = "macros", feature = "valkey"))]
mod hex;
mod key;
mod response;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod store;
#[cfg(any(feature = "memory", feature = "valkey"))]
mod sync;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use clock::{Clock, ManualClock, SystemClock};
pub use entry::{Completed, DEFAULT_LEASE, DEFAULT_TTL, EntryState, IdempotencyEntry, Processing};
pub use error::{BoxError, Error, MAX_DURATION, check_duration};
pub use fencing::FencingToken;
pub use fingerprint::{
    DefaultFingerprintStrategy, Fingerprint, FingerprintBuilder, FingerprintError,
    FingerprintStrategy,
};
#[cfg(feature = "macros")]
pub use key::StoredKey;
pub use key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
pub use response::CachedResponse;
#[cfg(feature = "memory")]
pub use store::memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteStore;
#[cfg(feature = "valkey")]
pub use store::valkey::{ValkeyStore, ValkeyStoreBuilder};
pub use store::{CompletedRecord, ExistingEntry, IdempotencyStore, InsertResult, ProcessingRecord};

#[cfg(feature = "macros")]
#[doc(hidden)]
pub mod __private;
#[cfg(feature = "macros")]
mod observe;
#[cfg(feature = "macros")]
mod protocol;
#[cfg(feature = "axum")]
pub mod service;

#[cfg(feature = "macros")]
#[doc = include_str!("idempotent.md")]
#[cfg_attr(feature = "axum", doc = include_str!("idempotent_http.md"))]
pub use idempotent_macros::idempotent;
#[cfg(feature = "macros")]
pub use protocol::default_store::{
    default_store, forbid_implicit_default_store, set_default_store,
};
#[cfg(feature = "macros")]
pub use protocol::{
    ClaimHandle, Concurrency, DEFAULT_MAX_BODY, Execution, Idempotent, current_claim, storage_key,
    with_execution,
};
