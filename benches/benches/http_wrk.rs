//! The HTTP rows: one handler answering `201` with a fixed 256-byte body, served by axum on
//! loopback four ways — bare, under `#[idempotent(key = header)]`, behind `IdempotencyLayer`,
//! and behind the crate `axum-idempotent` 0.6 (keyed by the `Idempotency-Key` header in a
//! session, its in-memory moka store) — each loaded with `wrk` in turn, in the same run:
//! `cargo bench -p idempotent-benches --bench http_wrk`.
//!
//! Two workloads: replays (every request carries the same key, so all but the first are
//! answered from the store) and first calls (a new key per request, so every one claims, runs
//! the handler and stores its response). Each row prints requests/s, the share of the bare
//! handler's rate and the server's CPU time per request (this process's user + system time
//! over the requests wrk completed — wrk shares the two cores, so CPU per request says more
//! than the rate alone). Medians of `REPS` repetitions; every response must be a 2xx, and the
//! handlers' run counts must match the workload (one run for all the replays, a run per first
//! call).
//!
//! `wrk` comes from Debian's package; the benchmark installs it with apt-get when absent.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum_idempotent::{IdempotentLayer, IdempotentOptions};
use bytes::Bytes;
use idempotent_benches::{check, median, verdict};
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_runtime::{MemoryStore, idempotent};
use ruts::store::Ttl;
use ruts::store::moka::MokaStore;
use ruts::{CookieOptions, Session, SessionLayer};
use tower_cookies::CookieManagerLayer;

const REPS: usize = 5;
const REPLAY_TARGET: f64 = 0.90;
const FIRST_CALL_TARGET: f64 = 0.85;
const RESPONSE: [u8; 256] = [b'r'; 256];
const KEY: &str = "bench-key-0123456789abcdef0123456789";

fn created() -> (StatusCode, Bytes) {
    (StatusCode::CREATED, Bytes::from_static(&RESPONSE))
}

/// How often each guarded handler ran.
static ATTRIBUTE_RUNS: AtomicUsize = AtomicUsize::new(0);
static LAYER_RUNS: AtomicUsize = AtomicUsize::new(0);
static PEER_RUNS: AtomicUsize = AtomicUsize::new(0);

async fn bare(body: String) -> (StatusCode, Bytes) {
    let _ = body;
    created()
}

#[idempotent(key = header, store = store, ttl = "10m", name = "bench.http", skip(store))]
async fn attribute(State(store): State<MemoryStore>, body: String) -> (StatusCode, Bytes) {
    let _ = body;
    ATTRIBUTE_RUNS.fetch_add(1, Ordering::Relaxed);
    created()
}

async fn layered(body: String) -> (StatusCode, Bytes) {
    let _ = body;
    LAYER_RUNS.fetch_add(1, Ordering::Relaxed);
    created()
}

async fn peer(body: String) -> (StatusCode, Bytes) {
    let _ = body;
    PEER_RUNS.fetch_add(1, Ordering::Relaxed);
    created()
}

/// `axum-idempotent` caches only in an established session: this sets one up.
async fn login(session: Session<MokaStore>) -> &'static str {
    let Ok(ttl) = Ttl::new(3600) else {
        check(false);
        return "no ttl";
    };
    let stored = session.set("user", &"bench".to_owned(), ttl, None).await;
    check(stored.is_ok());
    "logged in"
}

/// The four servers, in the order each repetition loads them.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Attribute,
    Layer,
    Peer,
}

