//! Async Rust client for RingDB.
//!
//! Connect with one or more node addresses. The client fetches the cluster's ring from
//! them and sends each request to a replica of its key (see [`Routing`]), failing over to
//! the key's other replicas when a node does not answer. Every read returns all sibling
//! versions of a document and an opaque [`Context`]; pass that context to the next write
//! to replace exactly the versions you saw, or let [`Client::update`] do the
//! read-merge-write loop for you. Consistency and durability are chosen per request or as
//! client defaults.
//!
//! ```no_run
//! use ringdb_client::{Client, Consistency, WriteOptions};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), ringdb_client::Error> {
//! let client = Client::connect(["127.0.0.1:7401", "127.0.0.1:7402"]).await?;
//! client.put("users", "alice", &json!({"name": "Alice", "age": 31})).await?;
//! let read = client.get("users", "alice").await?;
//! assert_eq!(read.values[0]["name"], "Alice");
//! // Update what we read: the context makes this replace, not add a sibling.
//! let opts = WriteOptions::new().context(read.context.clone()).consistency(Consistency::All);
//! client.put_with("users", "alice", &json!({"name": "Alice", "age": 32}), &opts).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admin;
mod call;
mod error;
mod options;
mod pipe;
mod routing;
mod token;
mod trace;
mod update;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringdb_proto::v1 as pb;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use admin::{Collection, RepairReport, RepairStatus};
pub use call::RetryPolicy;
pub use error::Error;
pub use options::{Consistency, Context, Durability, ReadOptions, WriteOptions};
pub use routing::Routing;
pub use token::{token_for, Token};
pub use trace::{Outcome, ReplicaEvent, Role, Trace, TracedReplica};
pub use update::{UpdateOptions, Updated};

use call::Kind;
use routing::Router;

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a read found: every live sibling and the context that covers them.
#[derive(Debug, Clone)]
pub struct GetResult<T = serde_json::Value> {
    /// Live versions; empty when not found, more than one when concurrent writes conflict.
    pub values: Vec<T>,
    /// Pass to the next write of this key to supersede exactly these versions.
    pub context: Context,
    /// Id of the node that coordinated the read (`None` from servers that do not say), to
    /// see where routing sent it.
    pub coordinator: Option<String>,
    /// What happened inside the cluster, when the read asked ([`ReadOptions::trace`]).
    pub trace: Option<Trace>,
}

impl<T> GetResult<T> {
    /// Whether the document does not exist (or is deleted).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether concurrent writes left more than one version.
    pub fn has_siblings(&self) -> bool {
        self.values.len() > 1
    }
}

/// What a write returned: its new context and a receipt of where it went, so a caller
/// can tell how many copies exist now and which replicas will get it later.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// Context of the new version: a write with it supersedes exactly this version.
    pub context: Context,
    /// Replicas that had acknowledged when the coordinator answered.
    pub acknowledged_by: Vec<String>,
    /// Replicas that had not acknowledged but for which the coordinator had stored a hint
    /// (they were down or their write failed): they get the write when they are back. A
    /// replica in neither list was still being written to when the coordinator answered.
    pub hinted_for: Vec<String>,
    /// Id of the node that took the request (`None` from servers that do not say).
    pub coordinator: Option<String>,
    /// What happened inside the cluster, when the write asked ([`WriteOptions::trace`]).
    pub trace: Option<Trace>,
}

/// Cluster status as seen by one node.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: String,
    /// N.
    pub replication_factor: u32,
    /// Every member.
    pub nodes: Vec<pb::NodeStatus>,
}

/// Token ownership as seen by one node.
#[derive(Debug, Clone)]
pub struct RingInfo {
    /// Every (token, owner) in ring order.
    pub tokens: Vec<(i64, String)>,
    /// N.
    pub replication_factor: u32,
}

/// Write options as the wire carries them (0 / empty meaning "server default").
struct WireWrite {
    context: String,
    consistency: i32,
    durability: i32,
    timeout_ms: u32,
    trace: bool,
}

/// Parse every sibling's JSON into `T`.
fn parse_values<T: DeserializeOwned>(raw: &[Bytes]) -> Result<Vec<T>> {
    raw.iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| Error::Document(e.to_string())))
        .collect()
}

/// An empty wire string as `None`.
fn named(id: String) -> Option<String> {
    (!id.is_empty()).then_some(id)
}

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
        }
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
        let router = Arc::new(Router::new(
            self.addresses,
            self.routing,
            self.connect_timeout,
        )?);
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

