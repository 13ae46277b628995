//! The observation of executions: spans, events and metrics. What operators see is documented
//! in the crate docs, section "Observability" (`observability.md`); here is how it is made.
//! With both features off every item here is empty and inlined away.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Error, FencingToken, IdempotencyKey};

/// How one execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Executed,
    Replayed,
    InFlight,
    Mismatch,
    Stale,
    NotReplayable,
    Released,
    Panicked,
    StoreError,
    RejectedKey,
}

impl Outcome {
    /// The label value.
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Replayed => "replayed",
            Self::InFlight => "in_flight",
            Self::Mismatch => "mismatch",
            Self::Stale => "stale",
            Self::NotReplayable => "not_replayable",
            Self::Released => "released",
            Self::Panicked => "panicked",
            Self::StoreError => "store_error",
            Self::RejectedKey => "rejected_key",
        }
    }

    /// The outcome of a handler whose result was stored: replayable, or done-not-replayable.
    pub(crate) fn completed(replayable: bool) -> Self {
        if replayable {
            Self::Executed
        } else {
            Self::NotReplayable
        }
    }

    /// The outcome an error answer stands for.
    pub(crate) fn of(error: &Error) -> Self {
        match error {
            Error::InFlight => Self::InFlight,
            Error::FingerprintMismatch => Self::Mismatch,
            Error::StaleFencingToken => Self::Stale,
            Error::NotReplayable => Self::NotReplayable,
            Error::HandlerPanicked => Self::Panicked,
            Error::InvalidKey(_) | Error::Fingerprint(_) => Self::RejectedKey,
            Error::StoreUnavailable(_)
            | Error::Corrupt(_)
            | Error::CapacityExceeded { .. }
            | Error::InvalidDuration { .. }
            | Error::NoStore
            | Error::Misconfigured(_)
            | Error::DefaultStoreAlreadySet => Self::StoreError,
        }
    }
}

/// How loud an event for operators is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Something failed that a retry or the operator may fix (an unreachable store).
    Warn,
    /// Something failed that needs a look (a corrupt record, a panic, a lost result).
    Error,
}

/// What the events of one execution say besides their message: the operation and the hashed
/// stored key (as on the span, so they stand alone when the span is filtered out).
#[cfg(feature = "tracing")]
#[derive(Debug)]
struct EventContext {
    operation: Box<str>,
    key: std::sync::OnceLock<Box<str>>,
}

/// The observation of one execution: its span and its metric labels.
#[derive(Debug, Clone)]
pub(crate) struct Observer {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    /// `None` when no subscriber was ever set: nothing to tell.
    #[cfg(feature = "tracing")]
    context: Option<std::sync::Arc<EventContext>>,
    /// The operation label, or `None` when no recorder is installed.
    #[cfg(feature = "metrics")]
    operation: Option<std::sync::Arc<str>>,
    /// The claim's token, once taken: what [`crate::with_execution`] reports with the outcome.
    token: ClaimedToken,
}

/// The token of an execution's claim, written once by its holder when the claim is taken and
/// read with the outcome, from the same task. Plain atomics: a `OnceLock` ran a `Once` (two
/// read-modify-writes) on every claim, for a value that has one writer.
#[derive(Debug, Default)]
struct ClaimedToken {
    taken: AtomicBool,
    counter: AtomicU64,
    nonce: [AtomicU64; 2],
}

impl ClaimedToken {
    fn set(&self, token: FencingToken) {
        let nonce = token.nonce();
        self.counter.store(token.counter(), Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation, reason = "the nonce's two halves")]
        {
            self.nonce[0].store(nonce as u64, Ordering::Relaxed);
            self.nonce[1].store((nonce >> 64) as u64, Ordering::Relaxed);
        }
        self.taken.store(true, Ordering::Release);
    }

    fn get(&self) -> Option<FencingToken> {
        if !self.taken.load(Ordering::Acquire) {
            return None;
        }
        let nonce = u128::from(self.nonce[0].load(Ordering::Relaxed))
            | u128::from(self.nonce[1].load(Ordering::Relaxed)) << 64;
        Some(FencingToken::new(
            self.counter.load(Ordering::Relaxed),
            nonce,
        ))
    }
}

impl Clone for ClaimedToken {
    fn clone(&self) -> Self {
        let copy = Self::default();
        if let Some(token) = self.get() {
            copy.set(token);
        }
        copy
    }
}

/// Whether a `metrics` recorder is installed. The facade answers calls without one with its
/// `NoopRecorder`, a zero-sized type: recording through it would still build keys, allocate
/// labels and read the clock, so the runtime skips all of that when the recorder in place is
/// zero-sized (a real recorder has state).
#[cfg(feature = "metrics")]
#[inline]
fn metrics_on() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

