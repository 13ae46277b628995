//! A TCP fault proxy between a Redis client and `redis-server`, for lost replies: it reads the
//! RESP commands one way and the replies the other, pairs them in order (Redis answers each
//! connection in order), and applies a fault to the command a rule picks:
//!
//! - [`Fault::LoseReply`]: the server runs the command, the reply never arrives — the proxy
//!   closes the client's connection instead of forwarding it (a connection that died after
//!   sending);
//! - [`Fault::DelayReply`]: the reply, and every reply behind it, arrives that much later (past
//!   the client's timeout, the client gives up while the server has run the command);
//! - [`Fault::CutRequest`]: the connection closes before the command reaches the server.
//!
//! TCP never drops one reply and delivers the next, so neither does the proxy.
//!
//! Test support, not library code: it panics with a clear message when it cannot listen.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to a command a rule picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The server runs the command; the client's connection closes instead of the reply.
    LoseReply,
    /// The reply is held back this long (and every reply behind it).
    DelayReply(Duration),
    /// The connection closes before the command reaches the server.
    CutRequest,
}

type Matcher = Box<dyn Fn(&[Vec<u8>]) -> bool + Send + Sync>;

struct Rule {
    matches: Matcher,
    fault: Fault,
    remaining: usize,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// Commands seen, by the name a classifier gave them (see [`FaultProxy::seen`]).
    seen: Mutex<Vec<Vec<Vec<u8>>>>,
    faults: AtomicUsize,
}

/// A proxy listening on a free loopback port, forwarding to one server.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:server_port` on the current tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(());
        tokio::spawn(accept(listener, server_port, shared.clone(), stopped));
        Self {
            port,
            shared,
            _stop: stop,
        }
    }

    /// The URL a client connects to.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Applies `fault` to the next `times` commands `matches` picks (it sees the command's
    /// arguments, the command name first).
    pub fn on(
        &self,
        matches: impl Fn(&[Vec<u8>]) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: usize,
    ) {
        lock(&self.shared.rules).push(Rule {
            matches: Box::new(matches),
            fault,
            remaining: times,
        });
    }

    /// How many commands `matches` picks among those the proxy forwarded or faulted.
    #[must_use]
    pub fn seen(&self, matches: impl Fn(&[Vec<u8>]) -> bool) -> usize {
        lock(&self.shared.seen)
            .iter()
            .filter(|c| matches(c))
            .count()
    }

    /// How many faults were applied.
    #[must_use]
    pub fn faults(&self) -> usize {
        self.shared.faults.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept(
    listener: TcpListener,
    server_port: u16,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                let shared = shared.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut stopped = stopped;
                    tokio::select! {
                        _ = stopped.changed() => {}
                        () = connection(client, server, shared) => {}
                    }
                });
            }
        }
    }
}

/// One client connection: commands one way, replies the other, a queue of the fault (or
/// none) of each command in flight between them. Returns when either side closes or a fault
/// cuts the connection.
async fn connection(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let pending = Arc::new(Mutex::new(VecDeque::new()));
    let requests = requests(client_read, server_write, shared.clone(), pending.clone());
    let replies = replies(server_read, client_write, pending);
    tokio::select! {
        () = requests => {}
        () = replies => {}
    }
}

async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: Arc<Shared>,
    pending: Arc<Mutex<VecDeque<Option<Fault>>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some(len) = frame_len(&buffer) {
            let frame: Vec<u8> = buffer.drain(..len).collect();
            let command = command_args(&frame);
            let fault = pick(&shared, &command);
            lock(&shared.seen).push(command);
            if fault == Some(Fault::CutRequest) {
                return;
            }
            lock(&pending).push_back(fault);
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn replies(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    pending: Arc<Mutex<VecDeque<Option<Fault>>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some(len) = frame_len(&buffer) {
            let frame: Vec<u8> = buffer.drain(..len).collect();
            let fault = lock(&pending).pop_front().flatten();
            match fault {
                Some(Fault::LoseReply | Fault::CutRequest) => return,
                Some(Fault::DelayReply(by)) => tokio::time::sleep(by).await,
                None => {}
            }
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The fault of the first rule with uses left that picks `command`.
fn pick(shared: &Shared, command: &[Vec<u8>]) -> Option<Fault> {
    let mut rules = lock(&shared.rules);
    let rule = rules
        .iter_mut()
        .find(|r| r.remaining > 0 && (r.matches)(command))?;
    rule.remaining -= 1;
    shared.faults.fetch_add(1, Ordering::SeqCst);
    Some(rule.fault)
}

/// The length of the complete RESP2 frame at the start of `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(buf.get(1..line_end)?).ok()?;
    let after_line = line_end + 2;
    match buf.first()? {
        b'$' => {
            let len: i64 = header.parse().ok()?;
            if len < 0 {
                return Some(after_line);
            }
            let end = after_line + usize::try_from(len).ok()? + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let count: i64 = header.parse().ok()?;
            let mut at = after_line;
            for _ in 0..count.max(0) {
                at += frame_len(buf.get(at..)?)?;
            }
            Some(at)
        }
        // `+`, `-`, `:` are one line; inline commands and RESP3 types are not used by the
        // clients under test.
        _ => Some(after_line),
    }
}

/// The bulk strings of a command frame (`*N` of `$len` strings), the command name first.
fn command_args(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    let Some(first_line) = frame.windows(2).position(|w| w == b"\r\n") else {
        return args;
    };
    let mut at = first_line + 2;
    while at < frame.len() {
        let Some(len) = frame_len(&frame[at..]) else {
            break;
        };
        let item = &frame[at..at + len];
        if let Some(line) = item.windows(2).position(|w| w == b"\r\n")
            && item.len() >= line + 4
        {
            args.push(item[line + 2..item.len() - 2].to_vec());
        }
        at += len;
    }
    args
}

/// What the store's scripts are, told by their arguments (the EVALSHA digest is the store's
/// business): `EVALSHA sha 1 key ARGV…`.
pub mod valkey {
    fn argv(command: &[Vec<u8>]) -> Option<&[Vec<u8>]> {
        let name = command.first()?;
        (name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL"))
            .then(|| command.get(4..))
            .flatten()
    }

    fn is_record(bytes: &[u8], states: &[u8]) -> bool {
        bytes.len() >= 42 && bytes[0] == 2 && states.contains(&bytes[1])
    }

    /// A claim: `ARGV[1]` is the 32-byte claim id (fingerprint and nonce), `ARGV[2]` a lease.
    #[must_use]
    pub fn is_claim(command: &[Vec<u8>]) -> bool {
        argv(command).is_some_and(|a| a.len() == 2 && a[0].len() == 32 && !a[1].is_empty())
    }

    /// A completion: `ARGV[2]` is a completed record.
    #[must_use]
    pub fn is_complete(command: &[Vec<u8>]) -> bool {
        argv(command).is_some_and(|a| a.len() == 2 && is_record(&a[1], b"cn"))
    }

    /// A renewal: `ARGV[1]` is a 24-byte token, `ARGV[2]` a lease.
    #[must_use]
    pub fn is_renew(command: &[Vec<u8>]) -> bool {
        argv(command).is_some_and(|a| a.len() == 2 && a[0].len() == 24 && !a[1].is_empty())
    }
}
