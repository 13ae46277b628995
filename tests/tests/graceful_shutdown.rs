//! Deploys: a service (bin `shutdown_server`, its records in a SQLite file) gets SIGTERM while a
//! handler whose client hung up is still running. With `service::shutdown` after the server
//! stopped accepting, the handler finishes and stores its result, and the retry after the
//! restart replays it. The control exits without it: its key is left claimed, unanswered.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use idempotent_tests::http::post_key;
use idempotent_tests::sql::TempDir;
use idempotent_tests::wait::poll_until;

struct Paths {
    db: PathBuf,
    port: PathBuf,
    ledger: PathBuf,
}

fn start(paths: &Paths, extra: &[&str]) -> (Child, String) {
    let _ = std::fs::remove_file(&paths.port);
    let child = Command::new(env!("CARGO_BIN_EXE_shutdown_server"))
        .arg(&paths.db)
        .arg(&paths.port)
        .arg(&paths.ledger)
        .arg("1500")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shutdown_server");
    let port = wait_for(|| {
        std::fs::read_to_string(&paths.port)
            .ok()
            .filter(|p| !p.is_empty())
    });
    (child, format!("http://127.0.0.1:{port}"))
}

/// Polls `probe` (bounded, 10 s) until it answers.
fn wait_for<T>(probe: impl Fn() -> Option<T>) -> T {
    poll_until("the server", Duration::from_secs(10), probe, String::new)
}

fn ledger_lines(ledger: &Path) -> usize {
    std::fs::read_to_string(ledger).map_or(0, |t| t.lines().count())
}

/// Sends a request for `key` and hangs up once the handler has had its side effect.
fn cut_off_request(base: &str, key: &str, ledger: &Path, effects_before: usize) {
    let address = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).expect("connect");
    write!(
        socket,
        "POST /slow HTTP/1.1\r\nhost: {address}\r\nidempotency-key: {key}\r\ncontent-length: 0\r\n\r\n"
    )
    .expect("send");
    wait_for(|| (ledger_lines(ledger) > effects_before).then_some(()));
    drop(socket);
}

fn terminate(child: Child) -> String {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_detached_handler_finishes_on_shutdown_and_its_retry_replays_after_restart() {
    let dir = TempDir::new("shutdown");
    let paths = Paths {
        db: dir.path().join("app.db"),
        port: dir.path().join("port"),
        ledger: dir.path().join("ledger"),
    };

    let (server, base) = start(&paths, &[]);
    cut_off_request(&base, "deploy-1", &paths.ledger, 0);
    let said = terminate(server);
    assert!(said.contains("drained: true"), "{said}");

    // The control: a process that exits without draining leaves its key claimed.
    let (server, base) = start(&paths, &["no-drain"]);
    cut_off_request(&base, "deploy-2", &paths.ledger, 1);
    let said = terminate(server);
    assert!(said.contains("without draining"), "{said}");

    let (server, base) = start(&paths, &[]);
    let url = format!("{base}/slow");
    let replay = post_key(&url, "deploy-1", "").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.expect("body"), "done #1");
    let lost = post_key(&url, "deploy-2", "").await;
    assert_eq!(
        lost.status(),
        409,
        "without draining, the cut-off handler never stored its result: in flight until its lease lapses"
    );
    assert_eq!(ledger_lines(&paths.ledger), 2, "each key ran once");
    terminate(server);
}
