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
//!   replica whose reply (including late ones) was less than the join.

pub mod hints;
pub mod level;
pub mod quorum;
mod reach;
pub mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use ringdb_proto::v1::CoordinateWriteRequest;
use tokio::time::Instant;

use crate::cluster::now_ms;
use crate::cluster::Membership;
use crate::error::{Error, Result};
use crate::ring::token_for;
use crate::storage::{Durability, Mint, Storage};
use crate::transport::{Transport, TransportError};
use crate::version::{CausalContext, SiblingSet};
use hints::Hints;
pub use level::Level;
use quorum::{describe_failures, gather};
use reach::Reach;

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
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            replication_factor: 3,
            request_timeout: Duration::from_secs(2),
            speculative_retry: Duration::from_millis(50),
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
    stats: Arc<CoordinatorStats>,
}

/// A key's replicas in preference order, and which of them are up.
struct Replicas {
    all: Vec<String>,
    live: Vec<String>,
    /// Joining nodes that will replicate the key: they get its writes, which do not count.
    pending: Vec<String>,
}

impl Coordinator {
    /// A coordinator minting versions as `actor` (this node's current incarnation).
    pub fn new(
        membership: Arc<Membership>,
        storage: Storage,
        transport: Arc<dyn Transport>,
        hints: Arc<Hints>,
        actor: String,
        config: CoordinatorConfig,
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
            stats: Arc::default(),
        }
    }

    /// Settings in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
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
        Replicas { all, live, pending }
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
            let down: Vec<&str> = r
                .all
                .iter()
                .filter(|n| !r.live.contains(n))
                .map(String::as_str)
                .collect();
            return Err(Error::Unavailable(format!(
                "{level} {what} of {collection}/{key} needs {required} of its {} replicas but only {} {} up ({} down); nothing was {}",
                r.all.len(),
                r.live.len(),
                if r.live.len() == 1 { "is" } else { "are" },
                if down.is_empty() { "none".to_string() } else { down.join(", ") },
                if what == "read" { "read" } else { "written" },
            )));
        }
        Ok(required)
    }

    fn deadline(timeout: Duration) -> Instant {
        Instant::now() + timeout
    }

    /// Read a document at `level`: join the replicas' sibling sets, repair the stale ones.
    pub async fn get(
        &self,
        collection: &str,
        key: &str,
        level: Level,
        timeout: Duration,
    ) -> Result<SiblingSet> {
        let n = self.n(collection);
        level.check(n, true)?;
        let replicas = self.replicas(collection, key);
        let required = self.check_available("read", level, collection, key, &replicas)?;
        let deadline = Self::deadline(timeout);
        // Ask our own copy first (no network), then the others in preference order; only
        // as many as the level needs, the rest on standby for speculative retry.
        let mut order: Vec<&String> = replicas
            .live
            .iter()
            .filter(|n| n.as_str() == self.me())
            .collect();
        order.extend(replicas.live.iter().filter(|n| n.as_str() != self.me()));
        let mut calls: Vec<(String, BoxFuture<'static, Result<SiblingSet, String>>)> = order
            .into_iter()
            .map(|node| {
                (
                    node.clone(),
                    self.reach.read(node, collection, key, deadline),
                )
            })
            .collect();
        let standby = calls.split_off(required.min(calls.len()));
        let speculate_at = Instant::now() + self.config.speculative_retry;
        let gathered = gather(calls, standby, required, speculate_at, deadline).await;
        if gathered.ok.len() < required {
            let silent = silent(&replicas.live, &gathered);
            return Err(Error::Timeout(format!(
                "{level} read of {collection}/{key} not met in {}ms: {} of {} replicas answered (needed {required}) [{}]",
                timeout.as_millis(),
                gathered.ok.len(),
                replicas.all.len(),
                describe_failures(&gathered.failed, silent),
            )));
        }
        let mut merged = SiblingSet::new();
        for (_, s) in &gathered.ok {
            merged.merge(s);
        }
        // An expired document reads as deleted at once, and read repair spreads the
        // expired form (it wins over the unexpired one in every merge).
        merged.expire(now_ms());
        self.spawn_read_repair(collection, key, gathered, merged.clone(), deadline);
        Ok(merged)
    }

    /// After answering a read, wait for the slower replicas too, then bring every replica
    /// that answered with less than the full join up to it.
    fn spawn_read_repair(
        &self,
        collection: &str,
        key: &str,
        mut g: quorum::Gathered<SiblingSet>,
        mut merged: SiblingSet,
        deadline: Instant,
    ) {
        if g.pending == 0 && g.ok.iter().all(|(_, s)| *s == merged) {
            return;
        }
        let (collection, key) = (collection.to_string(), key.to_string());
        let reach = self.reach.clone();
        let stats = self.stats.clone();
        let repair_give_up = deadline + self.config.request_timeout;
        tokio::spawn(async move {
            while g.pending > 0 {
                match tokio::time::timeout_at(deadline, g.rest.recv()).await {
                    Ok(Some((node, Ok(s)))) => {
                        g.pending -= 1;
                        merged.merge(&s);
                        g.ok.push((node, s));
                    }
                    Ok(Some((_, Err(_)))) => g.pending -= 1,
                    Ok(None) | Err(_) => break,
                }
            }
            let encoded = Bytes::from(merged.encode());
            for (node, _) in g.ok.iter().filter(|(_, s)| *s != merged) {
                stats.read_repairs.fetch_add(1, Ordering::Relaxed);
                match reach
                    .write(
                        node,
                        &collection,
                        &key,
                        encoded.clone(),
                        Durability::Memory,
                        repair_give_up,
                    )
                    .await
                {
                    Ok(()) => tracing::debug!(%node, %collection, %key, "read repair"),
                    Err(e) => tracing::debug!(%node, error = %e, "read repair failed"),
                }
            }
        });
    }

    /// Write a document (or tombstone) at `op.level`, from any node.
    pub async fn put(&self, op: WriteOp) -> Result<WriteReply> {
        let n = self.n(&op.collection);
        op.level.check(n, false)?;
        // A first write creates its collection with the default options.
        if self
            .membership
            .schema()
            .ensure(&op.collection, self.me(), now_ms())
        {
            self.membership.note_change();
        }
        let replicas = self.replicas(&op.collection, &op.key);
        self.check_available("write", op.level, &op.collection, &op.key, &replicas)?;
        if replicas.all.iter().any(|r| r == self.me()) {
            return self.coordinate_write(op).await;
        }
        // Not a replica: hand the write to the first live one, which mints the version.
        let minter = replicas.live[0].clone();
        let addr = self
            .membership
            .address(&minter)
            .ok_or_else(|| Error::Internal(format!("no address for {minter}")))?;
        self.stats.forwarded_writes.fetch_add(1, Ordering::Relaxed);
        let req = CoordinateWriteRequest {
            collection: op.collection.clone(),
            key: op.key.clone(),
            document: op.value.clone(),
            context: Bytes::from(op.context.encode()),
            consistency: op.level.to_proto() as i32,
            durability: proto_durability(op.durability) as i32,
            timeout_ms: op.timeout.as_millis() as u32,
            expires_ms: op.expires_ms.unwrap_or(0),
        };
        let grace = op.timeout + Duration::from_millis(500);
        let reply = tokio::time::timeout(grace, self.transport.coordinate_write(&addr, req)).await;
        match reply {
            Ok(Ok(r)) => Ok(WriteReply {
                context: CausalContext::decode(&r.context).map_err(|e| Error::Internal(e.to_string()))?,
                acknowledged_by: r.acknowledged_by,
                hinted_for: r.hinted_for,
            }),
            Ok(Err(TransportError::Rejected { code, message })) => Err(from_code(code, message)),
            Ok(Err(e)) => Err(Error::Timeout(format!(
                "write of {}/{} forwarded to replica {minter} failed: {e}; it may or may not have been stored",
                op.collection, op.key
            ))),
            Err(_) => Err(Error::Timeout(format!(
                "write of {}/{} forwarded to replica {minter}: no answer in {}ms; the write may still have been stored",
                op.collection,
                op.key,
                grace.as_millis()
            ))),
        }
    }

    /// When a document written now expires: its own TTL, else its collection's default.
    pub fn expiry_for(&self, collection: &str, ttl_secs: u64) -> Option<u64> {
        let ttl = match ttl_secs {
            0 => self.membership.schema().ttl_secs(collection),
            t => t,
        };
        (ttl > 0).then(|| now_ms().saturating_add(ttl.saturating_mul(1000)))
    }

    /// Mint the version here (this node is a replica of the key) and replicate it.
    pub async fn coordinate_write(&self, op: WriteOp) -> Result<WriteReply> {
        let n = self.n(&op.collection);
        op.level.check(n, false)?;
        let replicas = self.replicas(&op.collection, &op.key);
        let required =
            self.check_available("write", op.level, &op.collection, &op.key, &replicas)?;
        if !replicas.all.iter().any(|r| r == self.me()) {
            return Err(Error::Unavailable(format!(
                "node {} is not a replica of {}/{} in its view of the ring; retry",
                self.me(),
                op.collection,
                op.key
            )));
        }
        let deadline = Self::deadline(op.timeout);
        let mint = Mint {
            actor: self.actor.clone(),
            context: op.context,
            value: op.value,
            timestamp_ms: now_ms(),
            expires_ms: op.expires_ms,
        };
        // Apply in memory first; the local fsync then runs in parallel with the remote writes.
        let minted = self
            .storage
            .mint(&op.collection, &op.key, mint, Durability::Memory)
            .await?;
        let mut calls: Vec<(String, BoxFuture<'static, Result<(), String>>)> =
            Vec::with_capacity(replicas.live.len());
        let hinted = Arc::new(Mutex::new(Vec::new()));
        for node in &replicas.live {
            if node == self.me() {
                let storage = self.storage.clone();
                let durable = op.durability == Durability::Durable;
                calls.push((
                    node.clone(),
                    async move {
                        if durable {
                            storage.sync().await.map_err(|e| e.to_string())
                        } else {
                            Ok(())
                        }
                    }
                    .boxed(),
                ));
            } else {
                let call = self.reach.write(
                    node,
                    &op.collection,
                    &op.key,
                    minted.stored.clone(),
                    op.durability,
                    deadline,
                );
                calls.push((node.clone(), noting_hint(call, node, &hinted)));
            }
        }
        // Joining replicas-to-be get the write too, uncounted (a failure becomes a hint).
        for node in replicas.pending.iter().filter(|n| self.membership.is_up(n)) {
            let call = self.reach.write(
                node,
                &op.collection,
                &op.key,
                minted.stored.clone(),
                op.durability,
                deadline,
            );
            tokio::spawn(noting_hint(call, node, &hinted));
        }
        // Replicas believed down get the write as a hint, delivered when they are back.
        let down = replicas
            .all
            .iter()
            .chain(&replicas.pending)
            .filter(|n| !self.membership.is_up(n));
        let mut stores = Vec::new();
        for node in down {
            let (reach, node, c, k, enc) = (
                self.reach.clone(),
                node.clone(),
                op.collection.clone(),
                op.key.clone(),
                minted.stored.clone(),
            );
            stores.push(tokio::spawn(async move {
                reach.hints.store(&node, &c, &k, enc).await.then_some(node)
            }));
        }
        let gathered = gather(calls, Vec::new(), required, deadline, deadline).await;
        if gathered.ok.len() >= required {
            // The hints for down replicas were written alongside the replication; the
            // receipt names them once they are stored.
            let mut hinted_for: Vec<String> = futures::future::join_all(stores)
                .await
                .into_iter()
                .filter_map(|r| r.ok().flatten())
                .collect();
            hinted_for.extend(hinted.lock().map(|h| h.clone()).unwrap_or_default());
            return Ok(WriteReply {
                context: minted.context,
                acknowledged_by: gathered.ok.into_iter().map(|(n, _)| n).collect(),
                hinted_for,
            });
        }
        let silent = silent(&replicas.live, &gathered);
        Err(Error::Timeout(format!(
            "{} write of {}/{} not met in {}ms: {} of {} replicas acknowledged (needed {required}) [{}]; the write may still have been stored",
            op.level,
            op.collection,
            op.key,
            op.timeout.as_millis(),
            gathered.ok.len(),
            replicas.all.len(),
            describe_failures(&gathered.failed, silent),
        )))
    }

    /// Delete: a tombstone superseding `context`, or, without one, whatever a read at the
    /// same level sees.
    pub async fn delete(
        &self,
        mut op: WriteOp,
        context: Option<CausalContext>,
    ) -> Result<WriteReply> {
        op.value = None;
        op.context = match context {
            Some(c) => c,
            None => {
                let read_level = if op.level == Level::Any {
                    Level::One
                } else {
                    op.level
                };
                let seen = self
                    .get(&op.collection, &op.key, read_level, op.timeout)
                    .await?;
                if seen.live_values().next().is_none() {
                    // Nothing live to delete: deleting is already done.
                    return Ok(WriteReply {
                        context: seen.context().clone(),
                        acknowledged_by: Vec::new(),
                        hinted_for: Vec::new(),
                    });
                }
                seen.context().clone()
            }
        };
        self.put(op).await
    }

    /// This node's own replica of a key, without coordination or repair.
    pub async fn local_get(&self, collection: &str, key: &str) -> Result<SiblingSet> {
        let mut set = self.storage.read(collection, key).await?;
        set.expire(now_ms());
        Ok(set)
    }
}

/// A replica write that adds its node to `hinted` when it fails but leaves a hint, for
/// the write's receipt.
fn noting_hint(
    call: BoxFuture<'static, Result<(), reach::Missed>>,
    node: &str,
    hinted: &Arc<Mutex<Vec<String>>>,
) -> BoxFuture<'static, Result<(), String>> {
    let (node, hinted) = (node.to_string(), hinted.clone());
    call.map(move |r| {
        r.map_err(|m| {
            if m.hinted {
                if let Ok(mut h) = hinted.lock() {
                    h.push(node);
                }
            }
            m.reason
        })
    })
    .boxed()
}

/// Replicas that were asked but neither answered nor failed, for error messages.
fn silent<T>(asked: &[String], g: &quorum::Gathered<T>) -> Vec<String> {
    asked
        .iter()
        .filter(|n| !g.ok.iter().any(|(o, _)| o == *n) && !g.failed.iter().any(|(f, _)| f == *n))
        .cloned()
        .collect()
}

/// Wire form of a durability.
pub fn proto_durability(d: Durability) -> ringdb_proto::v1::Durability {
    match d {
        Durability::Durable => ringdb_proto::v1::Durability::Durable,
        Durability::Memory => ringdb_proto::v1::Durability::Memory,
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
