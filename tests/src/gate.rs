//! [`Gate`]: a handler's rendezvous with its test, so tests order events with notifications
//! instead of sleeps.

use std::sync::Arc;

use tokio::sync::Notify;

/// The handler calls [`pass`](Self::pass): it says it entered, then waits until the test
/// [`open`](Self::open)s the gate. The test waits for [`entered`](Self::entered). Both signals
/// keep a permit, so neither side can miss the other.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    entered: Arc<Notify>,
    open: Arc<Notify>,
}

impl Gate {
    /// A closed gate.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// In the handler: signals that it entered, then waits for [`open`](Self::open).
    pub async fn pass(&self) {
        self.entered.notify_one();
        self.open.notified().await;
    }

    /// In the test: waits until a handler is inside [`pass`](Self::pass).
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// In the test: lets the handler waiting in [`pass`](Self::pass) (or the next one) go on.
    pub fn open(&self) {
        self.open.notify_one();
    }
}
