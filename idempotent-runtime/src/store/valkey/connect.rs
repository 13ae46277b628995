//! [`ValkeyStoreBuilder`]: connecting a [`ValkeyStore`], and the checks made at connect.

use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;

use std::sync::Arc;

use super::cache::LocalCache;
use super::{
    Connection, DEFAULT_CONNECTIONS, DEFAULT_PREFIX, DEFAULT_TIMEOUT, Managers, ValkeyStore,
    from_redis, unavailable,
};
use crate::Error;

/// Configures and connects a [`ValkeyStore`]. From [`ValkeyStore::builder`]: to a URL or a
/// cluster, or on a connection the application already has (one pool for the app).
///
/// ```no_run
/// use std::time::Duration;
/// use idempotent_runtime::ValkeyStore;
///
/// # async fn start() -> Result<(), idempotent_runtime::Error> {
/// let store = ValkeyStore::builder()
///     .url("rediss://:secret@cache.internal:6380")
///     .prefix("payments:idem:")
///     .timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ValkeyStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    allow_eviction: bool,
    /// Connections to a standalone server.
    connections: usize,
    root_certificate: Option<Vec<u8>>,
    /// Bounds of the local cache of completed records (entries, bytes), when enabled.
    local_cache: Option<(usize, usize)>,
    /// The application's own client or connection, instead of `nodes`.
    supplied: Option<Supplied>,
}

#[derive(Clone)]
enum Supplied {
    Client(Box<redis::Client>),
    Connection(Connection),
}

impl std::fmt::Debug for ValkeyStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyStoreBuilder")
            .field("nodes", &self.nodes.len())
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("allow_eviction", &self.allow_eviction)
            .field("connections", &self.connections)
            .field("local_cache", &self.local_cache)
            .field("supplied", &self.supplied.is_some())
            .finish_non_exhaustive()
    }
}

