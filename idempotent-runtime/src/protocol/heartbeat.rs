//! The lease heartbeat: the handler raced against a loop that renews its claim.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::current::Lease;
use crate::observe::{Observer, Severity, store_call};
use crate::{Error, FencingToken, IdempotencyKey, IdempotencyStore};

/// What the renewal loop needs: the claim, its lease, and where to tell what happened.
#[derive(Clone, Copy)]
pub(super) struct Renewals<'a> {
    pub(super) observer: &'a Observer,
    pub(super) store: &'a dyn IdempotencyStore,
    pub(super) key: &'a IdempotencyKey,
    pub(super) token: FencingToken,
    pub(super) lease: Duration,
    pub(super) state: &'a Lease,
}

/// Runs `handler` while `renewals` keeps its claim alive. The handler is polled first, so one
/// that finishes on its first poll never starts the loop (and never makes a timer); the loop
/// stops when the handler finishes or its future is dropped. The loop is boxed when it starts:
/// held in place, its timer and its renewal would be in this future (and in every future that
/// awaits it) even for the handlers that never wait.
pub(super) async fn with_heartbeat<F: Future>(renewals: Renewals<'_>, handler: F) -> F::Output {
    let mut handler = pin!(handler);
    let mut renewing = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = handler.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        // The loop never ends: polling it drives its timer and its renewal.
        let renewing = renewing.get_or_insert_with(|| Box::pin(renew_forever(renewals)));
        let _ = renewing.as_mut().poll(cx);
        Poll::Pending
    })
    .await
}

/// Every `lease / 3`, renews the claim. A renewal that succeeds moves the local lease
/// deadline to when it was sent plus the lease; a refused one marks the claim lost (the
/// handler sees it through [`crate::current_claim`]); a failed one is tried at the next tick.
async fn renew_forever(r: Renewals<'_>) -> Infallible {
    let period = r.lease / 3;
    loop {
        tokio::time::sleep(period).await;
        let sent = Instant::now();
        let renewed = store_call(
            r.store.kind(),
            "renew",
            r.store.renew(r.key, r.token, r.lease),
        );
        match renewed.await {
            Ok(()) => r.state.renewed(sent, r.lease),
            Err(Error::StaleFencingToken) => {
                r.state.mark_lost();
                r.observer.report(
                    Severity::Warn,
                    "lease renewal refused: the claim lapsed and may belong to another request",
                    &Error::StaleFencingToken,
                );
            }
            Err(e) => r
                .observer
                .report(Severity::Warn, "lease renewal failed", &e),
        }
    }
}
