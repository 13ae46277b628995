//! The reaper of servers shared by every test of one test binary: a `static` is never dropped,
//! so a watcher process stops the server and removes its directory once the test process has
//! exited, however it exited.

use std::path::Path;
use std::process::{Command, Stdio};

/// Kills `pid` (SIGKILL) and removes `dir` once this process is gone.
///
/// # Panics
/// When `sh` cannot be started (a test harness failure).
pub fn reap_when_this_process_exits(pid: u32, dir: &Path) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.2; done; kill -9 {pid} 2>/dev/null; rm -rf '{}'",
        dir.display()
    );
    // Started in the background of a shell that exits at once (and is waited for): the
    // watcher belongs to init, not to this process.
    let started = Command::new("sh")
        .arg("-c")
        .arg(format!("({script}) </dev/null >/dev/null 2>&1 &"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the reaper of a shared test server");
    assert!(started.success(), "the reaper did not start: {started}");
}
