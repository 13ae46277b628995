//! [`poll_until`]: waiting for a condition that another process or a real server's clock
//! brings about, bounded, instead of sleeping a guessed time.

use std::time::{Duration, Instant};

/// Polls `probe` every 10 ms until it gives a value, for at most `within`.
///
/// # Panics
/// When `within` passes first: "timed out: `what`", then what `context` tells.
pub fn poll_until<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
