//! A private PostgreSQL server per test: `initdb` and `postgres` from the installed server
//! (`pg_config --bindir`), in a temporary directory, on a free loopback port — so faults can be
//! injected: pause (SIGSTOP of the server and every backend), resume, kill (SIGKILL, a crash),
//! restart on the same data.
//!
//! `initdb` and `postgres` refuse to run as root: as root, both run as the `postgres` user
//! (`CommandExt::uid`), in a directory that user owns.
//!
//! Test support, not library code: it panics with a clear message when something it needs is
//! missing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::reaper::reap_when_this_process_exits;

/// One PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Initializes a cluster (trust authentication, user `postgres`) and starts it.
    ///
    /// # Panics
    /// When the server binaries are missing or the server does not start.
    #[must_use]
    pub fn start() -> Self {
        let bin = bindir();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir = std::env::temp_dir().join(format!("idempotent-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let user = running_as_root().then(postgres_user);
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the directory");
        }
        let mut server = Self {
            port,
            dir,
            bin,
            user,
            child: None,
        };
        let data = server.dir.join("data");
        let status = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed in {}", data.display());
        server.spawn();
        server
    }

    /// One server shared by every test of this test binary: started on first use, stopped by
    /// a reaper when the process exits. For tests that only use it; a test that breaks its
    /// server (kill, pause) starts its own.
    ///
    /// # Panics
    /// When the server cannot be started.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = Self::start();
            if let Some(child) = &server.child {
                reap_when_this_process_exits(child.id(), &server.dir);
            }
            server
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &port, "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            // Commits are written to the WAL before they return (a killed server keeps them,
            // as a real one does); fsync is off, since no test loses the machine's page cache.
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres on port {} did not become ready", self.port);
    }

    /// The connection URL (database `postgres`, user `postgres`, no password).
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Pauses the server and every backend (SIGSTOP to the group): connections stay open,
    /// nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the server and every backend (SIGKILL): a crash; committed data survives.
    pub fn kill(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
            self.signal("-KILL");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // A killed server leaves its pid file; the next start recovers past it.
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
    }

    /// Starts the server again on the same port and data (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Signals the server and every backend. Backends make themselves process-group leaders,
    /// so they are reached as the server's children, not as its group.
    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { return };
        let pid = child.id().to_string();
        let _ = Command::new("pkill")
            .args([signal, "-P", &pid])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("kill")
            .args([signal, &pid])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    from_pg_config
        .filter(|dir| dir.join("postgres").exists())
        .or_else(|| {
            std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().find_map(|e| {
                let bin = e.path().join("bin");
                bin.join("postgres").exists().then_some(bin)
            })
        })
        .unwrap_or_else(|| {
            panic!("no PostgreSQL server binaries: these tests need `postgres` and `initdb` (Debian: `apt-get install postgresql`)")
        })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The uid and gid of the `postgres` user.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no `postgres` user to run the server as (root cannot)"))
    };
    (id("-u"), id("-g"))
}
