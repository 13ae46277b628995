//! The observability row of DESIGN §7 / issue 7: the `#[idempotent]` macro's cost with the
//! `tracing` and `metrics` features compiled in but no subscriber or recorder installed,
//! against the build without them: `cargo bench -p idempotent-benches --bench
//! observability_overhead`.
//!
//! One binary cannot hold both builds, so this runs `--bench macro_overhead` of both builds
//! alternately (three times each) and compares their per-call times; target: within 5%.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::process::Command;

use idempotent_benches::median;

const ROUNDS: usize = 3;
const TARGET: f64 = 1.05;

/// The per-call ns of the `#[idempotent]` fn in each row of `macro_overhead`, in order.
fn run(features: &[&str]) -> Vec<f64> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "bench",
            "--quiet",
            "-p",
            "idempotent-benches",
            "--bench",
            "macro_overhead",
        ])
        .args(features)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo bench");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "macro_overhead failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .filter_map(|line| {
            let rest = line.split(" ours ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

fn main() {
    let names = ["first call", "replay"];
    let mut without: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut with: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..ROUNDS {
        for (row, ns) in run(&[]).into_iter().enumerate().take(names.len()) {
            without[row].push(ns);
        }
        for (row, ns) in run(&["--features", "observe"])
            .into_iter()
            .enumerate()
            .take(names.len())
        {
            with[row].push(ns);
        }
    }
    println!(
        "#[idempotent] with `tracing` + `metrics` compiled in, no subscriber or recorder, vs without; medians of {ROUNDS} builds' runs"
    );
    for (row, name) in names.iter().enumerate() {
        let (w, wo) = (median(&mut with[row]), median(&mut without[row]));
        let ratio = w / wo;
        println!(
            "{name:<34} with {w:>7.0} ns/call   without {wo:>7.0} ns/call   ratio {:>6.1}% (target <= {:.0}%) {}",
            ratio * 100.0,
            TARGET * 100.0,
            if ratio <= TARGET {
                "ok"
            } else {
                "ABOVE TARGET"
            }
        );
    }
}
