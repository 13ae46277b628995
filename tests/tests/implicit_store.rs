//! Contract point 14: forgetting `store = …` is loud — a WARN the first time the implicit
//! per-process default serves each operation — and an application can forbid the implicit
//! default. One test, since the default store is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};

use idempotent_runtime::{Error, forbid_implicit_default_store, idempotent};
use idempotent_tests::log::Log;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = key, name = "implicit.first")]
async fn first(key: &str) -> Result<u32, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[idempotent(key = key, name = "implicit.second")]
async fn second(key: &str) -> Result<u32, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(2)
}

#[tokio::test]
async fn the_implicit_default_warns_once_per_operation_and_can_be_forbidden() {
    let (log, _guard) = Log::capture();

    for key in ["a", "b", "c"] {
        assert_eq!(first(key).await.ok(), Some(1));
    }
    assert_eq!(second("a").await.ok(), Some(2));
    let text = log.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("no idempotency store was installed"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per operation: {text}");
    assert!(warnings[0].contains("implicit.first"), "{text}");
    assert!(warnings[1].contains("implicit.second"), "{text}");
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);

    forbid_implicit_default_store();
    let refused = first("d").await;
    assert!(matches!(refused, Err(Error::NoStore)), "{refused:?}");
    let replay = first("a").await;
    assert!(
        matches!(replay, Err(Error::NoStore)),
        "not even a replay: {replay:?}"
    );
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        4,
        "nothing ran without a store"
    );
}
