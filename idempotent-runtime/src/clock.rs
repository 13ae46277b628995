//! [`Clock`]: where a store reads the time, so tests can move it by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A monotonic clock: the time elapsed since an origin of the clock's choosing.
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now(), Duration::from_secs(3));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a clock",
    label = "implement `Clock` for it, or use `SystemClock` / `ManualClock`"
)]
pub trait Clock: fmt::Debug + Send + Sync {
    /// The time since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock, read the way the execution protocol reads it: through
/// `tokio::time::Instant`, which is `std::time::Instant` unless tokio's time is paused (tokio's
/// `test-util`, `#[tokio::test(start_paused = true)]`). So a store on this clock and the lease
/// heartbeat see one time, and a test with paused time moves both.
///
/// ```
/// use idempotent_runtime::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// assert!(clock.now() <= clock.now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, with millisecond resolution. For tests and
/// simulations ("virtual time").
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(31));
/// assert_eq!(clock.now() - before, Duration::from_secs(31));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (rounded down to whole milliseconds).
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}
