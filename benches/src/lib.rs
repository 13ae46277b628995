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

/// Runs `ours` and `ceiling` alternately `reps` times; each returns (ops, elapsed). Prints
/// the medians in ops/s and the ratio against `target`, and returns the ratio.
pub fn compare(
    name: &str,
    reps: usize,
    target: f64,
    mut ours: impl FnMut() -> (usize, Duration),
    mut ceiling: impl FnMut() -> (usize, Duration),
) -> f64 {
    let mut ours_rates = Vec::new();
    let mut ceiling_rates = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..reps {
        let (n, t) = ceiling();
        let c = n as f64 / t.as_secs_f64();
        let (n, t) = ours();
        let o = n as f64 / t.as_secs_f64();
        ceiling_rates.push(c);
        ours_rates.push(o);
        ratios.push(o / c);
    }
    let ratio = median(&mut ratios);
    println!(
        "{name:<52} ours {:>11.0} ops/s   ceiling {:>11.0} ops/s   ratio {:>5.1}% (target >= {:.0}%) {}",
        median(&mut ours_rates),
        median(&mut ceiling_rates),
        ratio * 100.0,
        target * 100.0,
        if ratio >= target {
            "ok"
        } else {
            "BELOW TARGET"
        }
    );
    ratio
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
