//! Features `tracing` and `metrics`: a capturing subscriber and a debugging recorder see the
//! exact outcome and counts of a first call, a replay, a conflict, a mismatch, a stale
//! completion, a store error and a rejected key.
//!
//! The recorder's snapshot drains its counters, so the tests run one at a time (`SERIAL`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use idempotent_runtime::{Error, IdempotencyKey, Idempotent, ManualClock, MemoryStore, idempotent};
use idempotent_tests::redis_server::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One closed span: its name, fields, and its parent's name.
#[derive(Debug, Clone, Default)]
struct Closed {
    name: &'static str,
    fields: HashMap<String, String>,
    parent: Option<HashMap<String, String>>,
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every closed span.
struct Capture(Arc<Mutex<Vec<Closed>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions()
            .get::<Fields>()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Fields>().map(|f| f.0.clone()));
        if let Ok(mut closed) = self.0.lock() {
            closed.push(Closed {
                name: span.name(),
                fields,
                parent,
            });
        }
    }
}

struct Observed {
    spans: Arc<Mutex<Vec<Closed>>>,
    metrics: Snapshotter,
}

fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(spans.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        let recorder = DebuggingRecorder::new();
        let metrics = recorder.snapshotter();
        recorder.install().expect("first recorder");
        Observed { spans, metrics }
    })
}

