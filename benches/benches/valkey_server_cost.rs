//! The server work per script call of `ValkeyStore` and the peer's store, counted in
//! instructions: a `redis-server` this benchmark starts under callgrind serves both stores,
//! and each workload is bracketed by zeroing and dumping the counters:
//! `cargo bench -p idempotent-benches --bench valkey_server_cost`.
//!
//! `--bench valkey_store` prints the server's own `usec_per_call`, but that is wall time
//! inside the server and moves ±15% from one run to the next on a shared two-core machine;
//! instruction counts repeat to a fraction of a percent. The server runs with `hz 1`, so its
//! timer adds almost nothing to a workload's count. `valgrind` comes from Debian's package;
//! the benchmark installs it with apt-get when absent.
#![allow(missing_docs, clippy::cast_precision_loss, reason = "benchmark binary")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idempotent_benches::{BODY, body, check, fingerprint, keys, peer_workload, replay};
use idempotent_runtime::{
    CachedResponse, FencingToken, IdempotencyEntry, IdempotencyKey, IdempotencyStore, InsertResult,
    ValkeyStore,
};
use peer::store::IdempotencyStore as _;

const TTL: Duration = Duration::from_mins(10);
const CALLS: usize = 2_000;

/// A `redis-server` under callgrind, killed on drop.
struct Counted {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Counted {
    fn start() -> Self {
        idempotent_benches::ensure_installed("valgrind", "valgrind");
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            listener.local_addr().expect("local address").port()
        };
        let dir = std::env::temp_dir().join(format!("idempotent-callgrind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("callgrind dir");
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}",
                dir.join("cg.out").display()
            ))
            .args([
                "redis-server",
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--save", "", "--appendonly", "no", "--hz", "1"])
            .args(["--protected-mode", "no", "--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server under valgrind (needs redis-server on PATH)");
        let counted = Self { child, dir, port };
        counted.wait_until_ready();
        counted
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_mins(1);
        while Instant::now() < deadline {
            let ready = redis::Client::open(self.url())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ready.is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("redis-server under valgrind did not answer within 60 s");
    }

    fn control(&self, what: &str) {
        let done = Command::new("callgrind_control")
            .arg(what)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(done, "callgrind_control {what} failed");
    }

    /// The server's instructions while `workload` runs.
    fn count(&self, rt: &tokio::runtime::Runtime, workload: impl Future<Output = ()>) -> u64 {
        self.control("-z");
        rt.block_on(workload);
        self.control("-d");
        latest_summary(&self.dir)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The instruction total of the newest callgrind dump in `dir`.
fn latest_summary(dir: &Path) -> u64 {
    let newest = std::fs::read_dir(dir)
        .expect("read the callgrind dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("cg.out."))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .expect("a callgrind dump");
    let text = std::fs::read_to_string(newest.path()).expect("read the dump");
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a summary line")
}

fn row(name: &str, ours: u64, peer: u64) {
    let (ours, peer) = (ours as f64 / CALLS as f64, peer as f64 / CALLS as f64);
    println!(
        "{name:<10} ours {ours:>8.0}  peer {peer:>8.0} instructions/call   ours/peer {:>5.1}% {}",
        ours / peer * 100.0,
        if ours <= peer {
            "at or below the peer's"
        } else {
            "ABOVE THE PEER'S"
        }
    );
}

fn main() {
    let server = Counted::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (ours, peer) = rt.block_on(async {
        let ours = ValkeyStore::connect(&server.url()).await.expect("store");
        let client = redis::Client::open(server.url()).expect("client");
        let peer = peer::store::valkey::ValkeyStore::new(client)
            .await
            .expect("peer store");
        (ours, peer)
    });
    // One of each call first, so every script is loaded before anything is counted.
    let warm = keys(1);
    rt.block_on(async {
        let claimed = claim(&ours, 0, &warm[0]).await;
        complete(&ours, 0, &warm[0], claimed).await;
        let peer_warm = peer_workload::keys(&warm);
        peer_workload::claim_complete(&peer, 0, &peer_warm[0], body(BODY, 0), TTL).await;
    });
    let pool = keys(CALLS);
    let peer_pool = peer_workload::keys(&pool);
    println!(
        "redis-server instructions per script call under callgrind, {CALLS} calls each, one at a time: fresh keys claimed, completed, then replayed"
    );
    let mut tokens = Vec::with_capacity(CALLS);
    let ours_claim = server.count(&rt, async {
        for (i, key) in pool.iter().enumerate() {
            tokens.push(claim(&ours, i, key).await);
        }
    });
    let ours_complete = server.count(&rt, async {
        for (i, (key, token)) in pool.iter().zip(&tokens).enumerate() {
            complete(&ours, i, key, *token).await;
        }
    });
    let ours_replay = server.count(&rt, async {
        for (i, key) in pool.iter().enumerate() {
            replay(&ours, i, key, TTL).await;
        }
    });
    let mut peer_tokens = Vec::with_capacity(CALLS);
    let peer_claim = server.count(&rt, async {
        for (i, key) in peer_pool.iter().enumerate() {
            let entry = peer::IdempotencyEntry::new(peer_workload::fingerprint(i), TTL);
            let claimed = peer.try_insert(key, entry.clone()).await;
            let token = if let Ok(peer::store::InsertResult::Claimed { fencing_token }) = claimed {
                Some((entry, fencing_token))
            } else {
                None
            };
            check(token.is_some());
            peer_tokens.push(token);
        }
    });
    let peer_complete = server.count(&rt, async {
        for (key, claimed) in peer_pool.iter().zip(peer_tokens) {
            let Some((entry, token)) = claimed else {
                continue;
            };
            let done = entry.complete(peer_workload::response(body(BODY, 0)));
            check(peer.complete(key, done, token).await.is_ok());
        }
    });
    let peer_replay = server.count(&rt, async {
        for (i, key) in peer_pool.iter().enumerate() {
            peer_workload::replay(&peer, i, key, TTL).await;
        }
    });
    row("claim", ours_claim, peer_claim);
    row("complete", ours_complete, peer_complete);
    row("replay", ours_replay, peer_replay);
    // Stopped before a failed check exits the process, which would skip its `Drop`.
    drop(server);
    idempotent_benches::exit_on_failed_checks();
}

/// Our claim of `key` for op `i`, checked; its token.
async fn claim(store: &ValkeyStore, i: usize, key: &IdempotencyKey) -> Option<FencingToken> {
    let entry = IdempotencyEntry::new(fingerprint(i)).with_ttl(TTL);
    let claimed = store.try_insert(key, entry).await;
    let token = if let Ok(InsertResult::Claimed { fencing_token, .. }) = claimed {
        Some(fencing_token)
    } else {
        None
    };
    check(token.is_some());
    token
}

/// Our completion of op `i`'s claim with the standard body, checked.
async fn complete(
    store: &ValkeyStore,
    i: usize,
    key: &IdempotencyKey,
    token: Option<FencingToken>,
) {
    let Some(token) = token else {
        return;
    };
    let done = IdempotencyEntry::new(fingerprint(i))
        .with_ttl(TTL)
        .complete(CachedResponse::from(body(BODY, i)));
    check(store.complete(key, done, token).await.is_ok());
}
