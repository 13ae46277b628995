//! Shared helpers of the benchmarks: the DESIGN §7 workload and ratio reporting.
#![allow(
    clippy::cast_precision_loss,
    reason = "rates and ratios of benchmark counts"
)]
//!
//! Every benchmark runs the thing measured and its ceiling in the same process, several times,
//! and prints medians and the ratio, because these machines are noisy: ratios, not times.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use idempotent_runtime::{
    DefaultFingerprintStrategy, Fingerprint, FingerprintStrategy, IdempotencyKey,
};

/// Size of a response body in the standard workload.
pub const BODY: usize = 256;
/// Size of a response body in the large variant.
pub const BODY_LARGE: usize = 16 * 1024;

/// `n` distinct 36-byte keys (UUID v4 strings).
#[must_use]
pub fn keys(n: usize) -> Vec<IdempotencyKey> {
    (0..n).map(|_| IdempotencyKey::random()).collect()
}

/// The fingerprint of a 64-byte request body.
#[must_use]
pub fn fingerprint(i: usize) -> Fingerprint {
    let mut request = [b'r'; 64];
    request[..8].copy_from_slice(&(i as u64).to_le_bytes());
    DefaultFingerprintStrategy.compute("bench.op", &request)
}

/// A fresh response body of `len` bytes (allocated per op, as a handler would).
#[must_use]
pub fn body(len: usize, i: usize) -> Bytes {
    let mut v = vec![0u8; len];
    v[0] = u8::try_from(i % 251).unwrap_or_default();
    Bytes::from(v)
}

/// The median of `samples`.
#[must_use]
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs each of `runs` once per repetition, in turn, `reps` times; each returns (ops,
/// elapsed). Returns each one's rates (ops/s), in repetition order.
fn rates(reps: usize, runs: &mut [&mut dyn FnMut() -> (usize, Duration)]) -> Vec<Vec<f64>> {
    let mut rates = vec![Vec::with_capacity(reps); runs.len()];
    for _ in 0..reps {
        for (run, rates) in runs.iter_mut().zip(&mut rates) {
            let (n, t) = run();
            rates.push(n as f64 / t.as_secs_f64());
        }
    }
    rates
}

/// The median of the per-repetition ratios `a[i] / b[i]` (the runs of one repetition share
/// the machine's state, so their ratio is steadier than a ratio of medians).
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    median(&mut ratios)
}

/// `"ok"` when `ratio` reaches `target`, else `"BELOW TARGET"`.
#[must_use]
pub fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio >= target {
        "ok"
    } else {
        "BELOW TARGET"
    }
}

/// Runs `ours` and `ceiling` alternately `reps` times; each returns (ops, elapsed). Prints
/// the medians in ops/s and the ratio against `target`, and returns the ratio.
pub fn compare(
    name: &str,
    reps: usize,
    target: f64,
    mut ours: impl FnMut() -> (usize, Duration),
    mut ceiling: impl FnMut() -> (usize, Duration),
) -> f64 {
    let [mut c, mut o]: [Vec<f64>; 2] = rates(reps, &mut [&mut ceiling, &mut ours])
        .try_into()
        .unwrap_or_default();
    let ratio = median_ratio(&o, &c);
    println!(
        "{name:<52} ours {:>11.0} ops/s   ceiling {:>11.0} ops/s   ratio {:>5.1}% (target >= {:.0}%) {}",
        median(&mut o),
        median(&mut c),
        ratio * 100.0,
        target * 100.0,
        verdict(ratio, target),
    );
    ratio
}

/// What a row with the peer crate must reach: a share of the ceiling and a multiple of the
/// peer.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Ours / ceiling at least this (0.7 = 70%); 0 for a row without a ceiling target.
    pub ceiling: f64,
    /// Ours / peer at least this (3.0 = 3×).
    pub peer: f64,
}

/// Runs the ceiling, the peer crate and ours in turn `reps` times; prints the three median
/// rates and the median ratios ours/ceiling and ours/peer against `targets`; returns the
/// ratios (ceiling, peer).
pub fn compare_with_peer(
    name: &str,
    reps: usize,
    targets: Targets,
    mut ours: impl FnMut() -> (usize, Duration),
    mut peer: impl FnMut() -> (usize, Duration),
    mut ceiling: impl FnMut() -> (usize, Duration),
) -> (f64, f64) {
    let [mut c, mut p, mut o]: [Vec<f64>; 3] =
        rates(reps, &mut [&mut ceiling, &mut peer, &mut ours])
            .try_into()
            .unwrap_or_default();
    let (of_ceiling, of_peer) = (median_ratio(&o, &c), median_ratio(&o, &p));
    println!(
        "{name:<44} ours {:>10.0}/s  peer {:>10.0}/s  ceiling {:>10.0}/s  ours/ceiling {:>5.1}% (>= {:.0}%) {}  ours/peer {:>5.2}x (>= {:.1}x) {}",
        median(&mut o),
        median(&mut p),
        median(&mut c),
        of_ceiling * 100.0,
        targets.ceiling * 100.0,
        verdict(of_ceiling, targets.ceiling),
        of_peer,
        targets.peer,
        verdict(of_peer, targets.peer),
    );
    (of_ceiling, of_peer)
}

