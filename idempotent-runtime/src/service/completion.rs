//! A claimed execution runs to completion even when its request is dropped (the client went
//! away, hyper cancelled the request's future): [`RunToCompletion`] polls it in place, inside
//! the request's own task, and only if it is dropped unfinished does it spawn the rest on the
//! current tokio runtime. The common path costs neither a task spawn nor waking another
//! worker thread to run it, and the handler still finishes and stores its result for the
//! retry when the caller is gone.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Error;
use crate::service::{Problem, ProblemKind};

/// `future`, run where it is polled; if dropped before it finished, spawned to finish.
pub(crate) struct RunToCompletion<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
}

impl<F> RunToCompletion<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F> Future for RunToCompletion<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// A panic that escaped `future` (the handler's own are caught inside the protocol) is a
    /// 500 problem, as a panicked task's would be.
    type Output = Result<F::Output, Problem>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.future.as_mut() else {
            // Polled after it finished: nothing left to run.
            return Poll::Ready(Err(Problem::new(
                ProblemKind::Internal,
                "a finished execution was polled again",
            )));
        };
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                self.future = None;
                Poll::Ready(Ok(output))
            }
            Err(_) => {
                self.future = None;
                Poll::Ready(Err(Problem::from(Error::HandlerPanicked)))
            }
        }
    }
}

impl<F> Drop for RunToCompletion<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(rest), Ok(runtime)) =
            (self.future.take(), tokio::runtime::Handle::try_current())
        {
            // Its output has no one to go to: the result is stored for the retry.
            drop(runtime.spawn(rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_in_place_and_finishes_after_being_dropped() {
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let run = RunToCompletion::new(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            done.fetch_add(1, Ordering::SeqCst);
            7
        });
        // Dropped while waiting: the rest is spawned and still finishes.
        let cut = tokio::time::timeout(Duration::from_millis(10), run).await;
        assert!(cut.is_err(), "cut short");
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 1, "finished detached");

        let in_place = RunToCompletion::new(async { 7 }).await;
        assert!(matches!(in_place, Ok(7)));
    }

    /// Dropped unfinished where there is no runtime to finish it on (the runtime is gone):
    /// the rest is dropped — no panic, and its claim lapses with its lease.
    #[test]
    fn dropped_without_a_runtime_it_is_dropped_not_a_panic() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(drops.clone());
        let mut run = RunToCompletion::new(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let polled = runtime.block_on(std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut run).poll(cx).is_pending())
        }));
        assert!(polled, "started and waiting");
        drop(runtime);
        drop(run);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the rest was dropped");
    }

    #[tokio::test]
    async fn a_panic_is_a_problem() {
        let escaped = std::hint::black_box(true);
        let run = RunToCompletion::new(async move {
            assert!(!escaped, "escaped");
        });
        let problem = run.await.expect_err("panicked");
        assert_eq!(problem.kind(), ProblemKind::HandlerPanicked);
    }
}
