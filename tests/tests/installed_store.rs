//! `set_default_store` in a process of its own (the default store is process-wide): the
//! installed store serves every fn without `store = …`, a second install is refused, and
//! forbidding the implicit default leaves an installed store serving.

use std::sync::atomic::{AtomicUsize, Ordering};

use idempotent_runtime::{
    Error, ExistingEntry, IdempotencyKey, IdempotencyStore, MemoryStore,
    forbid_implicit_default_store, idempotent, set_default_store, storage_key,
};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = key, name = "installed.op")]
async fn op(key: &str) -> Result<usize, Error> {
    Ok(RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn an_installed_default_store_serves_and_stays_when_the_implicit_one_is_forbidden() {
    let installed = MemoryStore::new();
    set_default_store(installed.clone()).expect("the first install");
    assert!(matches!(
        set_default_store(MemoryStore::new()),
        Err(Error::DefaultStoreAlreadySet)
    ));
    forbid_implicit_default_store();
    assert_eq!(op("k").await.ok(), Some(1), "the installed store serves");
    assert_eq!(op("k").await.ok(), Some(1), "replayed from it");
    let stored = storage_key(
        "installed.op",
        None,
        &IdempotencyKey::new("k").expect("key"),
    );
    assert!(
        matches!(
            installed.get(&stored).await,
            Ok(Some(ExistingEntry::Completed(_)))
        ),
        "the record is in the installed store"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}
