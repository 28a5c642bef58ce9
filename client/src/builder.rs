//! Making a client: the settings fixed when it connects (routing, retries, ring refresh,
//! defaults) and the first ring fetch.

use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::node::{Bearer, Dial};
use crate::options::{ReadOptions, WriteOptions};
use crate::retry::RetryPolicy;
use crate::routing::{self, Router, Routing};

/// Settings fixed when a client connects: routing, retries, ring refresh, defaults.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    addresses: Vec<String>,
    routing: Routing,
    retry: RetryPolicy,
    refresh_interval: Duration,
    connect_timeout: Duration,
    read_defaults: ReadOptions,
    write_defaults: WriteOptions,
    pipelined: bool,
    tls_ca: Option<Arc<Vec<u8>>>,
    token: Option<Secret>,
}

/// A token that debug output does not show.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<token>")
    }
}

impl ClientBuilder {
    /// Settings for a client of the cluster these `host:port` addresses belong to, with
    /// token-aware routing, the default [`RetryPolicy`] and a ring refresh every 5 s.
    pub fn new<I, S>(addresses: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder {
            addresses: addresses
                .into_iter()
                .map(|a| a.as_ref().trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            routing: Routing::default(),
            retry: RetryPolicy::default(),
            refresh_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            read_defaults: ReadOptions::new(),
            write_defaults: WriteOptions::new(),
            pipelined: true,
            tls_ca: None,
            token: None,
        }
    }

    /// Connect with TLS, trusting nodes whose certificate chains to this CA (PEM bytes).
    /// The node's certificate must name the host part of the address it is reached at.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(Arc::new(pem.into()));
        self
    }

    /// [`tls_ca_pem`](Self::tls_ca_pem) from a file.
    pub fn tls_ca_file(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        Ok(self.tls_ca_pem(pem))
    }

    /// Send this access token with every request (`authorization: Bearer TOKEN`), for
    /// clusters started with `--auth`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    /// Whether gets, puts and deletes share one stream per node (the default: far fewer
    /// frames and system calls with many requests in flight) or each make a call of its
    /// own. Either way the answers and errors are the same.
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelined = on;
        self
    }

    /// How to pick each request's coordinator.
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// How persistently to look for a node that answers.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How often to fetch the ring when nothing prompts it sooner (token-aware routing).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every.max(Duration::from_millis(100));
        self
    }

    /// How long to wait for a TCP connection to a node before trying another.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Read settings for requests that do not set their own.
    pub fn read_defaults(mut self, o: ReadOptions) -> Self {
        self.read_defaults = o;
        self
    }

    /// Write settings (consistency, durability, timeout) for requests that do not set
    /// their own; a context here is ignored.
    pub fn write_defaults(mut self, o: WriteOptions) -> Self {
        self.write_defaults = WriteOptions { context: None, ..o };
        self
    }

    /// Make the client. With token-aware routing it fetches the ring once (waiting at most
    /// the connect timeout; requests rotate over the given addresses until a ring arrives)
    /// and keeps it fresh in the background. Fails only if no address is given or one is
    /// malformed: an unreachable cluster shows in the first request.
    pub async fn connect(self) -> Result<Client> {
        let dial = Dial {
            connect_timeout: self.connect_timeout,
            tls_ca: self.tls_ca,
            bearer: Bearer::new(self.token.as_ref().map(|t| t.0.as_str()))?,
        };
        let router = Arc::new(Router::new(self.addresses, self.routing, dial)?);
        if self.routing == Routing::TokenAware {
            match tokio::time::timeout(self.connect_timeout, router.refresh()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "no ring yet; rotating over the given addresses")
                }
                Err(_) => tracing::debug!("no ring in time; rotating over the given addresses"),
            }
            routing::spawn_refresher(&router, self.refresh_interval);
        }
        Ok(Client {
            router,
            retry: self.retry,
            read_defaults: self.read_defaults,
            write_defaults: self.write_defaults,
            pipelined: self.pipelined,
        })
    }
}

impl Client {
    /// Connect to a cluster through any of these `host:port` addresses with the default
    /// settings (token-aware routing); see [`ClientBuilder::connect`].
    pub async fn connect<I, S>(addresses: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder::new(addresses).connect().await
    }

    /// Settings for a client with non-default routing, retries or refresh.
    ///
    /// ```no_run
    /// use ringdb_client::{Client, Routing};
    /// # async fn demo() -> Result<(), ringdb_client::Error> {
    /// let client = Client::builder(["127.0.0.1:7401"])
    ///     .routing(Routing::RoundRobin)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder<I, S>(addresses: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder::new(addresses)
    }
}
