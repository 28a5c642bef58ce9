//! Async Rust client for RingDB.
//!
//! Connect with one or more node addresses; any node coordinates any request. Every read
//! returns all sibling versions of a document and an opaque [`Context`]; pass that context
//! to the next write to replace exactly the versions you saw. Consistency and durability
//! are chosen per request or as client defaults.
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

mod admin;
mod error;
mod options;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ringdb_proto::v1 as pb;
use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::client_client::ClientClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

pub use admin::Collection;
pub use error::Error;
pub use options::{Consistency, Context, Durability, ReadOptions, WriteOptions};

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest message the client accepts (a read can return several large siblings).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What a read found: every live sibling and the context that covers them.
#[derive(Debug, Clone)]
pub struct GetResult<T = serde_json::Value> {
    /// Live versions; empty when not found, more than one when concurrent writes conflict.
    pub values: Vec<T>,
    /// Pass to the next write of this key to supersede exactly these versions.
    pub context: Context,
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

/// What a write returned.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// Context of the new version: a write with it supersedes exactly this version.
    pub context: Context,
    /// Replicas that had acknowledged when the coordinator answered.
    pub acknowledged_by: Vec<String>,
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
}

/// Parse every sibling's JSON into `T`.
fn parse_values<T: DeserializeOwned>(raw: &[Bytes]) -> Result<Vec<T>> {
    raw.iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| Error::Document(e.to_string())))
        .collect()
}

#[derive(Clone)]
struct Node {
    address: String,
    client: ClientClient<Channel>,
    admin: AdminClient<Channel>,
}

/// A connection to a RingDB cluster; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    nodes: std::sync::Arc<Vec<Node>>,
    next: std::sync::Arc<AtomicUsize>,
    read_defaults: ReadOptions,
    write_defaults: WriteOptions,
}

fn endpoint(addr: &str) -> Result<Endpoint> {
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| Error::InvalidArgument(format!("bad node address {addr:?}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

impl Client {
    /// Connect to a cluster through any of these `host:port` addresses. Connections are
    /// made lazily; this fails only if no address is given or one is malformed.
    pub async fn connect<I, S>(addresses: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nodes = Vec::new();
        for a in addresses {
            let a = a.as_ref().trim();
            if a.is_empty() {
                continue;
            }
            let channel = endpoint(a)?.connect_lazy();
            nodes.push(Node {
                address: a.to_string(),
                client: ClientClient::new(channel.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
                admin: AdminClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            });
        }
        if nodes.is_empty() {
            return Err(Error::InvalidArgument("no node address given".into()));
        }
        Ok(Client {
            nodes: std::sync::Arc::new(nodes),
            next: Default::default(),
            read_defaults: ReadOptions::new(),
            write_defaults: WriteOptions::new(),
        })
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
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// Try nodes in turn, starting with the next in rotation. A node that cannot be reached
    /// is skipped; `idempotent` calls also move on when a connection breaks mid-call.
    async fn call<T, F, Fut>(&self, idempotent: bool, mut f: F) -> Result<T>
    where
        F: FnMut(Node) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let node = self.nodes[(start + i) % n].clone();
            let address = node.address.clone();
            match f(node).await {
                Ok(v) => return Ok(v),
                Err(s) if error::never_sent(&s) || (idempotent && error::transport_failure(&s)) => {
                    tracing::debug!(node = %address, error = %s, "node did not answer; trying the next");
                    failures.push(format!("{address}: {}", s.message()));
                }
                Err(s) if error::transport_failure(&s) => {
                    return Err(Error::Unreachable(format!(
                        "connection to {address} broke during the request ({}); the write may or may not have been applied",
                        s.message()
                    )))
                }
                Err(s) => return Err(s.into()),
            }
        }
        Err(Error::Unreachable(failures.join("; ")))
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
        let req = pb::GetRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            consistency: consistency.map(|c| c.to_proto() as i32).unwrap_or(0),
            timeout_ms: timeout.map(|t| t.as_millis() as u32).unwrap_or(0),
        };
        let resp = self
            .call(true, |mut n| {
                let req = req.clone();
                async move { n.client.get(req).await }
            })
            .await?
            .into_inner();
        Ok(GetResult {
            values: resp.values,
            context: Context::from_token(resp.context),
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
        };
        let resp = self
            .call(false, |mut n| {
                let req = req.clone();
                async move { n.client.put(req).await }
            })
            .await?
            .into_inner();
        Ok(WriteResult {
            context: Context::from_token(resp.context),
            acknowledged_by: resp.acknowledged_by,
        })
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
        }
    }

    /// Delete what a read at the default level sees.
    pub async fn delete(&self, collection: &str, key: &str) -> Result<WriteResult> {
        self.delete_with(collection, key, &WriteOptions::new())
            .await
    }

    /// Delete with options; with a context, exactly the versions it covers are deleted.
    pub async fn delete_with(
        &self,
        collection: &str,
        key: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let w = self.write_fields(opts);
        let req = pb::DeleteRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            context: w.context,
            consistency: w.consistency,
            durability: w.durability,
            timeout_ms: w.timeout_ms,
        };
        let resp = self
            .call(false, |mut n| {
                let req = req.clone();
                async move { n.client.delete(req).await }
            })
            .await?
            .into_inner();
        Ok(WriteResult {
            context: Context::from_token(resp.context),
            acknowledged_by: resp.acknowledged_by,
        })
    }

    /// Cluster membership and load as one node sees it.
    pub async fn status(&self) -> Result<ClusterStatus> {
        let r = self
            .call(true, |mut n| async move {
                n.admin.status(pb::StatusRequest {}).await
            })
            .await?
            .into_inner();
        Ok(ClusterStatus {
            node_id: r.node_id,
            replication_factor: r.replication_factor,
            nodes: r.nodes,
        })
    }

    /// Token ownership as one node sees it.
    pub async fn ring(&self) -> Result<RingInfo> {
        let r = self
            .call(true, |mut n| async move {
                n.admin.ring(pb::RingRequest {}).await
            })
            .await?
            .into_inner();
        Ok(RingInfo {
            tokens: r.tokens.into_iter().map(|t| (t.token, t.node_id)).collect(),
            replication_factor: r.replication_factor,
        })
    }

    /// The first given node's own replica of a document: no coordination, no repair.
    /// For operators and tests checking what one replica holds.
    pub async fn local_get(&self, collection: &str, key: &str) -> Result<GetResult> {
        let mut admin = self.nodes[0].admin.clone();
        let r = admin
            .local_get(pb::LocalGetRequest {
                collection: collection.to_string(),
                key: key.to_string(),
            })
            .await
            .map_err(|s| {
                if error::transport_failure(&s) {
                    Error::Unreachable(format!("{}: {}", self.nodes[0].address, s.message()))
                } else {
                    s.into()
                }
            })?
            .into_inner();
        Ok(GetResult {
            values: parse_values(&r.values)?,
            context: Context::from_token(r.context),
        })
    }
}
