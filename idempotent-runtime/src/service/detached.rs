//! Detached handlers in flight: a bound on how many may run at once (503 `overloaded` +
//! `Retry-After` beyond it, before anything is claimed), and [`shutdown`], which stops
//! admitting new ones and waits for those running to finish and store their results.
//!
//! Process-wide, like the tokio runtime a dropped request's handler is finished on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Problem, ProblemKind};

/// The default bound on detached handlers in flight.
///
/// ```
/// assert_eq!(idempotent_runtime::service::DEFAULT_MAX_DETACHED, 10_000);
/// ```
pub const DEFAULT_MAX_DETACHED: usize = 10_000;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_DETACHED);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static CLOSING: AtomicBool = AtomicBool::new(false);
static IDLE: Notify = Notify::const_new();

/// Bounds how many HTTP handlers may run detached at once (the attribute's and the layer's
/// together). A request beyond the bound is answered 503 `overloaded` with `Retry-After: 1`
/// before anything is claimed, so its retry runs normally. Default [`DEFAULT_MAX_DETACHED`].
///
/// ```standalone_crate
/// idempotent_runtime::service::set_max_detached(2_000);
/// ```
pub fn set_max_detached(limit: usize) {
    LIMIT.store(limit, Ordering::SeqCst);
}

/// Stops admitting detached handlers (new requests get 503 `overloaded` with `Retry-After`,
/// nothing claimed) and waits up to `grace` for those running to finish and store their
/// results; `true` when all did. Call it after the server stopped accepting connections (for
/// axum, after `serve(…).with_graceful_shutdown(…)` returned) and before the process exits: a
/// handler whose client went away still completes its key, and the retry after the restart
/// replays it.
///
/// ```standalone_crate
/// use std::time::Duration;
///
/// # async fn serve() {}
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// serve().await; // axum::serve(…).with_graceful_shutdown(…): no new connections
/// let finished = idempotent_runtime::service::shutdown(Duration::from_secs(30)).await;
/// assert!(finished, "every detached handler stored its result");
/// # }
/// ```
pub async fn shutdown(grace: Duration) -> bool {
    CLOSING.store(true, Ordering::SeqCst);
    let drained = async {
        loop {
            let idle = IDLE.notified();
            if IN_FLIGHT.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    };
    tokio::time::timeout(grace, drained).await.is_ok()
}

/// A detached handler counted in flight until dropped.
#[derive(Debug)]
pub(crate) struct Permit(());

impl Drop for Permit {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 {
            IDLE.notify_waiters();
        }
    }
}

/// A permit to run one handler detached, or the 503 to answer instead.
pub(crate) fn admit() -> Result<Permit, Problem> {
    if CLOSING.load(Ordering::SeqCst) {
        return Err(Problem::new(
            ProblemKind::Overloaded,
            "the service is shutting down; nothing was executed, retry with the same key",
        ));
    }
    let limit = LIMIT.load(Ordering::SeqCst);
    let admitted = IN_FLIGHT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n < limit).then_some(n + 1)
    });
    match admitted {
        Ok(_) => Ok(Permit(())),
        Err(_) => Err(Problem::new(
            ProblemKind::Overloaded,
            format!(
                "{limit} requests are running already; nothing was executed, retry with the same key"
            ),
        )),
    }
}
