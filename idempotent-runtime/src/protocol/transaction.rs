//! Transactional mode (DESIGN §3.5): the handler runs inside a transaction on the store's own
//! database, the completion is written in that transaction — fenced by the claim — and both
//! commit together. A handler error, a panic, a crash or a lapsed claim (the fenced completion
//! matches no row) rolls the whole transaction back, so the retry runs once: exactly once for
//! the writes made in the transaction.

use super::acquire::{Claim, Step, acquire};
use super::codec::{Disposition, Plain, ResultCodec};
use super::current::{Guarded, Lease};
use super::heartbeat::{Renewals, with_heartbeat};
use super::run::{release, superseded};
use super::{Spec, answer};
use crate::observe::{Observer, Outcome, Severity, store_call};
use crate::store::TransactionalStore;
use crate::{Error, Fingerprint, IdempotencyKey};

/// Runs `handler` once per key inside a transaction of `store`, per the module docs.
pub(super) async fn run<S, T, E, H>(
    store: &S,
    spec: &Spec,
    operation: &str,
    scope: Option<&str>,
    key: &IdempotencyKey,
    fingerprint: Fingerprint,
    handler: H,
) -> Result<T, E>
where
    S: TransactionalStore,
    H: AsyncFnOnce(&mut S::Transaction) -> Result<T, E>,
    Plain: ResultCodec<Result<T, E>>,
{
    let observer = Observer::start(operation);
    observer
        .in_span(async {
            let step = acquire::<Result<T, E>, Plain>(
                &observer,
                store,
                spec,
                operation,
                scope,
                key,
                fingerprint,
            );
            match step.await {
                Step::Done(result) => result,
                Step::Claimed(claim) => {
                    in_transaction(&observer, store, spec, claim, handler).await
                }
            }
        })
        .await
}

/// The claimed half: open the transaction, run the handler in it with the heartbeat, write the
/// fenced completion in it, commit.
async fn in_transaction<S, T, E, H>(
    observer: &Observer,
    store: &S,
    spec: &Spec,
    claim: Claim,
    handler: H,
) -> Result<T, E>
where
    S: TransactionalStore,
    H: AsyncFnOnce(&mut S::Transaction) -> Result<T, E>,
    Plain: ResultCodec<Result<T, E>>,
{
    let Claim {
        stored_key,
        token,
        entry,
        sent,
    } = claim;
    let key: &IdempotencyKey = &stored_key;
    let kind = store.kind();
    let _in_flight = observer.claimed(token);
    let mut transaction = match store_call(kind, "begin", store.begin()).await {
        Ok(transaction) => transaction,
        Err(e) => {
            release(observer, store, key, token).await; // nothing ran
            return answer::<_, Plain>(observer, e);
        }
    };
    let lease = Lease::new(token, sent, spec.lease);
    let renewals = Renewals {
        observer,
        store,
        key,
        token,
        lease: spec.lease,
        state: &lease,
    };
    let ran = with_heartbeat(
        renewals,
        Guarded::new(handler(&mut transaction), lease.clone()),
    )
    .await;
    observer.renewals(lease.renewals());
    let result = match ran {
        Ok(Ok(value)) => Ok(value),
        // Dropping the transaction rolls it back: nothing the handler wrote stays.
        Ok(Err(e)) => {
            drop(transaction);
            release(observer, store, key, token).await;
            return Err(e);
        }
        Err(_panicked) => {
            drop(transaction);
            return answer::<_, Plain>(observer, Error::HandlerPanicked);
        }
    };
    let completed = match Plain::encode(&result, spec.max_body) {
        Disposition::Complete(response) => entry.complete(response),
        Disposition::NotReplayable | Disposition::Release => entry.complete_not_replayable(),
    };
    let (fingerprint, replayable) = (completed.fingerprint(), completed.response().is_some());
    let written = store.complete_in(&mut transaction, key, completed, token);
    match store_call(kind, "complete", written).await {
        Ok(()) => {}
        Err(Error::StaleFencingToken) => {
            // The claim lapsed and the key may be another request's: roll everything back.
            drop(transaction);
            return superseded::<_, Plain>(observer, store, key, fingerprint).await;
        }
        Err(e) => {
            drop(transaction);
            release(observer, store, key, token).await;
            return answer::<_, Plain>(observer, e);
        }
    }
    commit(observer, store, transaction, result, replayable).await
}

/// Commits the handler's writes and the completion. A commit whose outcome is unknown is never
/// released: the record is then either completed with the writes, or lapses with nothing
/// committed, and the retry is right either way.
async fn commit<S: TransactionalStore, T, E>(
    observer: &Observer,
    store: &S,
    transaction: S::Transaction,
    result: Result<T, E>,
    replayable: bool,
) -> Result<T, E>
where
    Plain: ResultCodec<Result<T, E>>,
{
    match store_call(store.kind(), "commit", store.commit(transaction)).await {
        Ok(()) => {
            observer.outcome(if replayable {
                Outcome::Executed
            } else {
                Outcome::NotReplayable
            });
            result
        }
        Err(e) => {
            observer.report(
                Severity::Error,
                "the commit of a transactional execution failed or its outcome is unknown; the claim lapses with its lease",
                &e,
            );
            answer::<_, Plain>(observer, e)
        }
    }
}
