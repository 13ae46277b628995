//! The execution protocol (DESIGN §3), one idea per file: the options ([`Spec`]), the stored
//! key ([`storage_key`]), taking the claim or answering without running (`acquire`), running
//! the handler under it and completing or releasing (`run`), one store step made as a plain
//! call on a store that answers at once or as its future (`call`), the lease heartbeat
//! (`heartbeat`), claims whose reply was lost (`lost`), what a running handler knows of its
//! claim ([`current_claim`]), how results are stored (`codec`), a user's fingerprint
//! strategy (`strategy`), the default store, and the
//! public face, [`Idempotent`]. The macro calls `__private::execute`, the same protocol.

mod acquire;
mod builder;
mod call;
pub(crate) mod codec;
mod current;
pub(crate) mod default_store;
mod heartbeat;
mod lost;
mod report;
mod run;
mod spec;
mod stored_key;
pub(crate) mod strategy;
pub(crate) mod transaction;

use std::future::Future;

pub(crate) use acquire::{Step, acquire};
pub use builder::Idempotent;
use call::Call;
use codec::ResultCodec;
pub use current::{ClaimHandle, current_claim};
pub(crate) use report::record;
pub use report::{Execution, with_execution};
#[cfg(feature = "axum")]
pub(crate) use run::release_unstarted;
pub(crate) use run::run_claimed;
pub use spec::{Concurrency, DEFAULT_MAX_BODY, Spec};
pub use stored_key::KeyPrefix;
pub(crate) use stored_key::checked_storage_key;
#[cfg(feature = "axum")]
pub(crate) use stored_key::prefixed as prefixed_storage_key;
pub use stored_key::storage_key;

use crate::observe::{Observer, Outcome};
use crate::{Error, Fingerprint, IdempotencyStore, StoredKey};

/// Runs `handler` at most once per stored key ([`storage_key`]), per DESIGN §3. `R` is the
/// handler's result and `C` how it is stored. A key or fingerprint that could not be made is
/// answered without touching the store. Never panics; every failure is reported through
/// `C::error`.
pub async fn execute<R, C, F>(
    store: &dyn IdempotencyStore,
    spec: &Spec,
    operation: &str,
    stored_key: Result<StoredKey, Error>,
    fingerprint: Result<Fingerprint, Error>,
    handler: F,
) -> R
where
    C: ResultCodec<R>,
    F: Future<Output = R>,
{
    let observer = Observer::start(operation);
    let (stored_key, fingerprint) = match (stored_key, fingerprint) {
        (Ok(stored_key), Ok(fingerprint)) => (stored_key, fingerprint),
        (Err(error), _) | (_, Err(error)) => return answer::<R, C>(&observer, error),
    };
    observer
        .in_span(async {
            match acquire::<R, C>(&observer, store, spec, operation, stored_key, fingerprint).await
            {
                Step::Done(result) => result,
                // Boxed only once claimed: a replay or a conflict allocates nothing for it.
                Step::Claimed(claim) => {
                    run_claimed::<R, C, _>(&observer, store, spec, claim, Box::pin(handler)).await
                }
            }
        })
        .await
}

/// The answer that reports `error`, recorded as the execution's outcome (and as an event
/// when operators should see it).
pub(crate) fn answer<R, C: ResultCodec<R>>(observer: &Observer, error: Error) -> R {
    observer.outcome(Outcome::of(&error));
    observer.report_answer(&error);
    C::error(error)
}
