//! [`ImmediateStore`]: the claim and the completion of a store that answers at once, called
//! without a future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::StoreFuture;
use crate::{
    Completed, Error, FencingToken, IdempotencyEntry, IdempotencyKey, IdempotencyStore,
    InsertResult, Processing,
};

/// A store whose claim and completion finish in the calling thread, without waiting: an
/// in-process store such as [`MemoryStore`](crate::MemoryStore). Offered through
/// [`IdempotencyStore::immediate`], it lets the runtime take a claim and complete it by plain
/// calls, where an `#[async_trait]` method boxes a future for each (two allocations per first
/// call, a fifth of what the attribute adds on the memory store).
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

/// One store call: a call the store answers at once with `A` (made when first polled, so an
/// observer around it times the call), or the store's own future.
pub(crate) enum Call<'a, T, A, N> {
    /// The immediate call and its arguments, until it is made.
    Now(&'a dyn ImmediateStore, Option<(A, N)>),
    /// The store's future.
    Later(StoreFuture<'a, T>),
}

impl<'a, T, A, N> Call<'a, T, A, N>
where
    N: FnOnce(&'a dyn ImmediateStore, A) -> Result<T, Error>,
{
    /// `now` with `args` on the store's immediate face when it has one, else the future
    /// `later` makes of them.
    pub(crate) fn of(
        store: &'a dyn IdempotencyStore,
        args: A,
        now: N,
        later: impl FnOnce(A) -> StoreFuture<'a, T>,
    ) -> Self {
        match store.immediate() {
            Some(immediate) => Self::Now(immediate, Some((args, now))),
            None => Self::Later(later(args)),
        }
    }
}

impl<'a, T, A, N> Future for Call<'a, T, A, N>
where
    A: Unpin,
    N: FnOnce(&'a dyn ImmediateStore, A) -> Result<T, Error> + Unpin,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Now(store, call) => Poll::Ready(match call.take() {
                Some((args, call)) => call(*store, args),
                None => Err(Error::StoreUnavailable(
                    "a store call was polled after it completed".into(),
                )),
            }),
            Self::Later(future) => future.as_mut().poll(cx),
        }
    }
}
