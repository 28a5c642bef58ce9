//! The coordinator: any node takes any request, fans it out to the key's replicas and
//! answers when the requested consistency level is met.
//!
//! Invariants kept here:
//! - a level counts acknowledgements from the key's N primary replicas only;
//! - when fewer live primaries exist than the level needs, the request fails with
//!   `Unavailable` before anything is written;
//! - every new version is minted by a replica of its key (the coordinator forwards when it
//!   is not one), so dots are per-key sequences on the node that owns them;
//! - replicas receive encoded sibling sets and merge them; nobody re-parses JSON;
//! - a read answers with the join of the replies and repairs, in the background, every
//!   replica whose reply (including late ones) was less than the join;
//! - a request that asks for a trace gets one; the others record nothing (see `trace`).
//!
//! The read path is in `read`, the write path (forwarding, minting, hints, deletes) in
//! `write`.

pub mod hints;
pub mod level;
pub mod quorum;
mod reach;
mod read;
mod trace;
pub mod validate;
mod write;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::Clock;
use crate::cluster::Membership;
use crate::error::{Error, Result};
use crate::ring::token_for;
use crate::storage::{Durability, Storage};
use crate::transport::Transport;
use crate::version::{CausalContext, SiblingSet};
use hints::Hints;
pub use level::Level;
use reach::Reach;
pub use trace::Traced;
use trace::Tracer;

/// Settings every request uses unless it says otherwise.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// N of collections created without options (each collection's own N is in the schema).
    pub replication_factor: usize,
    /// How long to wait for a level by default.
    pub request_timeout: Duration,
    /// A read first asks only as many replicas as its level needs; the others are asked too
    /// if the level is not met within this time (or one of the first fails).
    pub speculative_retry: Duration,
    /// Client requests this node coordinates at once; past this they are refused at once
    /// with `RESOURCE_EXHAUSTED` instead of queueing until they time out.
    pub max_client_requests: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            replication_factor: 3,
            request_timeout: Duration::from_secs(2),
            speculative_retry: Duration::from_millis(50),
            max_client_requests: 512,
        }
    }
}

/// A write (or, with `value: None`, a delete) as the coordinator receives it.
#[derive(Debug, Clone)]
pub struct WriteOp {
    /// Collection name (validated).
    pub collection: String,
    /// Document key (validated).
    pub key: String,
    /// JSON object bytes, or `None` for a tombstone.
    pub value: Option<Bytes>,
    /// What the writer has seen; exactly those versions are superseded.
    pub context: CausalContext,
    /// Acknowledgements required.
    pub level: Level,
    /// When replicas may acknowledge.
    pub durability: Durability,
    /// Overall deadline for the level.
    pub timeout: Duration,
    /// When the new version expires (TTL), wall-clock ms; decided by the first coordinator.
    pub expires_ms: Option<u64>,
}

/// A successful write.
#[derive(Debug, Clone)]
pub struct WriteReply {
    /// Causal context of the new version (supersedes exactly it).
    pub context: CausalContext,
    /// Replicas that acknowledged before the answer.
    pub acknowledged_by: Vec<String>,
    /// Replicas that had not acknowledged by the answer but hold a hint for the write
    /// (down, or their write failed); the others not acknowledged were still being written.
    pub hinted_for: Vec<String>,
}

/// Counters for what coordination did, exposed in status and tests.
#[derive(Debug, Default)]
pub struct CoordinatorStats {
    /// Replica repairs sent by reads.
    pub read_repairs: AtomicU64,
    /// Writes forwarded to a replica because this node was not one.
    pub forwarded_writes: AtomicU64,
}

/// Coordinates client requests for one node.
pub struct Coordinator {
    reach: Arc<Reach>,
    membership: Arc<Membership>,
    storage: Storage,
    transport: Arc<dyn Transport>,
    actor: String,
    config: CoordinatorConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<CoordinatorStats>,
}

/// A key's replicas in preference order, and which of them are up.
struct Replicas {
    token: i64,
    all: Vec<String>,
    live: Vec<String>,
    /// Joining nodes that will replicate the key: they get its writes, which do not count.
    pending: Vec<String>,
}

impl Coordinator {
    /// A coordinator minting versions as `actor` (this node's current incarnation), with
    /// timestamps and TTLs read off `clock`.
    pub fn new(
        membership: Arc<Membership>,
        storage: Storage,
        transport: Arc<dyn Transport>,
        hints: Arc<Hints>,
        actor: String,
        config: CoordinatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let reach = Arc::new(Reach {
            membership: membership.clone(),
            storage: storage.clone(),
            transport: transport.clone(),
            hints,
        });
        Coordinator {
            reach,
            membership,
            storage,
            transport,
            actor,
            config,
            clock,
            stats: Arc::default(),
        }
    }

