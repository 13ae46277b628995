//! The store conformance suite: one set of checks every [`IdempotencyStore`] must pass, so the
//! stores cannot drift apart. A third-party store runs it too (feature `conformance`).
//!
//! A [`Harness`] gives the suite a fresh store and a way to let time pass for it: a manual
//! clock for an in-process store, a real sleep for a server. Each check uses its own random
//! keys, so one store can serve all of them.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use idempotent_runtime::{conformance, ManualClock, MemoryStore};
//!
//! struct Memory { clock: Arc<ManualClock>, store: MemoryStore }
//!
//! impl conformance::Harness for Memory {
//!     type Store = MemoryStore;
//!     fn store(&self) -> &MemoryStore { &self.store }
//!     async fn advance(&self, by: Duration) { self.clock.advance(by) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt").block_on(async {
//! let clock = Arc::new(ManualClock::new());
//! let harness = Memory { store: MemoryStore::builder().clock(clock.clone()).build(), clock };
//! conformance::run_all(&harness).await.expect("MemoryStore conforms");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::{
    CompletedRecord, Error, ExistingEntry, FencingToken, Fingerprint, IdempotencyEntry,
    IdempotencyKey, IdempotencyStore, InsertResult, Processing,
};

/// What the suite needs from a store under test.
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: IdempotencyStore;

    /// The store. Every check uses fresh keys, so it may be shared by all checks.
    fn store(&self) -> &Self::Store;

    /// Lets `by` pass on the store's clock (advance a manual clock, or sleep).
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;

    /// The lease the checks use; a real server needs one long enough to outlast a round
    /// trip. Default 300 ms.
    fn lease(&self) -> Duration {
        Duration::from_millis(300)
    }

    /// The TTL the checks use. Default 1 s.
    fn ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A check that failed: which one, and what it saw.
///
/// ```
/// use idempotent_runtime::conformance::Failure;
///
/// let failure = Failure { check: "claim_then_replay", message: "replayed nothing".to_owned() };
/// assert!(failure.to_string().contains("claim_then_replay"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The name of the check.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for Failure {}

/// A check of the suite.
///
/// ```
/// use idempotent_runtime::{conformance, MemoryStore};
/// # use std::time::Duration;
/// # struct Memory(MemoryStore);
/// # impl conformance::Harness for Memory {
/// #     type Store = MemoryStore;
/// #     fn store(&self) -> &MemoryStore { &self.0 }
/// #     async fn advance(&self, by: Duration) { tokio::time::sleep(by).await }
/// # }
///
/// // One test per check, so one failure does not hide the rest.
/// let checks: Vec<(&str, conformance::Check<Memory>)> = conformance::checks();
/// assert!(checks.iter().any(|(name, _)| *name == "claim_then_replay"));
/// ```
pub type Check<H> =
    for<'a> fn(&'a H) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

macro_rules! checks {
    ($d:tt $($group:ident :: $name:ident),* $(,)?) => {
        /// Every check of the suite, by name, for harnesses that run them one test each.
        pub fn checks<H: Harness>() -> Vec<(&'static str, Check<H>)> {
            vec![$((stringify!($name), |h| Box::pin($group::$name(h)))),*]
        }

        /// One `#[tokio::test]` per check of the [`conformance`](crate::conformance) suite, each
        /// named after its check, so one failure does not hide the rest. `$harness` is the
        /// [`Harness`](crate::conformance::Harness) type, and the expression after it builds one
        /// inside each test's `async fn` (it may `.await`). Put it in a module of its own per
        /// store; the crate needs `tokio` with its `macros` and `rt` features.
        ///
        /// ```
        /// use std::sync::Arc;
        /// use std::time::Duration;
        /// use idempotent_runtime::{conformance, ManualClock, MemoryStore};
        ///
        /// struct Memory { clock: Arc<ManualClock>, store: MemoryStore }
        ///
        /// impl Memory {
        ///     fn new() -> Self {
        ///         let clock = Arc::new(ManualClock::new());
        ///         Self { store: MemoryStore::builder().clock(clock.clone()).build(), clock }
        ///     }
        /// }
        ///
        /// impl conformance::Harness for Memory {
        ///     type Store = MemoryStore;
        ///     fn store(&self) -> &MemoryStore { &self.store }
        ///     async fn advance(&self, by: Duration) { self.clock.advance(by) }
        /// }
        ///
        /// mod memory_conforms {
        ///     idempotent_runtime::conformance_tests!(super::Memory, super::Memory::new());
        /// }
        /// # fn main() {}
        /// ```
        #[macro_export]
        macro_rules! conformance_tests {
            ($d harness:ty, $d make:expr $d(,)?) => {
                $(
                    #[::tokio::test]
                    async fn $name() {
                        let harness: $d harness = $d make;
                        if let ::core::result::Result::Err(failure) =
                            $d crate::conformance::run_check(&harness, stringify!($name)).await
                        {
                            ::core::panic!("{failure}");
                        }
                    }
                )*
            };
        }
    };
}

