//! [`ImmediateStore`]: the claim and the completion of a store that answers at once, called
//! without a future.

#[cfg(doc)]
use crate::IdempotencyStore;
use crate::{
    Completed, Error, FencingToken, IdempotencyEntry, IdempotencyKey, InsertResult, Processing,
};

/// A store whose claim and completion finish in the calling thread, without waiting: an
/// in-process store such as [`MemoryStore`](crate::MemoryStore). Offered through
/// [`IdempotencyStore::immediate`], it lets the runtime take a claim and complete it by plain
/// calls, where an `#[async_trait]` method boxes a future for each (two allocations and frees
/// per first call).
///
/// Each method must do **exactly** what its [`IdempotencyStore`] twin does, under the same
/// contract: the runtime calls one or the other. A store that may wait (for a server, a
/// lock held across an await) does not implement it.
///
/// ```
/// use idempotent_runtime::{Fingerprint, IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult, MemoryStore};
/// use idempotent_runtime::store::ImmediateStore;
///
/// let store = MemoryStore::new();
/// let now: &dyn ImmediateStore = store.immediate().expect("the memory store answers at once");
/// let key = IdempotencyKey::new("order-1")?;
/// let entry = IdempotencyEntry::new(Fingerprint::from_u128(1));
/// let claimed = now.try_insert_now(&key, entry)?;
/// assert!(matches!(claimed, InsertResult::Claimed { .. }));
/// # Ok::<(), idempotent_runtime::Error>(())
/// ```
pub trait ImmediateStore: Send + Sync {
    /// [`IdempotencyStore::try_insert`], answered now.
    ///
    /// # Errors
    /// As [`IdempotencyStore::try_insert`].
    fn try_insert_now(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Processing>,
    ) -> Result<InsertResult, Error>;

    /// [`IdempotencyStore::complete`], answered now.
    ///
    /// # Errors
    /// As [`IdempotencyStore::complete`].
    fn complete_now(
        &self,
        key: &IdempotencyKey,
        entry: IdempotencyEntry<Completed>,
        token: FencingToken,
    ) -> Result<(), Error>;
}
