//! [`Spec`]: the options of an execution, and [`Concurrency`].

use std::time::Duration;

use crate::{DEFAULT_LEASE, DEFAULT_TTL};

/// The largest result kept for replay, unless configured: 1 MiB.
///
/// ```
/// use idempotent_runtime::{DEFAULT_MAX_BODY, Idempotent};
///
/// let op = Idempotent::new("reports.build").max_body(4 * DEFAULT_MAX_BODY);
/// # let _ = op;
/// ```
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// What a request does when another request with its key is still running.
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::{Concurrency, Idempotent};
///
/// // A double click waits for the first request and gets its answer instead of a 409.
/// let op = Idempotent::new("orders.pay").concurrency(Concurrency::Wait(Duration::from_secs(5)));
/// # let _ = op;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Answer at once with [`Error::InFlight`](crate::Error::InFlight) (HTTP 409). The default.
    Reject,
    /// Wait up to this long for the other request to finish, then replay its result (or
    /// [`Error::InFlight`](crate::Error::InFlight) at the timeout).
    Wait(Duration),
}

/// The options of an execution: what the attribute says. `const`-constructible, so the
/// macro emits it as a `static`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub(super) ttl: Duration,
    pub(super) lease: Duration,
    pub(super) concurrency: Concurrency,
    pub(super) max_body: usize,
}

impl Spec {
    /// The defaults: TTL 24 h, lease 30 s, reject concurrent requests, keep results up to
    /// 1 MiB.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            concurrency: Concurrency::Reject,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Sets the TTL.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lease.
    #[must_use]
    pub const fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the policy for concurrent requests.
    #[must_use]
    pub const fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the largest result kept for replay.
    #[must_use]
    pub const fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }
}

impl Default for Spec {
    fn default() -> Self {
        Self::new()
    }
}