impl Observer {
    /// Starts observing an execution of `operation`.
    #[inline]
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn start(operation: &str) -> Self {
        // A new execution on this task: nothing to report until it ends.
        crate::protocol::record(None, None);
        Self {
            #[cfg(feature = "tracing")]
            context: tracing::dispatcher::has_been_set().then(|| {
                std::sync::Arc::new(EventContext {
                    operation: operation.into(),
                    key: std::sync::OnceLock::new(),
                })
            }),
            #[cfg(feature = "tracing")]
            span: if tracing::dispatcher::has_been_set() {
                tracing::info_span!(
                    "idempotent.execution",
                    operation,
                    otel.name = operation,
                    key = tracing::field::Empty,
                    outcome = tracing::field::Empty,
                    fencing_token = tracing::field::Empty,
                    lease_renewals = tracing::field::Empty,
                )
            } else {
                tracing::Span::none()
            },
            #[cfg(feature = "metrics")]
            operation: metrics_on().then(|| operation.into()),
            token: ClaimedToken::default(),
        }
    }

    /// Runs `future` inside the execution's span.
    #[inline]
    pub(crate) fn in_span<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        #[cfg(feature = "tracing")]
        {
            // Without a subscriber the future runs as it is: no wrapper to move it into.
            if self.span.is_disabled() {
                Scoped::Plain { future }
            } else {
                Scoped::Traced {
                    future: tracing::Instrument::instrument(future, self.span.clone()),
                }
            }
        }
        #[cfg(not(feature = "tracing"))]
        {
            future
        }
    }

    /// Records the (hashed) stored key.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn key(&self, stored_key: &IdempotencyKey) {
        #[cfg(feature = "tracing")]
        {
            let short = stored_key.as_str().get(..16).unwrap_or_default();
            self.span.record("key", short);
            if let Some(context) = &self.context {
                let _ = context.key.set(short.into());
            }
        }
    }

    /// Tells operators that `message` happened because of `error`: a WARN or ERROR event
    /// (feature `tracing`) with the operation, the hashed key and the error's text — never the
    /// client's key, never a body.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn report(
        &self,
        severity: Severity,
        message: &'static str,
        error: &dyn std::fmt::Display,
    ) {
        #[cfg(feature = "tracing")]
        if let Some(context) = &self.context {
            let key = context.key.get().map_or("", |k| &**k);
            event(severity, &context.operation, key, message, error);
        }
    }

    /// Reports an error answer that operators should see (store failures, corrupt records,
    /// panics, lost claims, misconfiguration); a client's own mistakes are not reported.
    pub(crate) fn report_answer(&self, error: &Error) {
        let (severity, message) = match error {
            Error::StoreUnavailable(_) | Error::CapacityExceeded { .. } => (
                Severity::Warn,
                "idempotency store unavailable: the request was refused and nothing ran",
            ),
            Error::Corrupt(_) => (
                Severity::Error,
                "stored idempotency record unreadable: the request was refused and nothing ran",
            ),
            Error::HandlerPanicked => (
                Severity::Error,
                "idempotent handler panicked: its key is held until its lease lapses",
            ),
            Error::StaleFencingToken => (
                Severity::Warn,
                "the claim lapsed before its result was stored, and no result is stored for the key",
            ),
            Error::InvalidDuration { .. }
            | Error::NoStore
            | Error::Misconfigured(_)
            | Error::DefaultStoreAlreadySet => (Severity::Error, "idempotency misconfigured"),
            _ => return,
        };
        self.report(severity, message, error);
    }

    /// Records a claim; the returned guard counts it as in flight until dropped.
    #[inline]
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn claimed(&self, token: FencingToken) -> InFlight {
        self.token.set(token);
        #[cfg(feature = "tracing")]
        self.span.record("fencing_token", token.counter());
        #[cfg(feature = "metrics")]
        if self.operation.is_some() {
            metrics::gauge!("idempotent_in_flight_claims").increment(1);
        }
        InFlight {
            #[cfg(feature = "metrics")]
            counted: self.operation.is_some(),
        }
    }

    /// Records how many times the claim's lease was renewed.
    #[inline]
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn renewals(&self, renewals: u32) {
        #[cfg(feature = "tracing")]
        self.span.record("lease_renewals", renewals);
        #[cfg(feature = "metrics")]
        if let (Some(operation), true) = (&self.operation, renewals > 0) {
            metrics::counter!("idempotent_lease_renewals_total", "operation" => operation.to_string())
                .increment(u64::from(renewals));
        }
    }

    /// Records how the execution ended.
    #[inline]
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn outcome(&self, outcome: Outcome) {
        crate::protocol::record(Some(outcome), self.token.get());
        #[cfg(feature = "tracing")]
        self.span.record("outcome", outcome.as_str());
        #[cfg(feature = "metrics")]
        if let Some(operation) = &self.operation {
            let operation = operation.to_string();
            if outcome == Outcome::Stale {
                metrics::counter!("idempotent_stale_completions_total", "operation" => operation.clone())
                    .increment(1);
            }
            metrics::counter!(
                "idempotent_executions_total",
                "operation" => operation,
                "outcome" => outcome.as_str(),
            )
            .increment(1);
        }
    }
}

