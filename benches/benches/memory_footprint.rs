//! The `MemoryStore` memory row of DESIGN §7: a million completed entries — the longest
//! single operation while they fill and while a second million replaces them, and the memory
//! per entry beyond its payload, measured as RSS and counted by the allocator:
//! `cargo bench -p idempotent-benches --bench memory_footprint`.
//!
//! A binary of its own because counting needs a global allocator that counts (`stats_alloc`,
//! shared atomic counters on every allocation and free), which would tax the throughput rows
//! of `--bench memory_store` by how much each side allocates.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use idempotent_benches::{BODY, body, claim_complete, keys, median};
use idempotent_runtime::{ManualClock, MemoryStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TTL: Duration = Duration::from_mins(10);

fn vm_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// 1M completed entries: the longest single operation while filling, and while a second
/// million replaces the first after it expired (sweeping and growth are incremental); and the
/// memory per entry beyond its payload (36-byte key + 256-byte body).
fn million_entries_row(rt: &Runtime) {
    const N: usize = 1_000_000;
    let clock = Arc::new(ManualClock::new());
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let first = keys(N);
    let bodies: Vec<Bytes> = (0..N).map(|i| body(BODY, i)).collect();
    // The samples' own memory, allocated and written before either count starts: it is the
    // benchmark's, not the store's (untouched, its pages would join the RSS as it fills).
    let mut latencies = vec![Duration::MAX; 2 * N];
    latencies.clear();
    let rss_before = vm_rss_bytes();
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for (i, (k, body)) in first.iter().zip(bodies).enumerate() {
            let start = Instant::now();
            claim_complete(&store, i, k, body, TTL).await;
            latencies.push(start.elapsed());
        }
    });
    let stats = region.change();
    let held = stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated);
    let payload = N * (36 + BODY);
    // Beyond the payload, per entry: of the payload only the keys' bytes are in the counts
    // (the bodies were allocated before both started).
    let beyond = |counted: usize| (counted as f64 - (N * 36) as f64) / N as f64;
    let overhead = beyond(held);
    let rss = rss_before
        .zip(vm_rss_bytes())
        .map(|(b, a)| beyond(a.saturating_sub(b)));
    clock.advance(TTL + Duration::from_secs(1));
    let second = keys(N);
    rt.block_on(async {
        for (i, k) in second.iter().enumerate() {
            let start = Instant::now();
            claim_complete(&store, i, k, body(BODY, i), TTL).await;
            latencies.push(start.elapsed());
        }
    });
    let mut micros: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    let p50 = median(&mut micros);
    let p9999 = micros[micros.len() * 9999 / 10000];
    let max = micros.last().copied().unwrap_or_default();
    println!(
        "1M completed entries: op p50 {p50:.2} µs, p99.99 {p9999:.1} µs, max {max:.0} µs (target: no op > 2000 µs) {}",
        if max <= 2000.0 { "ok" } else { "ABOVE TARGET" }
    );
    let within = rss.is_some_and(|r| r <= 160.0) && overhead <= 160.0;
    println!(
        "1M completed entries: beyond the payload ({} B/entry) {} B RSS-measured, {overhead:.0} B \
         allocator-counted (target <= 160 B) {}",
        payload / N,
        rss.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.0}")),
        if within { "ok" } else { "ABOVE TARGET" },
    );
    println!(
        "after the second million (first expired): {} records held",
        store.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    million_entries_row(&rt);
    idempotent_benches::exit_on_failed_checks();
}