/// A connection to a RingDB cluster; cheap to clone and share between tasks (clones share
/// the ring, the connections and the background refresh).
#[derive(Clone)]
pub struct Client {
    router: Arc<Router>,
    retry: RetryPolicy,
    read_defaults: ReadOptions,
    write_defaults: WriteOptions,
    pipelined: bool,
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

    /// Use these read settings when a request does not set its own.
    pub fn with_read_defaults(mut self, o: ReadOptions) -> Self {
        self.read_defaults = o;
        self
    }

    /// Use these write settings (consistency, durability, timeout) when a request does not set its own.
    pub fn with_write_defaults(mut self, o: WriteOptions) -> Self {
        self.write_defaults = WriteOptions { context: None, ..o };
        self
    }

    /// Addresses this client was given.
    pub fn addresses(&self) -> Vec<String> {
        self.router.seeds().to_vec()
    }

    /// How this client picks coordinators.
    pub fn routing(&self) -> Routing {
        self.router.routing()
    }

    /// Addresses a request for this key would try, best first: with token-aware routing
    /// and a known ring, its primary owner first, then the next owners clockwise, then the
    /// rest; otherwise the given addresses in rotation. For tracing and tests.
    pub fn route(&self, collection: &str, key: &str) -> Vec<String> {
        self.router
            .targets(token_for(collection, key))
            .into_iter()
            .map(|t| t.address)
            .collect()
    }

    /// Whether the client holds a ring to route by (token-aware routing only).
    pub fn knows_ring(&self) -> bool {
        self.router.view().is_some()
    }

    /// Fetch the ring now instead of waiting for the background refresh (after adding a
    /// node, say). Fails when no node answers.
    pub async fn refresh_ring(&self) -> Result<()> {
        self.router.refresh().await
    }

    /// Read a document at the client's default consistency.
    pub async fn get(&self, collection: &str, key: &str) -> Result<GetResult> {
        self.get_with(collection, key, &ReadOptions::new()).await
    }

    /// Read a document with per-request options.
    pub async fn get_with(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult> {
        self.get_as(collection, key, opts).await
    }

    /// Read a document into a serde type; every sibling must convert.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult<T>> {
        let raw = self.get_raw(collection, key, opts).await?;
        Ok(GetResult {
            values: parse_values(&raw.values)?,
            context: raw.context,
            coordinator: raw.coordinator,
            trace: raw.trace,
        })
    }

    /// Read a document as the raw JSON bytes the cluster stores.
    pub async fn get_raw(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult<Bytes>> {
        let consistency = opts.consistency.or(self.read_defaults.consistency);
        let timeout = opts.timeout.or(self.read_defaults.timeout);
        let trace = opts.trace.or(self.read_defaults.trace).unwrap_or(false);
        let req = pb::GetRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            consistency: consistency.map(|c| c.to_proto() as i32).unwrap_or(0),
            timeout_ms: timeout.map(|t| t.as_millis() as u32).unwrap_or(0),
            trace,
        };
        let what = format!("read of {collection}/{key}");
        let resp = self
            .routed(Kind::Read, token_for(collection, key), &what, |mut n| {
                let op = pb::client_request::Op::Get(req.clone());
                async move {
                    match n.send(op, self.pipelined).await? {
                        pb::client_response::Result::Get(r) => Ok(r),
                        _ => Err(pipe::mismatched("get")),
                    }
                }
            })
            .await?;
        self.router.saw([resp.coordinator.as_str()]);
        Ok(GetResult {
            values: resp.values,
            context: Context::from_token(resp.context),
            coordinator: named(resp.coordinator),
            trace: resp.trace.map(Trace::from_proto),
        })
    }