impl ValkeyStoreBuilder {
    pub(super) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_TIMEOUT,
            response_timeout: DEFAULT_TIMEOUT,
            allow_eviction: false,
            connections: DEFAULT_CONNECTIONS,
            root_certificate: None,
            local_cache: None,
            supplied: None,
        }
    }

    /// A standalone server (or a proxy). `redis://[user:password@]host:port[/db]`; `rediss://`
    /// for TLS.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.nodes = vec![url.into()];
        self.cluster = false;
        self
    }

    /// A Redis Cluster, reached through any of these nodes (same URL forms as [`Self::url`]).
    pub fn cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = nodes.into_iter().map(Into::into).collect();
        self.cluster = true;
        self
    }

    /// The prefix of every key the store writes. Default [`DEFAULT_PREFIX`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The timeout of connecting and of every call: [`Self::connect_timeout`] and
    /// [`Self::response_timeout`] at once. Default [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.response_timeout = timeout;
        self
    }

    /// How long connecting (and the checks made at connect) may take. Default
    /// [`DEFAULT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each call may wait for its reply; past it the call is
    /// [`Error::StoreUnavailable`] with [`ReplyLost`](crate::store::ReplyLost) (it may have
    /// run). Default [`DEFAULT_TIMEOUT`]. Applied to a connection the application supplies as
    /// well, whatever that connection's own settings.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects through the application's `client` (its URL, TLS and credentials), with this
    /// builder's timeouts.
    ///
    /// ```no_run
    /// use idempotent_runtime::ValkeyStore;
    ///
    /// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let store = ValkeyStore::builder().client(client).connect().await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn client(mut self, client: redis::Client) -> Self {
        self.supplied = Some(Supplied::Client(Box::new(client)));
        self
    }

    /// Runs on the application's own `ConnectionManager`, which it keeps using for its own
    /// commands: one multiplexed connection for the app. The store bounds each of its calls
    /// by [`Self::response_timeout`].
    ///
    /// ```no_run
    /// use idempotent_runtime::ValkeyStore;
    ///
    /// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = redis::aio::ConnectionManager::new(client).await?;
    /// let store = ValkeyStore::builder().connection_manager(manager.clone()).connect().await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_manager(mut self, manager: ConnectionManager) -> Self {
        let managers = Managers::new(manager, Vec::new());
        self.supplied = Some(Supplied::Connection(Connection::Single(Arc::new(managers))));
        self
    }

    /// Runs on the application's own cluster connection (see
    /// [`Self::connection_manager`]).
    pub fn cluster_connection(mut self, connection: ClusterConnection) -> Self {
        self.supplied = Some(Supplied::Connection(Connection::Cluster(connection)));
        self
    }

    /// How many multiplexed connections to a standalone server (from [`Self::url`] or
    /// [`Self::client`]) the store opens and uses in turn. Default [`DEFAULT_CONNECTIONS`]:
    /// with one, the server waits while the client reads a batch of replies and the client
    /// waits while the server runs the next batch; with two, one connection's work overlaps
    /// the other's (`cargo bench -p idempotent-benches --bench valkey_store` shows what it is
    /// worth on a machine). A cluster connection keeps one connection per node of its own, and
    /// a connection the application supplies is used as it is: this setting is for neither.
    ///
    /// ```no_run
    /// use idempotent_runtime::ValkeyStore;
    ///
    /// # async fn start() -> Result<(), idempotent_runtime::Error> {
    /// let store = ValkeyStore::builder()
    ///     .url("redis://127.0.0.1:6379")
    ///     .connections(4)
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` instead of the public web roots: for
    /// servers whose certificate a private CA signed.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Answers replays of completed records from process memory, up to `max_entries` records
    /// and `max_bytes` of them (keys and responses): a completed record cannot change until it
    /// expires, so a replay need not ask the server. Each is kept no longer than its remaining
    /// TTL as the server reported it when it was read (or as this process stored it), and is
    /// added when this process completes a key or first replays one. Off by default.
    ///
    /// The cache cannot see what happens to a record on the server after it was read: an
    /// operator's `DEL` of a completed record (to let a customer's key run again) is not seen
    /// by processes that cached it until its TTL would have ended. Claims, conflicts and
    /// in-flight records always go to the server.
    ///
    /// ```no_run
    /// use idempotent_runtime::ValkeyStore;
    ///
    /// # async fn start() -> Result<(), idempotent_runtime::Error> {
    /// let store = ValkeyStore::builder()
    ///     .url("redis://127.0.0.1:6379")
    ///     .local_cache(100_000, 256 << 20)
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_cache(mut self, max_entries: usize, max_bytes: usize) -> Self {
        self.local_cache = Some((max_entries, max_bytes));
        self
    }

    /// Connects even when the server's `maxmemory-policy` may evict keys, or cannot be read
    /// (`CONFIG` disabled). Eviction can delete a live claim or result and let a retry run the
    /// side effect twice: opt in only if the server never reaches `maxmemory`.
    pub fn allow_eviction(mut self) -> Self {
        self.allow_eviction = true;
        self
    }

    /// Connects and checks the server.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when a URL is invalid, the server cannot be reached in time,
    /// authentication fails, or its eviction policy may evict keys.
    pub async fn connect(self) -> Result<ValkeyStore, Error> {
        if self.supplied.is_none() && self.nodes.is_empty() {
            return Err(unavailable("no server URL given"));
        }
        if self.connections == 0 {
            return Err(unavailable(
                "`connections(0)`: a store needs at least one connection",
            ));
        }
        if self.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // TLS needs a process-wide crypto provider; keep one the application installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let within = self.connect_timeout;
        let connected = async {
            let (connection, supplied) = match self.supplied.clone() {
                Some(Supplied::Connection(connection)) => (connection, true),
                Some(Supplied::Client(client)) => (self.manager(*client).await?, false),
                None => (self.open().await?, false),
            };
            let store = ValkeyStore {
                connection,
                prefix: self.prefix.clone().into(),
                timeout: self.response_timeout,
                bound_calls: supplied,
                cache: self
                    .local_cache
                    .map(|(entries, bytes)| Arc::new(LocalCache::new(entries, bytes))),
            };
            if !self.allow_eviction {
                store.check_eviction_policy().await?;
            }
            Ok(store)
        };
        tokio::time::timeout(within, connected)
            .await
            .map_err(|_| unavailable(format!("could not connect within {within:?}")))?
    }

    /// A multiplexed connection on `client` that reconnects by itself, with these timeouts.
    async fn manager(&self, client: redis::Client) -> Result<Connection, Error> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connect = || async {
            ConnectionManager::new_with_config(client.clone(), config.clone())
                .await
                .map_err(from_redis)
        };
        let first = connect().await?;
        let mut others = Vec::with_capacity(self.connections.saturating_sub(1));
        for _ in 1..self.connections {
            others.push(connect().await?);
        }
        Ok(Connection::Single(Arc::new(Managers::new(first, others))))
    }

    async fn open(&self) -> Result<Connection, Error> {
        let certificates = || redis::TlsCertificates {
            client_tls: None,
            root_cert: self.root_certificate.clone(),
        };
        if self.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout);
            if self.root_certificate.is_some() {
                builder = builder.certs(certificates());
            }
            let client = builder
                .build()
                .map_err(|e| unavailable(format!("invalid cluster configuration: {e}")))?;
            let connection = client.get_async_connection().await.map_err(from_redis)?;
            return Ok(Connection::Cluster(connection));
        }
        let url = self.nodes[0].as_str();
        let client = match &self.root_certificate {
            Some(_) => redis::Client::build_with_tls(url, certificates()),
            None => redis::Client::open(url),
        }
        .map_err(|e| unavailable(format!("invalid URL: {e}")))?;
        self.manager(client).await
    }
}

impl ValkeyStore {
    async fn check_eviction_policy(&self) -> Result<(), Error> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg("maxmemory-policy");
        let reply = self.send(&command).await.map_err(|e| {
                unavailable(format!(
                    "cannot read `maxmemory-policy` ({e}); if CONFIG is disabled on this server and it never evicts, connect with `allow_eviction()`"
                ))
            })?;
        let mut strings = Vec::new();
        flatten(&reply, &mut strings);
        let policies: Vec<&String> = strings
            .iter()
            .filter(|s| s.as_str() != "maxmemory-policy")
            .collect();
        if policies.is_empty() {
            return Err(unavailable(
                "the server did not report its `maxmemory-policy`; connect with `allow_eviction()` if it never evicts",
            ));
        }
        if let Some(policy) = policies.iter().find(|p| p.as_str() != "noeviction") {
            return Err(unavailable(format!(
                "the server's maxmemory-policy is `{policy}`, which may evict idempotency records and let a retry run twice; set `maxmemory-policy noeviction`, or connect with `allow_eviction()` to accept the risk"
            )));
        }
        Ok(())
    }
}

fn flatten(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}
