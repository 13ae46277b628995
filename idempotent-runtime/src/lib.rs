#![doc = include_str!("../../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod clock;
mod entry;
mod error;
mod fencing;
mod fingerprint;
mod key;
mod response;
pub mod store;
#[cfg(feature = "memory")]
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
pub use key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
pub use response::CachedResponse;
#[cfg(feature = "memory")]
pub use store::memory::{MemoryStore, MemoryStoreBuilder};
pub use store::{ExistingEntry, IdempotencyStore, InsertResult};
