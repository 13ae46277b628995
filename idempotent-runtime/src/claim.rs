//! [`current_claim`]: what a running handler can learn about its own claim.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use crate::FencingToken;

thread_local! {
    static CURRENT: RefCell<Option<Arc<ClaimState>>> = const { RefCell::new(None) };
}

#[derive(Debug)]
pub(crate) struct ClaimState {
    token: FencingToken,
    lost: AtomicBool,
    renewals: AtomicU32,
}

impl ClaimState {
    pub(crate) fn new(token: FencingToken) -> Arc<Self> {
        Arc::new(Self {
            token,
            lost: AtomicBool::new(false),
            renewals: AtomicU32::new(0),
        })
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub(crate) fn count_renewal(&self) {
        self.renewals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn renewals(&self) -> u32 {
        self.renewals.load(Ordering::Relaxed)
    }
}

/// The claim of the idempotent execution running on this task: its fencing token, and whether
/// the claim was lost (a renewal was rejected because the lease lapsed and another request took
/// the key over; the handler should stop and commit nothing). From [`current_claim`].
#[derive(Debug, Clone)]
pub struct ClaimHandle(Arc<ClaimState>);

impl ClaimHandle {
    /// The fencing token of this claim; pass it downstream to fence writes.
    #[must_use]
    pub fn fencing_token(&self) -> FencingToken {
        self.0.token
    }

    /// Whether a lease renewal was rejected: the key may now belong to another request.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.0.lost.load(Ordering::SeqCst)
    }

    /// How many times the lease was renewed so far.
    #[must_use]
    pub fn renewals(&self) -> u32 {
        self.0.renewals.load(Ordering::Relaxed)
    }
}

/// The claim of the idempotent execution whose handler is being polled on this thread, or
/// `None` outside a handler. Visible inside the handler's own future (not in tasks it spawns).
///
/// ```
/// use idempotent_runtime::{current_claim, Idempotent, IdempotencyKey, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idempotent_runtime::Error> {
/// assert!(current_claim().is_none());
/// let store = MemoryStore::new();
/// let key = IdempotencyKey::new("k-1")?;
/// let counter = Idempotent::new("orders.pay")
///     .store(&store)
///     .run(&key, &"order #1", async {
///         let claim = current_claim().expect("inside the handler");
///         Ok::<u64, idempotent_runtime::Error>(claim.fencing_token().counter())
///     })
///     .await?;
/// assert!(counter > 0);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn current_claim() -> Option<ClaimHandle> {
    CURRENT.with(|c| c.borrow().clone().map(ClaimHandle))
}

/// The handler panicked; the panic was caught so the claim is left to lapse.
#[derive(Debug)]
pub(crate) struct Panicked;

/// Polls a handler with its claim visible through [`current_claim`], catching panics.
pub(crate) struct Guarded<F> {
    inner: Pin<Box<F>>,
    claim: Arc<ClaimState>,
}

impl<F> Guarded<F> {
    pub(crate) fn new(inner: F, claim: Arc<ClaimState>) -> Self {
        Self {
            inner: Box::pin(inner),
            claim,
        }
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let claim = self.claim.clone();
        let previous = CURRENT.with(|c| c.replace(Some(claim)));
        let polled = catch_unwind(AssertUnwindSafe(|| self.inner.as_mut().poll(cx)));
        CURRENT.with(|c| *c.borrow_mut() = previous);
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(Panicked)),
        }
    }
}
