//! The `#[idempotent]` row of DESIGN §7: a plain async fn under the attribute, on the memory
//! store, against the same fn without it — first calls (a fresh key each) and replays (one
//! completed key) — in the same run: `cargo bench -p idempotent-benches --bench macro_overhead`.
//!
//! Calls run one at a time on a current-thread runtime, timed in batches; the row reports the
//! median per-call time of each side, the time the attribute adds, and the ratio.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::hint::black_box;
use std::time::Duration;

use idempotent_benches::{check, keys, median, timed};
use idempotent_runtime::{Error, IdempotencyKey, MemoryStore, idempotent};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const BATCH: usize = 2_000;
const BATCHES: usize = 25;
const REPS: usize = 5;
/// 56 bytes: with the 8-byte order, a 64-byte request.
const NOTE: &str = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn";

/// The 64-byte request of the standard workload.
#[derive(Clone, Serialize)]
struct Request {
    order: u64,
    note: &'static str,
}

/// The 256-byte response of the standard workload.
#[derive(Serialize, Deserialize)]
struct Response {
    body: String,
}

/// Out of line, so the bare fn and the guarded one run the very same code for their body (the
/// bare fn's inlined copy moved with code placement from build to build, and the row with it).
#[inline(never)]
fn respond(request: &Request) -> Response {
    let mut body = String::with_capacity(256);
    body.push_str(&request.order.to_string());
    while body.len() < 256 {
        body.push('x');
    }
    Response { body }
}

#[allow(clippy::unused_async, reason = "the same shape as the guarded fn")]
async fn bare(key: &IdempotencyKey, request: Request) -> Result<Response, Error> {
    black_box(key);
    Ok(respond(&request))
}

#[idempotent(key = key, store = store, ttl = "10m")]
async fn guarded(
    store: &MemoryStore,
    key: &IdempotencyKey,
    request: Request,
) -> Result<Response, Error> {
    Ok(respond(&request))
}

fn request(i: usize) -> Request {
    Request {
        order: i as u64,
        note: NOTE,
    }
}

/// Median per-call nanoseconds over batches of `call`.
fn per_call(rt: &Runtime, mut call: impl AsyncFnMut(usize)) -> f64 {
    let mut samples = Vec::with_capacity(BATCHES);
    for batch in 0..BATCHES {
        let ((), elapsed) = timed(|| {
            rt.block_on(async {
                for i in batch * BATCH..(batch + 1) * BATCH {
                    call(i).await;
                }
            });
        });
        samples.push(elapsed.as_nanos() as f64 / BATCH as f64);
    }
    median(&mut samples)
}

fn row(
    name: &str,
    target_added: Duration,
    mut ours: impl FnMut() -> f64,
    mut bare: impl FnMut() -> f64,
) {
    let (mut o, mut b, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        let bare_ns = bare();
        let ours_ns = ours();
        b.push(bare_ns);
        o.push(ours_ns);
        added.push(ours_ns - bare_ns);
    }
    let (o, b, added) = (median(&mut o), median(&mut b), median(&mut added));
    let target = target_added.as_nanos() as f64;
    println!(
        "{name:<34} ours {o:>8.0} ns/call   bare {b:>6.0} ns/call   added {:>5.2} µs (target <= {:.1} µs)   bare/ours {:>5.1}% {}",
        added / 1000.0,
        target / 1000.0,
        b / o * 100.0,
        if added <= target {
            "ok"
        } else {
            "ABOVE TARGET"
        }
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let n = BATCH * BATCHES;
    println!("#[idempotent] plain fn on MemoryStore vs the bare fn; medians of {REPS} runs");
    {
        let (store, key) = (MemoryStore::new(), IdempotencyKey::random());
        println!(
            "future sizes: guarded {} B, bare {} B",
            std::mem::size_of_val(&guarded(&store, &key, request(0))),
            std::mem::size_of_val(&bare(&key, request(0))),
        );
    }

    row(
        "first call (fresh key each)",
        Duration::from_micros(1),
        || {
            let store = MemoryStore::new();
            let pool = keys(n);
            per_call(&rt, async |i| {
                let out = guarded(&store, &pool[i], request(i)).await;
                check(black_box(out).is_ok());
            })
        },
        || {
            let pool = keys(n);
            per_call(&rt, async |i| {
                check(black_box(bare(&pool[i], request(i)).await).is_ok());
            })
        },
    );

    let store = MemoryStore::new();
    let key = IdempotencyKey::random();
    rt.block_on(async {
        assert!(
            guarded(&store, &key, request(0)).await.is_ok(),
            "first call"
        );
    });
    row(
        "replay (one completed key)",
        Duration::from_nanos(400),
        || {
            per_call(&rt, async |_| {
                let out = guarded(&store, &key, request(0)).await;
                check(black_box(out).is_ok());
            })
        },
        || {
            per_call(&rt, async |_| {
                check(black_box(bare(&key, request(0)).await).is_ok());
            })
        },
    );
    idempotent_benches::exit_on_failed_checks();
}