    /// Write a document (any serde type that serializes to a JSON object) with no context:
    /// it becomes a sibling of whatever versions exist.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        collection: &str,
        key: &str,
        doc: &T,
    ) -> Result<WriteResult> {
        self.put_with(collection, key, doc, &WriteOptions::new())
            .await
    }

    /// Write a document with per-request options (context, consistency, durability, timeout).
    pub async fn put_with<T: Serialize + ?Sized>(
        &self,
        collection: &str,
        key: &str,
        doc: &T,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let bytes = serde_json::to_vec(doc).map_err(|e| Error::Document(e.to_string()))?;
        self.put_raw(collection, key, Bytes::from(bytes), opts)
            .await
    }

    /// Write JSON bytes as given (the server checks they are one JSON object).
    pub async fn put_raw(
        &self,
        collection: &str,
        key: &str,
        document: Bytes,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let w = self.write_fields(opts);
        let req = pb::PutRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            document,
            context: w.context,
            consistency: w.consistency,
            durability: w.durability,
            timeout_ms: w.timeout_ms,
            ttl_secs: opts.ttl.map_or(0, |t| t.as_secs().max(1)),
            trace: w.trace,
        };
        let what = format!("write of {collection}/{key}");
        let resp = self
            .routed(Kind::Write, token_for(collection, key), &what, |mut n| {
                let op = pb::client_request::Op::Put(req.clone());
                async move {
                    match n.send(op, self.pipelined).await? {
                        pb::client_response::Result::Put(r) => Ok(r),
                        _ => Err(pipe::mismatched("put")),
                    }
                }
            })
            .await?;
        Ok(self.receipt(
            resp.context,
            resp.acknowledged_by,
            resp.hinted_for,
            resp.coordinator,
            resp.trace,
        ))
    }

    /// A write's reply as a [`WriteResult`]; a node the ring does not know prompts a refresh.
    fn receipt(
        &self,
        context: String,
        acknowledged_by: Vec<String>,
        hinted_for: Vec<String>,
        coordinator: String,
        trace: Option<pb::RequestTrace>,
    ) -> WriteResult {
        self.router.saw(
            acknowledged_by
                .iter()
                .chain(&hinted_for)
                .map(String::as_str)
                .chain([coordinator.as_str()]),
        );
        WriteResult {
            context: Context::from_token(context),
            acknowledged_by,
            hinted_for,
            coordinator: named(coordinator),
            trace: trace.map(Trace::from_proto),
        }
    }

    /// A write's options with the client defaults filled in, in wire form.
    fn write_fields(&self, opts: &WriteOptions) -> WireWrite {
        let d = &self.write_defaults;
        WireWrite {
            context: opts
                .context
                .as_ref()
                .map(|c| c.token().to_string())
                .unwrap_or_default(),
            consistency: opts
                .consistency
                .or(d.consistency)
                .map(|c| c.to_proto() as i32)
                .unwrap_or(0),
            durability: opts
                .durability
                .or(d.durability)
                .map(|c| c.to_proto() as i32)
                .unwrap_or(0),
            timeout_ms: opts
                .timeout
                .or(d.timeout)
                .map(|t| t.as_millis() as u32)
                .unwrap_or(0),
            trace: opts.trace.or(d.trace).unwrap_or(false),
        }
    }

    /// Delete what a read at the default level sees.
    pub async fn delete(&self, collection: &str, key: &str) -> Result<WriteResult> {
        self.delete_with(collection, key, &WriteOptions::new())
            .await
    }

    /// Delete with options; with a context, exactly the versions it covers are deleted.
    ///
    /// A context that has seen nothing (from a read that found no document, not even a
    /// deleted one) covers nothing, so nothing is sent and nothing is deleted. On the wire
    /// an empty context means "delete what a read sees", which would delete versions the
    /// caller never saw.
    pub async fn delete_with(
        &self,
        collection: &str,
        key: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        if let Some(c) = opts.context.as_ref().filter(|c| c.is_empty()) {
            return Ok(WriteResult {
                context: c.clone(),
                acknowledged_by: Vec::new(),
                hinted_for: Vec::new(),
                coordinator: None,
                trace: None,
            });
        }
        let w = self.write_fields(opts);
        let req = pb::DeleteRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            context: w.context,
            consistency: w.consistency,
            durability: w.durability,
            timeout_ms: w.timeout_ms,
            trace: w.trace,
        };
        let what = format!("delete of {collection}/{key}");
        let resp = self
            .routed(Kind::Write, token_for(collection, key), &what, |mut n| {
                let op = pb::client_request::Op::Delete(req.clone());
                async move {
                    match n.send(op, self.pipelined).await? {
                        pb::client_response::Result::Delete(r) => Ok(r),
                        _ => Err(pipe::mismatched("delete")),
                    }
                }
            })
            .await?;
        Ok(self.receipt(
            resp.context,
            resp.acknowledged_by,
            resp.hinted_for,
            resp.coordinator,
            resp.trace,
        ))
    }
}
