//! The `MemoryStore` memory row of DESIGN §7: a million completed entries — the longest
//! single operation while they fill and while a second million replaces them, and the memory
//! per entry beyond its payload, measured as RSS and counted by the allocator:
//! `cargo bench -p idempotent-benches --bench memory_footprint`.
//!
//! The peer crate's store (`idempotent` 0.3.0) fills its own million in a child process of
//! this binary (a fresh heap, so neither side's RSS counts the other's), and the row prints
//! both sides' longest operation while filling and RSS per entry, with the ratios.
//!
//! A binary of its own because counting needs a global allocator that counts (`stats_alloc`,
//! shared atomic counters on every allocation and free), which would tax the throughput rows
//! of `--bench memory_store` by how much each side allocates.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use idempotent_benches::{BODY, body, check, claim_complete, keys, median, peer_workload};
use idempotent_runtime::{ManualClock, MemoryStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TTL: Duration = Duration::from_mins(10);
const N: usize = 1_000_000;
/// Set in the child process that fills the peer's store.
const PEER_SIDE: &str = "IDEMPOTENT_FOOTPRINT_PEER";

/// What filling a million entries cost one side: its longest operation and the RSS it grew
/// by, per entry, beyond the payload's key bytes (the bodies exist before it starts).
struct Fill {
    max_micros: f64,
    rss_beyond: Option<f64>,
}

/// Beyond the payload, per entry, of `grown` bytes: of the payload only the keys' bytes are in
/// it (the bodies were allocated before the count started).
fn beyond_payload(grown: usize) -> f64 {
    (grown as f64 - (N * 36) as f64) / N as f64
}

/// The peer's million, filled in this (child) process; printed for the parent to read.
fn peer_fill(rt: &Runtime) {
    let store = {
        let _on = rt.enter();
        peer::store::memory::MemoryStore::new(1024, Duration::from_mins(1))
    };
    let keys = peer_workload::keys(&keys(N));
    let bodies: Vec<Bytes> = (0..N).map(|i| body(BODY, i)).collect();
    let mut latencies = vec![Duration::MAX; N];
    latencies.clear();
    let rss_before = vm_rss_bytes();
    rt.block_on(async {
        for (i, (k, body)) in keys.iter().zip(bodies).enumerate() {
            let start = Instant::now();
            peer_workload::claim_complete(&store, i, k, body, TTL).await;
            latencies.push(start.elapsed());
        }
    });
    let rss = rss_before
        .zip(vm_rss_bytes())
        .map(|(b, a)| a.saturating_sub(b));
    let max = latencies
        .iter()
        .max()
        .map_or(0.0, |d| d.as_secs_f64() * 1e6);
    println!(
        "peer-fill {max} {}",
        rss.map_or_else(|| "n/a".to_owned(), |r| beyond_payload(r).to_string())
    );
    drop(store);
}

/// Runs [`peer_fill`] in a child process of this binary and reads what it printed.
fn peer_side() -> Option<Fill> {
    let output = std::process::Command::new(std::env::current_exe().ok()?)
        .env(PEER_SIDE, "1")
        .output()
        .ok()?;
    check(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("peer-fill "))?;
    let mut fields = line.split_whitespace();
    Some(Fill {
        max_micros: fields.next()?.parse().ok()?,
        rss_beyond: fields.next().and_then(|r| r.parse().ok()),
    })
}

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
    let overhead = beyond_payload(held);
    let rss = rss_before
        .zip(vm_rss_bytes())
        .map(|(b, a)| beyond_payload(a.saturating_sub(b)));
    let fill_max = latencies
        .iter()
        .max()
        .map_or(0.0, |d| d.as_secs_f64() * 1e6);
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
    drop(store);
    let Some(peer) = peer_side() else {
        println!("1M completed entries, the peer: no result from its process");
        check(false);
        return;
    };
    let per_entry = |beyond: Option<f64>| beyond.map(|b| b + payload as f64 / N as f64);
    let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    println!(
        "1M completed entries, filling, ours vs the peer: longest op {fill_max:.0} µs vs {:.0} µs \
         ({:.0}x shorter); RSS per entry {} B vs {} B (payload {} B)",
        peer.max_micros,
        peer.max_micros / fill_max.max(1.0),
        fmt(per_entry(rss)),
        fmt(per_entry(peer.rss_beyond)),
        payload / N,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    if std::env::var_os(PEER_SIDE).is_some() {
        peer_fill(&rt);
        idempotent_benches::exit_on_failed_checks();
        return;
    }
    million_entries_row(&rt);
    idempotent_benches::exit_on_failed_checks();
}
