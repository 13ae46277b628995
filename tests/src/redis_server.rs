//! Real `redis-server` processes for tests and benchmarks, each on a free loopback port in its
//! own temporary directory, stopped by pid when dropped — so faults can be injected: kill
//! (SIGKILL), pause (SIGSTOP), resume, restart on the same port.
//!
//! Test support, not library code: it panics with a clear message when something it needs is
//! missing (for example `redis-server` not on `PATH`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::reaper::reap_when_this_process_exits;

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with no persistence and `maxmemory-policy noeviction`.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// One server shared by every test of this test binary: started on first use, stopped by
    /// a reaper when the process exits. For tests that only use it; a test that breaks its
    /// server (kill, pause) starts its own.
    ///
    /// # Panics
    /// When the server cannot be started.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = Self::start();
            server.reap_with_this_process();
            server
        })
    }

    fn reap_with_this_process(&self) {
        if let Some(pid) = self.pid() {
            reap_when_this_process_exits(pid, &self.dir);
        }
    }

    /// Starts a server with extra `--name value` arguments.
    #[must_use]
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Starts a server on `port`, or on another free one when the server exits before it
    /// answers: the port (or a cluster node's bus port, +10000) was free when `free_port` saw
    /// it, but another test's server or connection may have taken it since.
    fn start_on(port: u16, extra: &[&str]) -> Self {
        const ATTEMPTS: usize = 5;
        let (mut port, mut attempt) = (port, 1);
        loop {
            let dir = std::env::temp_dir()
                .join(format!("idempotent-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let mut server = Self {
                port,
                dir,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
                child: None,
            };
            match server.try_spawn() {
                Ok(()) => return server,
                Err(status) if attempt < ATTEMPTS => {
                    eprintln!("redis-server on port {port} exited ({status}); trying another port");
                    port = free_port();
                    attempt += 1;
                }
                Err(status) => panic!(
                    "redis-server exited before answering ({status}) on {ATTEMPTS} free ports in turn"
                ),
            }
        }
    }

    /// Starts the process on this server's port (again, after a kill).
    fn spawn(&mut self) {
        if let Err(status) = self.try_spawn() {
            panic!(
                "redis-server on port {} exited before answering: {status}",
                self.port
            );
        }
    }

    /// Starts the process and waits until it answers; its exit status if it exits first.
    fn try_spawn(&mut self) -> Result<(), std::process::ExitStatus> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--protected-mode", "no", "--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start `redis-server` ({e}): these tests need Redis >= 7 on PATH (Debian: `apt-get install redis-server`)"
            )
        });
        let ready = wait_until_ready(
            &mut child,
            self.port,
            self.extra.iter().any(|a| a == "--requirepass"),
        );
        self.child = Some(child);
        ready
    }

    /// Starts a server that also listens with TLS on a second port, with a certificate for
    /// `127.0.0.1` signed by a fresh test CA (made with `openssl`). Returns the server, the
    /// TLS port and the CA certificate (PEM).
    #[must_use]
    pub fn start_tls() -> (Self, u16, Vec<u8>) {
        let tls_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "idempotent-redis-tls-{}-{tls_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let ca = tls_certificates(&dir);
        let path = |name: &str| dir.join(name).display().to_string();
        let port = tls_port.to_string();
        let (cert, key, ca_file) = (path("server.crt"), path("server.key"), path("ca.crt"));
        let server = Self::start_with(&[
            "--tls-port",
            &port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
        ]);
        (server, tls_port, ca)
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and waits for it: every record is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Pauses the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("server is running").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// A synchronous connection for setting up and inspecting state in tests.
    #[must_use]
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("cannot connect to test server {}: {e}", self.url()))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused process must be resumed to die cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` masters (no replicas), created with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// A 3-master cluster shared by every test of this test binary, reaped when the process
    /// exits (see [`RedisServer::shared`]).
    ///
    /// # Panics
    /// When the cluster cannot be started.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = Self::start(3);
            cluster
                .nodes
                .iter()
                .for_each(RedisServer::reap_with_this_process);
            cluster
        })
    }

    /// Starts `n` (>= 3) cluster-enabled servers and joins them into one cluster.
    #[must_use]
    pub fn start(n: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("cannot run `redis-cli --cluster create`: redis-cli must be on PATH");
        assert!(
            output.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.client())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster did not become ready: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self { nodes }
    }

    /// The node URLs.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// Makes a test CA and a server certificate for `127.0.0.1` in `dir`; returns the CA (PEM).
fn tls_certificates(dir: &std::path::Path) -> Vec<u8> {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("cannot run `openssl`: the TLS test needs it on PATH");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=idempotent test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    std::fs::read(dir.join("ca.crt")).expect("read ca.crt")
}

/// A port that is free now, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

/// Whether the server answering on `port` is process `pid`.
fn serves(port: u16, pid: u32) -> bool {
    let info: redis::RedisResult<String> = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("INFO").arg("server").query(&mut c));
    let line = format!("process_id:{pid}");
    info.is_ok_and(|info| info.lines().any(|l| l.trim() == line))
}

/// Waits until the server on `port` answers — `INFO` with this child's pid (another server
/// may hold the port), or `NOAUTH` to a `PING` when it needs a password — or its exit status
/// if it exits first (a server that cannot bind its port exits at once).
fn wait_until_ready(
    child: &mut Child,
    port: u16,
    needs_auth: bool,
) -> Result<(), std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        if needs_auth {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut reply = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok()
                    && let Ok(n) = stream.read(&mut reply)
                    && String::from_utf8_lossy(&reply[..n]).contains("NOAUTH")
                {
                    return Ok(());
                }
            }
        } else if serves(port, child.id()) {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer PING within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Between `free_port` and the server's own bind, another process may take the port or a
    /// cluster node's bus port (+10000): the server exits at once, and starts on another.
    #[test]
    fn a_server_whose_port_was_taken_meanwhile_starts_on_another() {
        let port = free_port();
        let _bus = TcpListener::bind(("127.0.0.1", port + 10_000)).expect("hold the bus port");
        let server = RedisServer::start_on(port, &["--cluster-enabled", "yes"]);
        assert_ne!(server.port(), port, "moved to a free port");
        let pong: String = redis::cmd("PING")
            .query(&mut server.client())
            .expect("PING");
        assert_eq!(pong, "PONG");
    }
}
