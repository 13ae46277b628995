//! [`current_claim`]: what a running handler can learn about its own claim, and the [`Lease`]
//! the holder tracks for it.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::FencingToken;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Lease>>> = const { RefCell::new(None) };
}

/// A held claim as its holder tracks it: the token, whether a renewal was refused, how many
/// succeeded, and the local lease deadline.
#[derive(Debug)]
pub(crate) struct Lease {
    token: FencingToken,
    lost: AtomicBool,
    renewals: AtomicU32,
    /// When the claim was sent: the lease can only have started after it.
    origin: Instant,
    /// The local lease deadline, in nanoseconds after `origin`: when the claim (or the last
    /// successful renewal) was *sent*, plus the lease. The store's lease started no earlier,
    /// so past this instant the lease may have lapsed, whatever the store says later.
    deadline: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Lease {
    /// The state of a claim sent at `sent` for `lease`.
    pub(crate) fn new(token: FencingToken, sent: Instant, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            token,
            lost: AtomicBool::new(false),
            renewals: AtomicU32::new(0),
            origin: sent,
            deadline: AtomicU64::new(nanos(lease)),
        })
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// A renewal sent at `sent` for `lease` succeeded.
    pub(crate) fn renewed(&self, sent: Instant, lease: Duration) {
        self.renewals.fetch_add(1, Ordering::Relaxed);
        let deadline = nanos(sent.saturating_duration_since(self.origin) + lease);
        self.deadline.fetch_max(deadline, Ordering::SeqCst);
    }

    /// How long the lease surely holds from now; zero once it may have lapsed or was lost.
    pub(crate) fn remaining(&self) -> Duration {
        if self.lost.load(Ordering::SeqCst) {
            return Duration::ZERO;
        }
        let deadline = self.origin + Duration::from_nanos(self.deadline.load(Ordering::SeqCst));
        deadline.saturating_duration_since(Instant::now())
    }

    pub(crate) fn renewals(&self) -> u32 {
        self.renewals.load(Ordering::Relaxed)
    }
}

/// The claim of the idempotent execution running on this task: its fencing token, and whether
/// the claim may be lost. From [`current_claim`].
///
/// The runtime renews the lease in the background; but a process that stalls (a GC pause, a
/// SIGSTOP, a blocked thread) renews nothing, and another request may take the key over
/// meanwhile. So before it commits an effect that must not happen twice, a handler asks
/// [`is_lost`](Self::is_lost) (or [`lease_remaining`](Self::lease_remaining)): the answer is
/// computed locally from when the claim and its renewals were *sent*, so it is right even
/// before any renewal was refused.
///
/// ```
/// use idempotent_runtime::{current_claim, Error, Idempotent, IdempotencyKey, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let store = MemoryStore::new();
/// let key = IdempotencyKey::new("k-claim")?;
/// let safe = Idempotent::new("ship").store(&store).run(&key, &(), async {
///     let claim = current_claim().ok_or(Error::NotReplayable)?;
///     Ok::<bool, Error>(!claim.is_lost() && claim.lease_remaining() > std::time::Duration::ZERO)
/// }).await?;
/// assert!(safe);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClaimHandle(Arc<Lease>);

impl ClaimHandle {
    /// The fencing token of this claim; pass it downstream to fence writes.
    #[must_use]
    pub fn fencing_token(&self) -> FencingToken {
        self.0.token
    }

    /// Whether the claim may be lost: a renewal was rejected, or the lease may have lapsed
    /// (no renewal succeeded within a lease of the last one sent). The key may now belong to
    /// another request: commit nothing.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.0.remaining().is_zero()
    }

    /// How long the claim surely holds from now: zero once it [`is_lost`](Self::is_lost).
    /// Compare it with how long the commit takes.
    #[must_use]
    pub fn lease_remaining(&self) -> Duration {
        self.0.remaining()
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
///
/// The handler comes pinned (`Unpin`: boxed once, where it enters the protocol), so polling it
/// here allocates nothing.
pub(crate) struct Guarded<F> {
    inner: F,
    /// The claim; lent to [`CURRENT`] while the handler is polled (moved there and back, so a
    /// poll counts no references).
    claim: Option<Arc<Lease>>,
}

impl<F> Guarded<F> {
    pub(crate) fn new(inner: F, claim: Arc<Lease>) -> Self {
        Self {
            inner,
            claim: Some(claim),
        }
    }
}

impl<F: Future + Unpin> Future for Guarded<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let claim = self.claim.take();
        let previous = CURRENT.with(|c| c.replace(claim));
        let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.inner).poll(cx)));
        // Ours back, whatever the handler did to the slot (a nested execution restores its own).
        self.claim = CURRENT.with(|c| c.replace(previous));
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(Panicked)),
        }
    }
}