const MODES: [Mode; 4] = [Mode::Bare, Mode::Attribute, Mode::Layer, Mode::Peer];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare handler",
            Mode::Attribute => "#[idempotent]",
            Mode::Layer => "IdempotencyLayer",
            Mode::Peer => "axum-idempotent 0.6",
        }
    }

    fn runs(self) -> usize {
        match self {
            Mode::Bare => 0,
            Mode::Attribute => ATTRIBUTE_RUNS.load(Ordering::Relaxed),
            Mode::Layer => LAYER_RUNS.load(Ordering::Relaxed),
            Mode::Peer => PEER_RUNS.load(Ordering::Relaxed),
        }
    }

    fn router(self) -> Router {
        match self {
            Mode::Bare => Router::new().route("/", post(bare)),
            Mode::Attribute => Router::new()
                .route("/", post(attribute))
                .with_state(MemoryStore::new()),
            Mode::Layer => Router::new()
                .route("/", post(layered))
                .route_layer(IdempotencyLayer::new(MemoryStore::new()).operation("bench.http")),
            Mode::Peer => {
                let sessions = Arc::new(MokaStore::builder().build());
                let options = IdempotentOptions::default()
                    .expire_after(600)
                    .use_idempotency_key_header(None, true);
                let cookies = CookieOptions::build()
                    .name("session")
                    .max_age(3600)
                    .path("/");
                Router::new()
                    .route(
                        "/",
                        post(peer).layer(IdempotentLayer::<MokaStore>::new(options)),
                    )
                    .route("/login", post(login))
                    .layer(SessionLayer::new(sessions).with_cookie_options(cookies))
                    .layer(CookieManagerLayer::new())
            }
        }
    }
}

/// This process's user + system CPU time so far, in seconds (`/proc/self/stat`).
fn cpu_seconds(ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / ticks_per_second
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One load: requests/s, requests completed, server CPU seconds per request.
struct Load {
    rate: f64,
    requests: f64,
    cpu_per_request: f64,
}

/// Loads `url` with `script` for 3 s over 64 connections.
fn wrk(url: &str, script: &Path, ticks: f64) -> Load {
    let before = cpu_seconds(ticks);
    let output = Command::new("wrk")
        .args(["-t1", "-c64", "-d3s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk");
    let cpu = cpu_seconds(ticks) - before;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk saw errors against {url}:\n{text}");
        check(false);
    }
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0.0);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    check(requests > 0.0 && rate > 0.0);
    Load {
        rate,
        requests,
        cpu_per_request: cpu / requests.max(1.0),
    }
}

/// A wrk script that POSTs the same 64-byte JSON body with `cookie`; with `key_prefix`, a new
/// key per request (`<prefix>-1`, `-2`, …), else always [`KEY`].
fn script(dir: &Path, name: &str, cookie: &str, key_prefix: Option<&str>) -> PathBuf {
    let head = format!(
        "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Cookie\"] = \"{cookie}\"\n",
        "b".repeat(64)
    );
    let key = match key_prefix {
        Some(prefix) => format!(
            "local n = 0\nrequest = function()\n  n = n + 1\n  wrk.headers[\"Idempotency-Key\"] = \"{prefix}-\" .. n\n  return wrk.format()\nend\n"
        ),
        None => format!("wrk.headers[\"Idempotency-Key\"] = \"{KEY}\"\n"),
    };
    let text = head + &key;
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, text).expect("write wrk script");
    path
}

/// The `session=…` cookie `axum-idempotent`'s server sets on `/login`.
fn session_cookie(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then_some(value.trim())
        })
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with("session=")))
        .unwrap_or_else(|| panic!("no session cookie in:\n{response}"))
        .to_owned()
}

/// Per mode: rates, shares of the bare rate, CPU per request (each in repetition order).
#[derive(Default, Clone)]
struct Samples {
    rates: Vec<f64>,
    shares: Vec<f64>,
    cpu: Vec<f64>,
}

