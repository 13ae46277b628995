//! `ttl` and `lease` as expressions evaluated at run time (configuration), in both modes:
//! the configured TTL is the one the record lives for, an invalid configured duration is a
//! clear error before anything runs, and literals stay compile-time checked (`ui/fail`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use idempotent_runtime::{Error, IdempotencyStore, MemoryStore, idempotent};
use idempotent_tests::http::{post_key, problem, serve};

/// What a service reads from its configuration at start-up.
struct Config {
    ttl: Duration,
    lease: Duration,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = key, store = store, ttl = config.ttl, lease = config.lease, skip(config))]
async fn configured(store: &MemoryStore, config: &Config, key: &str) -> Result<usize, Error> {
    Ok(RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test(start_paused = true)]
async fn a_configured_ttl_is_the_records_lifetime() {
    let store = MemoryStore::new();
    let config = Config {
        ttl: Duration::from_secs(2),
        lease: Duration::from_secs(1),
    };
    assert_eq!(configured(&store, &config, "k").await.ok(), Some(1));
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert_eq!(
        configured(&store, &config, "k").await.ok(),
        Some(1),
        "replayed"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        configured(&store, &config, "k").await.ok(),
        Some(2),
        "the record expired with the configured 2 s"
    );

    let broken = Config {
        ttl: Duration::from_mins(1),
        lease: Duration::ZERO,
    };
    let refused = configured(&store, &broken, "k-broken").await;
    assert!(
        matches!(refused, Err(Error::InvalidDuration { name: "lease", .. })),
        "{refused:?}"
    );
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        2,
        "nothing ran with a broken lease"
    );
}

#[derive(Clone)]
struct App {
    store: Arc<dyn IdempotencyStore>,
    ttl: Duration,
    runs: Arc<AtomicUsize>,
}

#[idempotent(key = header, store = state.store, ttl = state.ttl, name = "configured.http")]
async fn configured_http(State(state): State<App>) -> String {
    format!("ran #{}", state.runs.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn http_mode_reads_its_ttl_from_state() {
    let app = App {
        store: Arc::new(MemoryStore::new()),
        ttl: Duration::from_mins(1),
        runs: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/c", post(configured_http))
        .with_state(app.clone());
    let url = format!("{}/c", serve(router).await);
    assert_eq!(
        post_key(&url, "k", "").await.text().await.ok().as_deref(),
        Some("ran #1")
    );
    let replay = post_key(&url, "k", "").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    let broken = App {
        ttl: Duration::ZERO,
        ..app.clone()
    };
    let router = Router::new()
        .route("/c", post(configured_http))
        .with_state(broken);
    let url = format!("{}/c", serve(router).await);
    let (status, _, json) = problem(post_key(&url, "k-broken", "").await).await;
    assert_eq!(
        status, 500,
        "a misconfigured TTL is the service's fault: {json}"
    );
    assert_eq!(
        app.runs.load(Ordering::SeqCst),
        1,
        "nothing ran with a broken TTL"
    );
}
