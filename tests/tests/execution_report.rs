//! `with_execution`: a caller learns, beside the plain `Result<T, E>`, whether its call ran
//! the handler (and under which fencing token), was replayed, or was superseded — for the
//! attribute, the builder, nested calls and transactional mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{
    Error, Execution, FencingToken, IdempotencyKey, Idempotent, ManualClock, MemoryStore,
    SqliteStore, current_claim, idempotent, with_execution,
};
use idempotent_tests::gate::Gate;

/// The handler returns the token it ran under, so the test can compare it with the report.
#[idempotent(key = key, store = store)]
async fn pay(store: &MemoryStore, key: &str, cents: u64) -> Result<(u64, u64), Error> {
    let token = current_claim().map(|c| c.fencing_token().counter());
    if cents == 0 {
        return Err(Error::NotReplayable); // refused: nothing stored, the key is released
    }
    Ok((cents, token.unwrap_or_default()))
}

fn counter(execution: Option<Execution>) -> Option<u64> {
    match execution {
        Some(Execution::Executed { fencing_token } | Execution::Superseded { fencing_token }) => {
            Some(fencing_token.counter())
        }
        _ => None,
    }
}

#[tokio::test]
async fn the_attribute_reports_executed_replayed_and_nothing_for_errors() {
    let store = MemoryStore::new();
    let (first, ran) = with_execution(pay(&store, "k", 500)).await;
    let (_, token) = first.expect("paid");
    assert!(matches!(ran, Some(Execution::Executed { .. })), "{ran:?}");
    assert_eq!(counter(ran), Some(token), "the token the handler ran under");
    let (retry, replayed) = with_execution(pay(&store, "k", 500)).await;
    assert_eq!(replayed, Some(Execution::Replayed));
    assert_eq!(retry.ok(), Some((500, token)));

    let (mismatch, none) = with_execution(pay(&store, "k", 999)).await;
    assert!(matches!(mismatch, Err(Error::FingerprintMismatch)));
    assert_eq!(none, None, "a refusal ran nothing");
    let (refused, none) = with_execution(pay(&store, "k-refused", 0)).await;
    assert!(refused.is_err());
    assert_eq!(none, None, "released: nothing was kept");
    // Without `with_execution` the call is what it always was.
    assert_eq!(pay(&store, "k", 500).await.ok(), Some((500, token)));
}

#[idempotent(key = key, store = store, name = "report.inner")]
async fn inner(store: &MemoryStore, key: &str) -> Result<u64, Error> {
    Ok(1)
}

#[idempotent(key = key, store = store, name = "report.outer")]
async fn outer(store: &MemoryStore, key: &str) -> Result<u64, Error> {
    let mine = current_claim().map(|c| c.fencing_token().counter());
    let _ = inner(store, "inner-key").await?;
    Ok(mine.unwrap_or_default())
}

#[tokio::test]
async fn a_nested_call_reports_the_outer_execution() {
    let store = MemoryStore::new();
    // Boxed: a call nested in another makes a large future (clippy::large_futures).
    let (outer_token, report) = Box::pin(with_execution(outer(&store, "outer-key"))).await;
    assert_eq!(
        counter(report),
        outer_token.ok(),
        "the outer call, not the inner one"
    );
    let (_, report) = Box::pin(with_execution(outer(&store, "outer-key"))).await;
    assert_eq!(report, Some(Execution::Replayed));
}

#[tokio::test]
async fn a_zombie_learns_it_was_superseded() {
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let key = IdempotencyKey::new("k-zombie").expect("key");
    let gate = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let zombie = tokio::spawn({
        let (store, key, gate, runs) = (store.clone(), key.clone(), gate.clone(), runs.clone());
        async move {
            with_execution(
                Idempotent::new("report.zombie")
                    .store(&store)
                    .lease(Duration::from_mins(1))
                    .run(&key, &1, async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.pass().await;
                        Ok::<_, Error>("zombie".to_owned())
                    }),
            )
            .await
        }
    });
    gate.entered().await;
    clock.advance(Duration::from_secs(61));
    let (winner, report) = with_execution(Idempotent::new("report.zombie").store(&store).run(
        &key,
        &1,
        async { Ok::<_, Error>("winner".to_owned()) },
    ))
    .await;
    assert_eq!(winner.ok().as_deref(), Some("winner"));
    let winner_token = counter(report).expect("the winner executed");
    gate.open();
    let (late, report) = zombie.await.expect("zombie");
    assert_eq!(late.ok().as_deref(), Some("winner"), "the winner's answer");
    match report {
        Some(Execution::Superseded { fencing_token }) => {
            assert!(
                fencing_token.counter() < winner_token,
                "its own, older token"
            );
        }
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transactional_mode_reports_too() {
    let (pool, _dir) = idempotent_tests::sql::sqlite("report").await;
    let store = SqliteStore::new(pool);
    store.migrate().await.expect("migrate");
    let key = IdempotencyKey::new("k-tx").expect("key");
    let op = Idempotent::new("report.tx");
    let run = || {
        op.run_in_transaction(&store, &key, &1, |_tx| {
            Box::pin(async move { Ok::<_, Error>(7u8) })
        })
    };
    let (first, ran) = with_execution(run()).await;
    assert_eq!(first.ok(), Some(7));
    assert!(
        matches!(ran, Some(Execution::Executed { fencing_token }) if fencing_token != FencingToken::new(0, 0))
    );
    let (_, replayed) = with_execution(run()).await;
    assert_eq!(replayed, Some(Execution::Replayed));
}