/// Makes sure the tool `command` is on PATH, installing Debian's `package` with apt-get if
/// it is not (CI machines have neither `wrk` nor `valgrind` until a benchmark asks).
///
/// # Panics
/// When it is missing and apt-get cannot install it.
pub fn ensure_installed(command: &str, package: &str) {
    if std::process::Command::new(command)
        .arg("--version")
        .output()
        .is_ok()
    {
        return;
    }
    println!("{command} not found; installing {package} with apt-get");
    let installed = std::process::Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed,
        "{command} is needed: `apt-get install {package}`"
    );
}

/// Times `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Timed operations whose outcome was not the one the benchmark measures.
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Records the outcome of one timed operation (an atomic add, and only on failure): a fast
/// path that was really an error path must not pass for a fast result.
pub fn check(ok: bool) {
    if !ok {
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// At the end of a benchmark: exits non-zero when any timed operation failed its check.
pub fn exit_on_failed_checks() {
    let failed = FAILED.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} timed operations failed their check: the rates above are not valid");
        std::process::exit(1);
    }
    println!("every timed operation succeeded");
}

/// Our claim of `key` for op `i` and its completion with `body`, checked: a claim that was not
/// taken or a completion that failed counts as a failed operation.
pub async fn claim_complete<S: idempotent_runtime::IdempotencyStore + ?Sized>(
    store: &S,
    i: usize,
    key: &IdempotencyKey,
    body: Bytes,
    ttl: Duration,
) {
    use idempotent_runtime::{CachedResponse, IdempotencyEntry, InsertResult};
    let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(ttl);
    let Ok(InsertResult::Claimed {
        fencing_token,
        entry,
    }) = store.try_insert(key, entry).await
    else {
        check(false);
        return;
    };
    let done = entry.complete(CachedResponse::from(body));
    check(store.complete(key, done, fencing_token).await.is_ok());
}

/// Our replay of `key` (completed by op `i`), checked: a completed record with a response.
pub async fn replay<S: idempotent_runtime::IdempotencyStore + ?Sized>(
    store: &S,
    i: usize,
    key: &IdempotencyKey,
    ttl: Duration,
) {
    use idempotent_runtime::{ExistingEntry, IdempotencyEntry, InsertResult};
    let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(ttl);
    match store.try_insert(key, entry).await {
        Ok(InsertResult::Exists(ExistingEntry::Completed(done))) => {
            check(std::hint::black_box(done.into_response()).is_some());
        }
        _ => check(false),
    }
}

/// The same workload for the peer crate (`idempotent` 0.3.0).
pub mod peer_workload {
    use bytes::Bytes;
    use peer::fingerprint::{DefaultFingerprintStrategy, FingerprintStrategy};

    /// `keys` as the peer's keys.
    #[must_use]
    pub fn keys(keys: &[idempotent_runtime::IdempotencyKey]) -> Vec<peer::IdempotencyKey> {
        keys.iter()
            .filter_map(|k| peer::IdempotencyKey::new(k.as_str()).ok())
            .collect()
    }

    /// The peer's fingerprint of the 64-byte request of op `i`.
    #[must_use]
    pub fn fingerprint(i: usize) -> peer::Fingerprint {
        let mut request = [b'r'; 64];
        request[..8].copy_from_slice(&(i as u64).to_le_bytes());
        DefaultFingerprintStrategy.compute("bench.op", &request)
    }

    /// The peer's claim of `key` for op `i` and its completion with `body`, kept for `ttl`;
    /// each checked (a claim not taken, a completion refused: a failed operation).
    pub async fn claim_complete<S: peer::store::IdempotencyStore>(
        store: &S,
        i: usize,
        key: &peer::IdempotencyKey,
        body: Bytes,
        ttl: std::time::Duration,
    ) {
        let entry = peer::IdempotencyEntry::new(fingerprint(i), ttl);
        let Ok(peer::store::InsertResult::Claimed { fencing_token }) =
            store.try_insert(key, entry.clone()).await
        else {
            super::check(false);
            return;
        };
        let done = entry.complete(response(body));
        super::check(store.complete(key, done, fencing_token).await.is_ok());
    }

    /// The peer's replay of `key` (completed by op `i`), checked: a completed record whose
    /// fingerprint matches (the peer leaves that check to its caller).
    pub async fn replay<S: peer::store::IdempotencyStore>(
        store: &S,
        i: usize,
        key: &peer::IdempotencyKey,
        ttl: std::time::Duration,
    ) {
        let fingerprint = fingerprint(i);
        let entry = peer::IdempotencyEntry::new(fingerprint, ttl);
        match store.try_insert(key, entry).await {
            Ok(peer::store::InsertResult::Exists(peer::entry::ExistingEntry::Completed(done))) => {
                super::check(done.fingerprint_matches(fingerprint));
                std::hint::black_box(done.into_response());
            }
            _ => super::check(false),
        }
    }

    /// A response with `body`, status 200 and no metadata.
    #[must_use]
    pub fn response(body: Bytes) -> peer::CachedResponse {
        peer::CachedResponse {
            status_code: 200,
            metadata: peer::Metadata::default(),
            body,
        }
    }
}
