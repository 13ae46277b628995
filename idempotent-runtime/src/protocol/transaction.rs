//! Transactional mode (DESIGN §3.5): the handler runs inside a transaction on the store's own
//! database, the completion is written in that transaction — fenced by the claim — and both
//! commit together. The handler gets the transaction by value and hands it back with its result
//! (`FnOnce(Tx) -> impl Future<Output = (Tx, R)>`): an ordinary closure, so a detached handler's
//! `Send` is checked like any other future's, and the handler cannot commit it itself (the
//! attribute and [`Idempotent::run_in_transaction`](crate::Idempotent::run_in_transaction)
//! give user code only `&mut` of it). A handler error, a panic, a crash or a lapsed claim (the fenced completion
//! matches no row) rolls the whole transaction back, so the retry runs once: exactly once for
//! the writes made in the transaction.

use super::acquire::{Claim, Step, acquire};
use super::codec::ResultCodec;
use super::run::{completion, heartbeat, release, superseded};
use super::{Spec, answer};
use crate::observe::{Observer, Outcome, Severity, store_call};
use crate::store::TransactionalStore;
use crate::{Error, Fingerprint, IdempotencyKey, StoredKey};

/// Runs `handler` once per stored key inside a transaction of `store`, per the module docs.
/// `R` is the handler's result and `C` how it is stored. A key or fingerprint that could not
/// be made is answered without touching the store, as [`execute`](super::execute) does.
pub(crate) async fn run<R, C, S, H, F>(
    store: &S,
    spec: &Spec,
    operation: &str,
    stored_key: Result<StoredKey, Error>,
    fingerprint: Result<Fingerprint, Error>,
    handler: H,
) -> R
where
    C: ResultCodec<R>,
    S: TransactionalStore,
    H: FnOnce(S::Transaction) -> F,
    F: Future<Output = (S::Transaction, R)>,
{
    let observer = Observer::start(operation);
    let (stored_key, fingerprint) = match (stored_key, fingerprint) {
        (Ok(stored_key), Ok(fingerprint)) => (stored_key, fingerprint),
        (Err(error), _) | (_, Err(error)) => return answer::<R, C>(&observer, error),
    };
    observer
        .in_span(async {
            let step = acquire::<R, C>(&observer, store, spec, operation, stored_key, fingerprint);
            match step.await {
                Step::Done(result) => result,
                Step::Claimed(claim) => {
                    in_transaction::<R, C, S, H, F>(&observer, store, spec, claim, handler).await
                }
            }
        })
        .await
}

/// The claimed half: open the transaction, run the handler in it with the heartbeat, write the
/// fenced completion in it, commit. A result the codec would release rolls back and releases.
pub(crate) async fn in_transaction<R, C, S, H, F>(
    observer: &Observer,
    store: &S,
    spec: &Spec,
    claim: Claim,
    handler: H,
) -> R
where
    C: ResultCodec<R>,
    S: TransactionalStore,
    H: FnOnce(S::Transaction) -> F,
    F: Future<Output = (S::Transaction, R)>,
{
    let Claim {
        stored_key,
        token,
        entry,
        sent,
    } = claim;
    let key: &IdempotencyKey = &stored_key;
    let _in_flight = observer.claimed(token);
    let transaction = match store_call(store.kind(), "begin", store.begin()).await {
        Ok(transaction) => transaction,
        Err(e) => {
            release(observer, store, key, token).await; // nothing ran
            return answer::<R, C>(observer, e);
        }
    };
    let ran = heartbeat(
        observer,
        store,
        key,
        token,
        sent,
        spec.lease,
        Box::pin(handler(transaction)),
    )
    .await;
    // A panic dropped the transaction, which rolls it back: nothing the handler wrote stays.
    let Ok((mut transaction, result)) = ran else {
        return answer::<R, C>(observer, Error::HandlerPanicked);
    };
    let Some(completed) = completion(entry, C::encode(&result, spec.max_body)) else {
        drop(transaction);
        release(observer, store, key, token).await;
        return result;
    };
    let (fingerprint, replayable) = (completed.fingerprint(), completed.response().is_some());
    let written = store.complete_in(&mut transaction, key, completed, token);
    match store_call(store.kind(), "complete", written).await {
        Ok(()) => {}
        Err(Error::StaleFencingToken) => {
            // The claim lapsed and the key may be another request's: roll everything back.
            drop(transaction);
            return superseded::<R, C>(observer, store, key, fingerprint).await;
        }
        Err(e) => {
            drop(transaction);
            release(observer, store, key, token).await;
            return answer::<R, C>(observer, e);
        }
    }
    commit::<R, C, S>(observer, store, transaction, result, replayable).await
}

/// Commits the handler's writes and the completion. A commit whose outcome is unknown is never
/// released: the record is then either completed with the writes, or lapses with nothing
/// committed, and the retry is right either way.
async fn commit<R, C: ResultCodec<R>, S: TransactionalStore>(
    observer: &Observer,
    store: &S,
    transaction: S::Transaction,
    result: R,
    replayable: bool,
) -> R {
    match store_call(store.kind(), "commit", store.commit(transaction)).await {
        Ok(()) => {
            observer.outcome(Outcome::completed(replayable));
            result
        }
        Err(e) => {
            observer.report(
                Severity::Error,
                "the commit of a transactional execution failed or its outcome is unknown; the claim lapses with its lease",
                &e,
            );
            answer::<R, C>(observer, e)
        }
    }
}
