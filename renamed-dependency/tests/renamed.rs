//! The runtime renamed to `idem`: `crate = "idem"` (or a path) makes the generated code find it.

use std::sync::atomic::{AtomicUsize, Ordering};

use idem::{Error, MemoryStore};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[idem::idempotent(key = key, store = store, crate = "idem")]
async fn charge(store: &MemoryStore, key: &str, cents: u64) -> Result<u64, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(cents)
}

mod company {
    /// A company crate re-exporting the runtime.
    pub(crate) use idem as idempotency;
}

#[idem::idempotent(key = header, store = store, crate = company::idempotency, skip(store))]
async fn handler(axum::extract::State(store): axum::extract::State<MemoryStore>) -> &'static str {
    "created"
}

#[tokio::test]
async fn the_attribute_finds_a_renamed_runtime() {
    let store = MemoryStore::new();
    assert_eq!(charge(&store, "k", 5).await.ok(), Some(5));
    assert_eq!(charge(&store, "k", 5).await.ok(), Some(5));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    // The HTTP handler is a real axum handler through the re-export.
    let _router: axum::Router = axum::Router::new()
        .route("/", axum::routing::post(handler))
        .with_state(store);
}