/// A WARN or ERROR event for operators, outside any execution's span (work the runtime does
/// in the background). `key` is the hashed stored key, never the client's.
#[inline]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn event(
    severity: Severity,
    operation: &str,
    key: &str,
    message: &'static str,
    error: &dyn std::fmt::Display,
) {
    #[cfg(feature = "tracing")]
    {
        let key = key.get(..16).unwrap_or(key);
        match severity {
            Severity::Warn => tracing::warn!(operation, key, error = %error, "{message}"),
            Severity::Error => tracing::error!(operation, key, error = %error, "{message}"),
        }
    }
}

/// Counts a claim as in flight while alive (a dropped handler future drops it too).
#[derive(Debug)]
pub(crate) struct InFlight {
    #[cfg(feature = "metrics")]
    counted: bool,
}

impl Drop for InFlight {
    #[inline]
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if self.counted {
            metrics::gauge!("idempotent_in_flight_claims").decrement(1);
        }
    }
}

#[cfg(feature = "tracing")]
pin_project_lite::pin_project! {
    /// A future inside the execution's span, or as it is when nobody listens.
    #[project = ScopedProj]
    #[derive(Debug)]
    pub(crate) enum Scoped<F> {
        Plain { #[pin] future: F },
        Traced { #[pin] future: tracing::instrument::Instrumented<F> },
    }
}

#[cfg(feature = "tracing")]
impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        match self.project() {
            ScopedProj::Plain { future } => future.poll(cx),
            ScopedProj::Traced { future } => future.poll(cx),
        }
    }
}

/// Runs one store call as a child span and records its latency.
#[inline]
#[cfg_attr(
    not(any(feature = "tracing", feature = "metrics")),
    allow(unused_variables)
)]
pub(crate) fn store_call<F: Future>(store: &'static str, op: &'static str, call: F) -> Timed<F> {
    #[cfg(feature = "tracing")]
    let span = tracing::dispatcher::has_been_set()
        .then(|| tracing::debug_span!("idempotent.store", store, op))
        .filter(|span| !span.is_disabled());
    #[cfg(not(feature = "tracing"))]
    let span = ();
    #[cfg(feature = "metrics")]
    let start = metrics_on().then(|| (std::time::Instant::now(), store, op));
    #[cfg(not(feature = "metrics"))]
    let start = ();
    Timed { call, span, start }
}

pin_project_lite::pin_project! {
    /// A store call, observed: a plain poll of the call when nobody listens.
    #[derive(Debug)]
    pub(crate) struct Timed<F> {
        #[pin]
        call: F,
        span: SpanSlot,
        start: StartSlot,
    }
}

/// The store call's span, when tracing is compiled in (pin-project-lite takes no `cfg` on
/// fields, so the slots change type instead).
#[cfg(feature = "tracing")]
type SpanSlot = Option<tracing::Span>;
#[cfg(not(feature = "tracing"))]
type SpanSlot = ();
/// When the store call started, and its labels, when metrics are compiled in.
#[cfg(feature = "metrics")]
type StartSlot = Option<(std::time::Instant, &'static str, &'static str)>;
#[cfg(not(feature = "metrics"))]
type StartSlot = ();

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        #[cfg_attr(
            not(any(feature = "tracing", feature = "metrics")),
            allow(unused_variables, clippy::let_unit_value)
        )]
        let this = self.project();
        #[cfg(feature = "tracing")]
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let out = std::task::ready!(this.call.poll(cx));
        #[cfg(feature = "metrics")]
        if let Some((start, store, op)) = this.start.take() {
            metrics::histogram!("idempotent_store_seconds", "store" => store, "op" => op)
                .record(start.elapsed().as_secs_f64());
        }
        std::task::Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::ClaimedToken;
    use crate::FencingToken;

    /// A token taken is read back whole (both halves of the nonce), a clone keeps it, and
    /// none is read before one is taken.
    #[test]
    fn a_claimed_token_is_read_back_whole() {
        let cell = ClaimedToken::default();
        assert_eq!(cell.get(), None);
        assert_eq!(cell.clone().get(), None);
        let token = FencingToken::new(u64::MAX - 7, (0xfeed_u128 << 64) | 0xbeef);
        cell.set(token);
        assert_eq!(cell.get(), Some(token));
        assert_eq!(cell.clone().get(), Some(token));
    }
}
