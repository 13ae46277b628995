//! [`ValkeyStoreBuilder`]: connecting a [`ValkeyStore`], and the checks made at connect.

use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Connection, DEFAULT_PREFIX, DEFAULT_TIMEOUT, ValkeyStore, from_redis, unavailable};
use crate::Error;

/// Configures and connects a [`ValkeyStore`]. From [`ValkeyStore::builder`].
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
#[derive(Debug, Clone)]
#[must_use]
pub struct ValkeyStoreBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    allow_eviction: bool,
    root_certificate: Option<Vec<u8>>,
}

impl ValkeyStoreBuilder {
    pub(super) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            allow_eviction: false,
            root_certificate: None,
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

    /// The timeout of connecting and of every call. Default [`DEFAULT_TIMEOUT`]. A call that
    /// times out is [`Error::StoreUnavailable`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` instead of the public web roots: for
    /// servers whose certificate a private CA signed.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
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
        if self.nodes.is_empty() {
            return Err(unavailable("no server URL given"));
        }
        if self.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // TLS needs a process-wide crypto provider; keep one the application installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let connection = tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| unavailable(format!("could not connect within {:?}", self.timeout)))??;
        let store = ValkeyStore {
            connection,
            prefix: self.prefix.into(),
            timeout: self.timeout,
        };
        if !self.allow_eviction {
            store.check_eviction_policy().await?;
        }
        Ok(store)
    }

    async fn open(&self) -> Result<Connection, Error> {
        let certificates = || redis::TlsCertificates {
            client_tls: None,
            root_cert: self.root_certificate.clone(),
        };
        if self.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout);
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(from_redis)?;
        Ok(Connection::Single(manager))
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