fn report(workload: &str, target: f64, samples: &mut [Samples; 4]) {
    let bare_cpu = median(&mut samples[0].cpu.clone());
    let peer_rate = median(&mut samples[3].rates.clone());
    for (mode, s) in MODES.iter().zip(samples.iter_mut()) {
        let rate = median(&mut s.rates);
        let cpu = median(&mut s.cpu);
        let over = (cpu - bare_cpu) * 1e6;
        if *mode == Mode::Bare {
            println!(
                "{workload:<12} {:<20} {rate:>9.0} req/s                                  server CPU {:>5.1} µs/req",
                mode.name(),
                cpu * 1e6
            );
            continue;
        }
        let share = median(&mut s.shares);
        let verdict = match mode {
            Mode::Peer => "",
            _ => verdict(share, target),
        };
        let target_text = match mode {
            Mode::Peer => "          ".to_owned(),
            _ => format!("(>= {:.0}%)", target * 100.0),
        };
        let vs_peer = match mode {
            Mode::Peer => String::new(),
            _ => format!("  {:.2}x axum-idempotent", rate / peer_rate),
        };
        println!(
            "{workload:<12} {:<20} {rate:>9.0} req/s  {:>5.1}% of bare {target_text} {verdict:<12} server CPU {:>5.1} µs/req ({over:+.1} over bare){vs_peer}",
            mode.name(),
            share * 100.0,
            cpu * 1e6,
        );
    }
}

fn main() {
    idempotent_benches::ensure_installed("wrk", "wrk");
    let ticks = clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addresses: Vec<String> = rt.block_on(async {
        let mut addresses = Vec::new();
        for mode in MODES {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address").to_string();
            let router = mode.router();
            tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
            addresses.push(address);
        }
        addresses
    });
    let cookie = session_cookie(&addresses[3]);
    let dir = std::env::temp_dir().join(format!("idempotent-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("script dir");
    let urls: Vec<String> = addresses.iter().map(|a| format!("http://{a}/")).collect();
    println!(
        "HTTP on loopback, wrk -t1 -c64 -d3s, server runtime of 2 workers, memory stores; medians of {REPS}"
    );

    // Replays: the first request runs each guarded handler; every later one is a replay.
    let replay = script(&dir, "replay", &cookie, None);
    for url in &urls {
        let warm = Command::new("wrk")
            .args(["-t1", "-c1", "-d1s", "-s"])
            .arg(&replay)
            .arg(url)
            .output()
            .expect("warm up");
        check(warm.status.success());
    }
    let runs_before: Vec<usize> = MODES.iter().map(|m| m.runs()).collect();
    let mut samples: [Samples; 4] = Default::default();
    for _ in 0..REPS {
        load_each(&urls, ticks, &mut samples, |_| replay.clone());
    }
    for (mode, before) in MODES.iter().zip(&runs_before) {
        if *mode != Mode::Bare {
            // One run each (in the warm-up), then only replays.
            check(*before == 1 && mode.runs() == 1);
        }
    }
    report("replay", REPLAY_TARGET, &mut samples);

    // First calls: a new key per request.
    let mut samples: [Samples; 4] = Default::default();
    for rep in 0..REPS {
        let runs_before: Vec<usize> = MODES.iter().map(|m| m.runs()).collect();
        let completed = load_each(&urls, ticks, &mut samples, |i| {
            let name = format!("first-{rep}-{i}");
            script(&dir, &name, &cookie, Some(&name))
        });
        for (i, mode) in MODES.iter().enumerate() {
            if *mode != Mode::Bare {
                // Every completed request ran the handler (requests wrk cut off at the end
                // may have run it too).
                check(mode.runs() - runs_before[i] >= completed[i]);
            }
        }
    }
    report("first call", FIRST_CALL_TARGET, &mut samples);
    let _ = std::fs::remove_dir_all(&dir);
    drop(rt);
    idempotent_benches::exit_on_failed_checks();
}

/// Loads each server once with the script `script(i)` gives, in mode order, and records its
/// rate, share of the bare rate and CPU per request. Returns the requests each completed.
fn load_each(
    urls: &[String],
    ticks: f64,
    samples: &mut [Samples; 4],
    script: impl Fn(usize) -> PathBuf,
) -> [usize; 4] {
    let mut bare_rate = f64::NAN;
    let mut completed = [0; 4];
    for (i, url) in urls.iter().enumerate() {
        let load = wrk(url, &script(i), ticks);
        if i == 0 {
            bare_rate = load.rate;
        }
        samples[i].rates.push(load.rate);
        samples[i].shares.push(load.rate / bare_rate);
        samples[i].cpu.push(load.cpu_per_request);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            completed[i] = load.requests as usize;
        }
    }
    completed
}
