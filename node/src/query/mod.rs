//! Query execution: FIND, COUNT and AGGREGATE over the documents of a collection, at the
//! request's consistency level, on top of the pure rules of `ringdb-query`.
//!
//! A query's coordinator plans coverage (`plan`: every token range, each asked of as many
//! live replicas as the level needs), asks each replica for its matching documents in its
//! ranges (`replica`, served through `InternodeService` as `QueryScan`), and merges (`find`):
//!
//! 1. candidates are merged by key with the DVV join, as GET merges replies;
//! 2. a candidate that not every asked replica of its range reported is re-read from those
//!    replicas (`ReplicaReadBatch`), so a stale replica can neither hide a document nor
//!    bring back one that changed or was deleted;
//! 3. the merged document (after expiry) is re-checked against the conditions and ordered
//!    by `order::position`; the page is cut at `page::horizon`, in rounds when replicas
//!    stopped early, and continued by a stateless token (`page::encode_token`);
//! 4. replicas whose copy lacked part of the merge are sent the merged set in the
//!    background (read repair).
//!
//! Invariants kept here:
//! - a query never returns a document whose merged state does not match, and with R + W > N
//!   it finds every document a write acknowledged before the query began;
//! - a document is returned once, with every live sibling and the merged context;
//! - fewer live replicas than the level needs for any range fails fast with `Unavailable`
//!   before anything is read; no answer in time is `Timeout` (DEADLINE_EXCEEDED);
//! - at `ONE` (one replica per range) aggregations are computed on the replicas and only
//!   partial states travel; above it they fold the merged, re-checked documents, so an
//!   aggregation always equals aggregating the same FIND's documents;
//! - pages hold at most [`MAX_PAGE_SIZE`] documents.
//!
//! Where candidates come from (a ready index, or a full scan) is decided in `source`.

pub mod aggregate;
mod fanout;
pub mod find;
pub mod plan;
pub mod replica;
pub mod source;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringdb_proto::v1::{ReplicaReadBatchRequest, ReplicaWriteRequest};

use crate::cluster::Membership;
use crate::coordinator::{proto_durability, Coordinator, Level};
use crate::error::{Error, Result};
use crate::storage::Durability;
use plan::Coverage;
use replica::Replica;

/// Most documents in one page; a larger `LIMIT` is paged.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Documents a FIND returns when it gives no `LIMIT`.
pub const DEFAULT_LIMIT: u64 = 100;

/// How long a query (a FIND page, a COUNT, an AGGREGATE) may take unless it says.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs queries for one node: coordinates them, and serves its replica's part.
pub struct QueryEngine {
    membership: Arc<Membership>,
    coordinator: Arc<Coordinator>,
    replica: Replica,
    /// The ring's replica ranges, recomputed only when the ring changes.
    ranges: plan::RangeCache,
}

impl QueryEngine {
    /// Queries coordinated by this node through `coordinator`'s storage, transport and
    /// clock, planned over `membership`'s ring.
    pub fn new(coordinator: Arc<Coordinator>, membership: Arc<Membership>) -> QueryEngine {
        let replica = Replica::new(coordinator.storage().clone(), coordinator.clock().clone());
        QueryEngine {
            membership,
            coordinator,
            replica,
            ranges: plan::RangeCache::default(),
        }
    }

    /// This node's replica side (what `QueryScan` and `QueryAggregate` are answered with).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.membership.node_id()
    }

    fn me(&self) -> &str {
        self.membership.node_id()
    }

    /// Check the collection name and the level (N of the collection; ANY is refused), and
    /// plan the coverage.
    fn coverage(&self, collection: &str, level: Level) -> Result<Coverage> {
        crate::coordinator::validate::collection(collection)?;
        let n = self.membership.schema().replication(collection);
        level.check(n, true)?;
        self.membership.readiness().map_err(Error::Unavailable)?;
        let ring = self.membership.ring();
        let ranges = self.ranges.get(&ring, n);
        Coverage::assign(
            ranges.as_ref().clone(),
            level.required(n),
            level,
            |node| self.membership.is_up(node),
            self.me(),
            collection,
        )
    }

    /// Plan a query (see `source`): which indexes are ready comes from this node's view of
    /// the cluster.
    fn plan(
        &self,
        statement: &str,
        collection: &str,
        filter: &ringdb_query::Filter,
        allow_filtering: bool,
    ) -> Result<source::Plan> {
        source::plan(statement, collection, filter, allow_filtering, |p| {
            self.membership.index_readiness(collection, p)
        })
    }

    /// The encoded sibling sets of `keys` on `node` (empty bytes when it holds none).
    async fn reread(&self, node: &str, collection: &str, keys: Vec<String>) -> Result<Vec<Bytes>> {
        if node == self.me() {
            let storage = self.coordinator.storage();
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                out.push(storage.read_raw(collection, k).await?.unwrap_or_default());
            }
            return Ok(out);
        }
        let addr = self
            .membership
            .address(node)
            .ok_or_else(|| Error::Unavailable(format!("no address known for {node}")))?;
        let n = keys.len();
        let req = ReplicaReadBatchRequest {
            collection: collection.to_string(),
            keys,
        };
        let got = self
            .coordinator
            .transport()
            .replica_read_batch(&addr, req)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("re-reading {n} candidates from {node} failed: {e}"))
            })?;
        if got.len() != n {
            return Err(Error::Internal(format!(
                "{node} answered {} of {n} re-read candidates",
                got.len()
            )));
        }
        Ok(got)
    }

    /// Send merged sibling sets to the replicas found behind, in the background, as read
    /// repair does (memory durability; a failure is only logged).
    fn spawn_repairs(&self, collection: &str, repairs: Vec<(String, String, Bytes)>) {
        if repairs.is_empty() {
            return;
        }
        let me = self.me().to_string();
        let collection = collection.to_string();
        let storage = self.coordinator.storage().clone();
        let transport = self.coordinator.transport().clone();
        let membership = self.membership.clone();
        let stats = self.coordinator.clone();
        tokio::spawn(async move {
            for (node, key, encoded) in repairs {
                stats
                    .stats()
                    .read_repairs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let result = if node == me {
                    match crate::version::SiblingSet::decode(&encoded) {
                        Ok(set) => storage
                            .merge(&collection, &key, set, Durability::Memory)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    match membership.address(&node) {
                        Some(addr) => transport
                            .replica_write(
                                &addr,
                                ReplicaWriteRequest {
                                    collection: collection.clone(),
                                    key: key.clone(),
                                    siblings: encoded,
                                    durability: proto_durability(Durability::Memory) as i32,
                                },
                            )
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err("address unknown".to_string()),
                    }
                };
                match result {
                    Ok(()) => tracing::debug!(%node, %collection, %key, "query repair"),
                    Err(e) => {
                        tracing::debug!(%node, %collection, %key, error = %e, "query repair failed")
                    }
                }
            }
        });
    }
}