    /// Settings in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The node's clock (timestamps, TTLs, collection creation times).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Counters of coordination work.
    pub fn stats(&self) -> &CoordinatorStats {
        &self.stats
    }

    /// Hints this node holds for other replicas.
    pub fn hints(&self) -> &Arc<Hints> {
        &self.reach.hints
    }

    /// This node's replica storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// How this node reaches its peers.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// This node's id, as client replies name their coordinator.
    pub fn node_id(&self) -> &str {
        self.membership.node_id()
    }

    fn me(&self) -> &str {
        self.membership.node_id()
    }

    /// N of a collection.
    fn n(&self, collection: &str) -> usize {
        self.membership.schema().replication(collection)
    }

    fn replicas(&self, collection: &str, key: &str) -> Replicas {
        let token = token_for(collection, key);
        let n = self.n(collection);
        let ring = self.membership.ring();
        let all: Vec<String> = ring
            .preference_list(token, n)
            .into_iter()
            .map(String::from)
            .collect();
        let live = all
            .iter()
            .filter(|node| self.membership.is_up(node))
            .cloned()
            .collect();
        let pending = match self.membership.pending_ring() {
            Some(p) => p
                .preference_list(token, n)
                .into_iter()
                .filter(|x| !all.iter().any(|a| a == x))
                .map(String::from)
                .collect(),
            None => Vec::new(),
        };
        Replicas {
            token,
            all,
            live,
            pending,
        }
    }

    /// Record the key's token, replicas and what the level needs in a traced request.
    fn trace_plan(&self, tracer: Tracer<'_>, r: &Replicas, level: Level, n: usize) {
        if let Some(rec) = tracer {
            let up = |node: &str| r.live.iter().any(|l| l == node);
            rec.plan(r.token, &r.all, up, level, level.required(n));
        }
    }

    fn check_available(
        &self,
        what: &str,
        level: Level,
        collection: &str,
        key: &str,
        r: &Replicas,
    ) -> Result<usize> {
        let required = level.required(self.n(collection));
        if r.live.len() < required {
            let down: Vec<&String> = r.all.iter().filter(|n| !r.live.contains(n)).collect();
            let why: Vec<String> = down
                .iter()
                .filter_map(|n| Some(format!("{n}: {}", self.membership.down_reason(n)?)))
                .collect();
            return Err(Error::Unavailable(format!(
                "{level} {what} of {collection}/{key} needs {required} of its {} replicas but only {} {} up ({} down{}); nothing was {}",
                r.all.len(),
                r.live.len(),
                if r.live.len() == 1 { "is" } else { "are" },
                if down.is_empty() {
                    "none".to_string()
                } else {
                    down.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                },
                if why.is_empty() { String::new() } else { format!("; {}", why.join("; ")) },
                if what == "read" { "read" } else { "written" },
            )));
        }
        Ok(required)
    }

    /// This node's own replica of a key, without coordination or repair.
    pub async fn local_get(&self, collection: &str, key: &str) -> Result<SiblingSet> {
        let mut set = self.storage.read(collection, key).await?;
        set.expire(self.clock.now_ms());
        Ok(set)
    }
}

/// Replicas that were asked but neither answered nor failed, for error messages.
fn silent<T>(asked: &[String], g: &quorum::Gathered<T>) -> Vec<String> {
    asked
        .iter()
        .filter(|n| !g.ok.iter().any(|(o, _)| o == *n) && !g.failed.iter().any(|(f, _)| f == *n))
        .cloned()
        .collect()
}

/// Wire form of a durability, through the one protobuf mapping in `ringdb-wire`.
pub fn proto_durability(d: Durability) -> ringdb_proto::v1::Durability {
    match d {
        Durability::Durable => ringdb_wire::Durability::Durable,
        Durability::Memory => ringdb_wire::Durability::Memory,
    }
    .to_proto()
}

/// A request's durability as the storage layer takes it (storage knows no wire types).
pub fn storage_durability(d: ringdb_wire::Durability) -> Durability {
    match d {
        ringdb_wire::Durability::Durable => Durability::Durable,
        ringdb_wire::Durability::Memory => Durability::Memory,
    }
}

/// Turn a peer's status code back into the error it stood for.
pub fn from_code(code: tonic::Code, message: String) -> Error {
    match code {
        tonic::Code::InvalidArgument => Error::InvalidArgument(message),
        tonic::Code::Unavailable => Error::Unavailable(message),
        tonic::Code::DeadlineExceeded => Error::Timeout(message),
        tonic::Code::ResourceExhausted => Error::Overloaded(message),
        _ => Error::Internal(message),
    }
}