checks!($
    claims::claim_then_replay,
    claims::in_flight_record_is_reported_with_its_fingerprint,
    claims::other_fingerprint_sees_the_stored_one,
    fencing::completing_the_same_claim_twice_is_a_no_op,
    lifetimes::lease_lapse_lets_a_retry_reclaim_with_a_larger_token,
    fencing::zombie_complete_renew_release_are_rejected_and_change_nothing,
    lifetimes::renew_keeps_a_claim_alive_past_its_first_lease,
    lifetimes::ttl_expiry_frees_the_key,
    fencing::release_then_reclaim,
    fencing::unknown_claims_are_stale,
    claims::not_replayable_results_are_kept_as_done,
    lifetimes::invalid_durations_write_nothing,
    claims::responses_round_trip_exactly,
    fencing::a_completion_with_another_fingerprint_is_refused,
    fencing::a_token_with_the_right_nonce_and_another_counter_is_stale,
    claims::a_re_sent_claim_is_the_same_claim,
    claims::the_immediate_face_is_the_same_store,
);

/// Runs the check named `check` (one of [`checks`]).
///
/// ```
/// use idempotent_runtime::{conformance, MemoryStore};
/// # use std::time::Duration;
/// # struct Memory(MemoryStore);
/// # impl conformance::Harness for Memory {
/// #     type Store = MemoryStore;
/// #     fn store(&self) -> &MemoryStore { &self.0 }
/// #     async fn advance(&self, by: Duration) { tokio::time::sleep(by).await }
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt").block_on(async {
/// let harness = Memory(MemoryStore::new());
/// conformance::run_check(&harness, "claim_then_replay").await.expect("conforms");
/// let unknown = conformance::run_check(&harness, "no_such_check").await;
/// assert!(unknown.is_err());
/// # });
/// ```
///
/// # Errors
/// A [`Failure`] when the check fails, or when no check has that name.
pub async fn run_check<H: Harness>(harness: &H, check: &str) -> Result<(), Failure> {
    let Some((name, run)) = checks::<H>().into_iter().find(|(name, _)| *name == check) else {
        return Err(Failure {
            check: "run_check",
            message: format!("no conformance check is named `{check}`"),
        });
    };
    run(harness).await.map_err(|message| Failure {
        check: name,
        message,
    })
}

/// Runs every check in order; stops at the first failure.
///
/// # Errors
/// The first [`Failure`].
pub async fn run_all<H: Harness>(harness: &H) -> Result<(), Failure> {
    for (check, run) in checks::<H>() {
        run(harness)
            .await
            .map_err(|message| Failure { check, message })?;
    }
    Ok(())
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

mod claims;
mod fencing;
mod lifetimes;

pub(super) fn fresh_key() -> Result<IdempotencyKey, String> {
    let n: u128 = rand::random();
    IdempotencyKey::new(&format!("conformance-{n:032x}")).map_err(|e| e.to_string())
}

fn fingerprint(n: u128) -> Fingerprint {
    Fingerprint::from_u128(0x00c0_ffee_0000_0000 ^ n)
}

fn entry<H: Harness>(h: &H, fp: Fingerprint) -> IdempotencyEntry<Processing> {
    IdempotencyEntry::new(fp)
        .with_lease(h.lease())
        .with_ttl(h.ttl())
}

fn err(context: &str, e: &Error) -> String {
    format!("{context}: unexpected error {e:?}")
}

async fn claim<H: Harness>(
    h: &H,
    key: &IdempotencyKey,
    fp: Fingerprint,
) -> Result<(FencingToken, IdempotencyEntry<Processing>), String> {
    claimed("try_insert", h.store().try_insert(key, entry(h, fp)).await)
}

/// The claim a store's answer to a claim must be (`context` names the call).
fn claimed(
    context: &str,
    answer: Result<InsertResult, Error>,
) -> Result<(FencingToken, IdempotencyEntry<Processing>), String> {
    match answer {
        Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) => Ok((fencing_token, entry)),
        Ok(InsertResult::Exists(existing)) => {
            Err(format!("{context}: expected a claim, found {existing:?}"))
        }
        Err(e) => Err(err(context, &e)),
    }
}

async fn existing<H: Harness>(
    h: &H,
    key: &IdempotencyKey,
    fp: Fingerprint,
) -> Result<ExistingEntry, String> {
    match h.store().try_insert(key, entry(h, fp)).await {
        Ok(InsertResult::Exists(existing)) => Ok(existing),
        Ok(InsertResult::Claimed { fencing_token, .. }) => Err(format!(
            "expected an existing record, but claimed with {fencing_token:?}"
        )),
        Err(e) => Err(err("try_insert", &e)),
    }
}

fn completed(existing: ExistingEntry) -> Result<CompletedRecord, String> {
    match existing {
        ExistingEntry::Completed(entry) => Ok(entry),
        ExistingEntry::Processing(entry) => Err(format!("expected Completed, found {entry:?}")),
    }
}

fn expect_stale(context: &str, result: Result<(), Error>) -> Result<(), String> {
    match result {
        Err(Error::StaleFencingToken) => Ok(()),
        other => Err(format!(
            "{context}: expected StaleFencingToken, got {other:?}"
        )),
    }
}
