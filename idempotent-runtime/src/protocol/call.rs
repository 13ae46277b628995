//! [`Call`]: one store step as the protocol makes it — a plain call on a store that answers at
//! once ([`ImmediateStore`]), else the store's future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::store::{ImmediateStore, StoreFuture};
use crate::{Error, IdempotencyStore};

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