/// Metric values by (name, sorted labels).
type Metrics = HashMap<(String, Vec<(String, String)>), DebugValue>;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The metrics recorded since the last snapshot: (name, sorted labels) → value.
fn drain() -> Metrics {
    observed()
        .metrics
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

fn executions(metrics: &Metrics, operation: &str) -> HashMap<String, u64> {
    metrics
        .iter()
        .filter(|((name, labels), _)| {
            name == "idempotent_executions_total"
                && labels
                    .iter()
                    .any(|(k, v)| k == "operation" && v == operation)
        })
        .filter_map(|((_, labels), value)| {
            let outcome = labels.iter().find(|(k, _)| k == "outcome")?.1.clone();
            match value {
                DebugValue::Counter(n) if *n > 0 => Some((outcome, *n)),
                _ => None,
            }
        })
        .collect()
}

/// The outcomes of the execution spans of `operation`, in the order they closed.
fn span_outcomes(operation: &str) -> Vec<Closed> {
    observed()
        .spans
        .lock()
        .expect("spans")
        .iter()
        .filter(|c| {
            c.name == "idempotent.execution"
                && c.fields.get("operation").map(String::as_str) == Some(operation)
        })
        .cloned()
        .collect()
}

fn outcomes(spans: &[Closed]) -> Vec<&str> {
    spans
        .iter()
        .map(|c| c.fields.get("outcome").map_or("<none>", String::as_str))
        .collect()
}

fn expected(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// How many store calls of `store` the latency histogram holds.
fn store_calls_timed(metrics: &Metrics, store: &str) -> u64 {
    metrics
        .iter()
        .filter(|((name, labels), _)| {
            name == "idempotent_store_seconds"
                && labels.contains(&("store".to_owned(), store.to_owned()))
        })
        .map(|(_, v)| match v {
            DebugValue::Histogram(xs) => xs.len() as u64,
            _ => 0,
        })
        .sum()
}

/// The `op` of every store-call span under an execution of `operation`, in order.
fn store_children(operation: &str) -> Vec<String> {
    observed()
        .spans
        .lock()
        .expect("spans")
        .iter()
        .filter(|c| {
            c.name == "idempotent.store"
                && c.parent
                    .as_ref()
                    .and_then(|p| p.get("operation"))
                    .map(String::as_str)
                    == Some(operation)
        })
        .map(|c| c.fields.get("op").cloned().unwrap_or_default())
        .collect()
}

#[idempotent(key = key, store = store, name = "obs.charge")]
async fn charge(store: &MemoryStore, key: &str, cents: u64) -> Result<u64, Error> {
    Ok(cents)
}

#[tokio::test]
async fn first_call_replay_mismatch_and_rejected_key() {
    let _serial = SERIAL.lock().await;
    observed();
    drain();
    let store = MemoryStore::new();
    assert_eq!(charge(&store, "secret-client-key", 5).await.ok(), Some(5));
    assert_eq!(charge(&store, "secret-client-key", 5).await.ok(), Some(5));
    assert!(matches!(
        charge(&store, "secret-client-key", 6).await,
        Err(Error::FingerprintMismatch)
    ));
    assert!(matches!(
        charge(&store, "bad key", 5).await,
        Err(Error::InvalidKey(_))
    ));

    let metrics = drain();
    assert_eq!(
        executions(&metrics, "obs.charge"),
        expected(&[
            ("executed", 1),
            ("replayed", 1),
            ("mismatch", 1),
            ("rejected_key", 1)
        ])
    );
    assert_eq!(
        store_calls_timed(&metrics, "memory"),
        4,
        "3 claims and 1 completion were timed"
    );

    let spans = span_outcomes("obs.charge");
    assert_eq!(
        outcomes(&spans),
        ["executed", "replayed", "mismatch", "rejected_key"]
    );
    let first = &spans[0];
    assert!(
        first
            .fields
            .get("fencing_token")
            .is_some_and(|t| t.parse::<u64>().is_ok()),
        "{first:?}"
    );
    assert_eq!(
        first.fields.get("lease_renewals").map(String::as_str),
        Some("0")
    );
    let key = first.fields.get("key").expect("hashed key");
    assert_eq!(key.len(), 16);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    for span in observed().spans.lock().expect("spans").iter() {
        assert!(
            span.fields
                .values()
                .all(|v| !v.contains("secret-client-key")),
            "the client's key leaked into {span:?}"
        );
    }
    assert_eq!(
        store_children("obs.charge"),
        ["try_insert", "complete", "try_insert", "try_insert"]
    );
}

#[tokio::test]
async fn a_conflict_and_the_in_flight_gauge() {
    let _serial = SERIAL.lock().await;
    observed();
    drain();
    let store = MemoryStore::new();
    let key = IdempotencyKey::new("conflict").expect("key");
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let holder = tokio::spawn({
        let (store, key, started, go) = (store.clone(), key.clone(), started.clone(), go.clone());
        async move {
            Idempotent::new("obs.conflict")
                .store(&store)
                .run(&key, &1, async {
                    started.notify_one();
                    go.notified().await;
                    Ok::<_, Error>(1)
                })
                .await
        }
    });
    started.notified().await;
    let gauge = drain()
        .into_iter()
        .find(|((name, _), _)| name == "idempotent_in_flight_claims")
        .map(|(_, v)| v);
    assert_eq!(
        gauge,
        Some(DebugValue::Gauge(1.0.into())),
        "one claim in flight"
    );
    let second = Idempotent::new("obs.conflict")
        .store(&store)
        .run(&key, &1, async { Ok::<_, Error>(2) })
        .await;
    assert!(matches!(second, Err(Error::InFlight)));
    go.notify_one();
    assert_eq!(holder.await.expect("task").ok(), Some(1));
    let metrics = drain();
    assert_eq!(
        executions(&metrics, "obs.conflict"),
        expected(&[("in_flight", 1), ("executed", 1)])
    );
    let gauge = metrics
        .into_iter()
        .find(|((name, _), _)| name == "idempotent_in_flight_claims")
        .map(|(_, v)| v);
    // The snapshot swapped the gauge to 0 above; the finished claim took it down by one.
    assert_eq!(gauge, Some(DebugValue::Gauge((-1.0).into())));
    assert_eq!(
        outcomes(&span_outcomes("obs.conflict")),
        ["in_flight", "executed"]
    );
}

#[tokio::test]
async fn a_stale_completion_is_counted() {
    let _serial = SERIAL.lock().await;
    observed();
    drain();
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let key = IdempotencyKey::new("stale").expect("key");
    let runs = Arc::new(AtomicUsize::new(0));
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let zombie = tokio::spawn({
        let (store, key, runs, started, go) = (
            store.clone(),
            key.clone(),
            runs.clone(),
            started.clone(),
            go.clone(),
        );
        async move {
            Idempotent::new("obs.stale")
                .store(&store)
                .run(&key, &1, async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    go.notified().await;
                    Ok::<_, Error>("zombie".to_owned())
                })
                .await
        }
    });
    started.notified().await;
    clock.advance(Duration::from_secs(31)); // past the 30 s lease: the claim lapsed
    let winner = Idempotent::new("obs.stale")
        .store(&store)
        .run(&key, &1, async { Ok::<_, Error>("winner".to_owned()) })
        .await;
    assert_eq!(winner.ok().as_deref(), Some("winner"));
    go.notify_one();
    // The zombie's completion is stale; its caller gets the winner's stored answer.
    assert_eq!(zombie.await.expect("task").ok().as_deref(), Some("winner"));

    let metrics = drain();
    assert_eq!(
        executions(&metrics, "obs.stale"),
        expected(&[("executed", 1), ("stale", 1)])
    );
    let stale = metrics.get(&(
        "idempotent_stale_completions_total".to_owned(),
        vec![("operation".to_owned(), "obs.stale".to_owned())],
    ));
    assert_eq!(stale, Some(&DebugValue::Counter(1)));
    let spans = span_outcomes("obs.stale");
    assert_eq!(outcomes(&spans), ["executed", "stale"]);
    let tokens: Vec<u64> = spans
        .iter()
        .filter_map(|s| s.fields.get("fencing_token")?.parse().ok())
        .collect();
    assert!(
        tokens.len() == 2 && tokens[0] > tokens[1],
        "the winner holds the larger token: {tokens:?}"
    );
}

#[tokio::test]
async fn a_store_error_is_counted() {
    let _serial = SERIAL.lock().await;
    observed();
    drain();
    let mut server = RedisServer::start();
    let store =
        idempotent_tests::valkey::connect_with_timeout(&server, Duration::from_millis(300)).await;
    server.kill();
    let key = IdempotencyKey::new("down").expect("key");
    let result = Idempotent::new("obs.down")
        .store(&store)
        .run(&key, &1, async { Ok::<_, Error>(1) })
        .await;
    assert!(matches!(result, Err(Error::StoreUnavailable(_))));
    let metrics = drain();
    assert_eq!(
        executions(&metrics, "obs.down"),
        expected(&[("store_error", 1)])
    );
    assert!(
        metrics
            .keys()
            .any(|(name, labels)| name == "idempotent_store_seconds"
                && labels.contains(&("store".to_owned(), "valkey".to_owned()))),
        "the failed call was timed"
    );
    assert_eq!(outcomes(&span_outcomes("obs.down")), ["store_error"]);
}

#[tokio::test(start_paused = true)]
async fn lease_renewals_are_recorded_on_the_span_and_counted() {
    let _serial = SERIAL.lock().await;
    observed();
    drain();
    let store = MemoryStore::new();
    let key = IdempotencyKey::new("renewing").expect("key");
    let ran = Idempotent::new("obs.renewing")
        .store(&store)
        .lease(Duration::from_millis(300))
        .run(&key, &1, async {
            // Renewals every 100 ms, sent at 100, 200, 300 and 400 ms; done at 450 ms.
            tokio::time::sleep(Duration::from_millis(450)).await;
            Ok::<_, Error>(1)
        })
        .await;
    assert_eq!(ran.ok(), Some(1));
    let spans = span_outcomes("obs.renewing");
    assert_eq!(
        spans[0].fields.get("lease_renewals").map(String::as_str),
        Some("4")
    );
    let metrics = drain();
    let counted = metrics.iter().find_map(|((name, labels), value)| {
        (name == "idempotent_lease_renewals_total"
            && labels.contains(&("operation".to_owned(), "obs.renewing".to_owned())))
        .then_some(value)
    });
    assert!(
        matches!(counted, Some(DebugValue::Counter(4))),
        "{counted:?}"
    );
}
