//! The axum row of DESIGN §7: replays of an `#[idempotent(key = header)]` handler over HTTP
//! against the bare handler returning the same bytes, both measured with `wrk` on loopback in
//! the same run: `cargo bench -p idempotent-benches --bench axum_replay`.
//!
//! `wrk` comes from Debian's package; the benchmark installs it with apt-get when absent.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use idempotent_benches::{check, median};
use idempotent_runtime::{MemoryStore, idempotent};

const REPS: usize = 5;
const TARGET: f64 = 0.85;
const BODY: usize = 256;

fn response_body() -> String {
    "r".repeat(BODY)
}

/// How often the guarded handler ran: once, then every request is a replay.
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = header, store = store, name = "bench.replay", skip(store))]
async fn guarded(
    axum::extract::State(store): axum::extract::State<MemoryStore>,
    body: String,
) -> String {
    let _ = body;
    RUNS.fetch_add(1, Ordering::Relaxed);
    response_body()
}

async fn bare(body: String) -> String {
    let _ = body;
    response_body()
}

fn ensure_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    println!("wrk not found; installing it with apt-get");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(installed, "wrk is needed: `apt-get install wrk`");
}

/// Requests per second `wrk` reaches against `url` with the POST of `script`.
fn wrk(url: &str, script: &std::path::Path) -> f64 {
    let output = Command::new("wrk")
        .args(["-t1", "-c32", "-d3s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk saw errors:\n{text}");
        check(false);
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn main() {
    ensure_wrk();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (ours, ceiling) = rt.block_on(async {
        let serve = |router: Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
            format!("http://{address}/")
        };
        let ours = serve(
            Router::new()
                .route("/", post(guarded))
                .with_state(MemoryStore::new()),
        )
        .await;
        let ceiling = serve(Router::new().route("/", post(bare))).await;
        (ours, ceiling)
    });
    let script = std::env::temp_dir().join(format!("idempotent-wrk-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Idempotency-Key\"] = \"bench-key-0123456789abcdef0123456789\"\n",
            "b".repeat(64)
        ),
    )
    .expect("write wrk script");
    // The first request executes; every request wrk sends is then a replay.
    let warm = Command::new("wrk")
        .args(["-t1", "-c1", "-d1s", "-s"])
        .arg(&script)
        .arg(&ours)
        .output()
        .expect("warm up");
    assert!(warm.status.success());

    let (mut o, mut c, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        let ceiling_rps = wrk(&ceiling, &script);
        let ours_rps = wrk(&ours, &script);
        c.push(ceiling_rps);
        o.push(ours_rps);
        ratios.push(ours_rps / ceiling_rps);
    }
    let ratio = median(&mut ratios);
    println!(
        "{:<52} ours {:>9.0} req/s   bare handler {:>9.0} req/s   ratio {:>5.1}% (target >= {:.0}%) {}",
        "axum replay over HTTP (wrk -c32, loopback)",
        median(&mut o),
        median(&mut c),
        ratio * 100.0,
        TARGET * 100.0,
        if ratio >= TARGET {
            "ok"
        } else {
            "BELOW TARGET"
        }
    );
    let _ = std::fs::remove_file(&script);
    drop(rt);
    let runs = RUNS.load(Ordering::Relaxed);
    println!("the guarded handler ran {runs} time(s) (every other request was a replay)");
    check(runs == 1);
    idempotent_benches::exit_on_failed_checks();
}
