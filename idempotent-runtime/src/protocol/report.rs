//! [`with_execution`]: what one call did — ran its handler, or was answered from the store —
//! told to a caller who asks, without changing the fn's `Result<T, E>`.

use std::cell::Cell;
use std::future::Future;

use crate::FencingToken;
use crate::observe::Outcome;

/// What one idempotent call did, from [`with_execution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Execution {
    /// This call claimed the key and ran the handler under `fencing_token`; its result is the
    /// one retries get (or, if it could not be stored, this caller's alone).
    Executed {
        /// The token the handler ran under.
        fencing_token: FencingToken,
    },
    /// The key was completed by an earlier call with the same request: its stored result was
    /// returned, and the handler did not run.
    Replayed,
    /// This call ran the handler, but its claim had lapsed and another call completed the
    /// key: the answer is that call's result (the one every retry gets).
    Superseded {
        /// The token this call's handler ran under.
        fencing_token: FencingToken,
    },
}

tokio::task_local! {
    static REPORT: Cell<Option<Execution>>;
}

/// Runs `call` and tells what the idempotent execution in it did: `None` when it answered
/// with an error before or instead of running (in flight, key reused, store unavailable) or
/// released its claim (the handler returned `Err`). Wrap one call; if `call` makes several, the
/// one that finished last is told (for nested calls, the outer one). HTTP mode has its own
/// answer: the `Idempotent-Replayed` header.
///
/// ```
/// use idempotent_runtime::{idempotent, with_execution, Error, Execution, MemoryStore};
///
/// #[idempotent(key = key, store = store)]
/// async fn charge(store: &MemoryStore, key: &str, cents: u64) -> Result<u64, Error> {
///     Ok(cents)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let (first, ran) = with_execution(charge(&store, "k-report", 500)).await;
/// assert!(matches!(ran, Some(Execution::Executed { .. })));
/// let (retry, replayed) = with_execution(charge(&store, "k-report", 500)).await;
/// assert_eq!(replayed, Some(Execution::Replayed));
/// assert_eq!(first.ok(), retry.ok());
/// # }
/// ```
pub async fn with_execution<F: Future>(call: F) -> (F::Output, Option<Execution>) {
    REPORT
        .scope(Cell::new(None), async {
            let output = call.await;
            (output, REPORT.with(Cell::get))
        })
        .await
}

/// Records what the execution running on this task did (nothing without [`with_execution`]).
pub(crate) fn record(outcome: Option<Outcome>, token: Option<FencingToken>) {
    let execution = match (outcome, token) {
        (Some(Outcome::Replayed), _) => Some(Execution::Replayed),
        (
            Some(Outcome::Executed | Outcome::NotReplayable | Outcome::StoreError),
            Some(fencing_token),
        ) => Some(Execution::Executed { fencing_token }),
        (Some(Outcome::Stale), Some(fencing_token)) => {
            Some(Execution::Superseded { fencing_token })
        }
        _ => None,
    };
    let _ = REPORT.try_with(|report| report.set(execution));
}
