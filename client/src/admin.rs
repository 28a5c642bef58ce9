//! Operators' requests: collections and topology changes. They go to one node (the first
//! that answers); the cluster spreads the result by gossip.

use ringdb_proto::v1 as pb;

use crate::client::Client;
use crate::error::{self, Error, Result};
use crate::options::Context;
use crate::results::{parse_values, ClusterStatus, GetResult, RingInfo};

/// A collection and the options it was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its name.
    pub name: String,
    /// N: replicas per key.
    pub replication: u32,
    /// How long its documents live unless a write sets its own TTL (`None`: forever).
    pub default_ttl: Option<std::time::Duration>,
}

impl From<pb::CollectionInfo> for Collection {
    fn from(c: pb::CollectionInfo) -> Self {
        Collection {
            name: c.name,
            replication: c.replication,
            default_ttl: (c.default_ttl_secs > 0)
                .then(|| std::time::Duration::from_secs(c.default_ttl_secs)),
        }
    }
}

/// What one anti-entropy pass did on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Ranges compared (per collection and peer).
    pub ranges: u64,
    /// Ranges that could not be compared (a replica down or unreachable).
    pub failed: u64,
    /// Keys whose sibling sets were exchanged.
    pub keys_repaired: u64,
    /// Hash and key-list bytes exchanged.
    pub bytes_exchanged: u64,
    /// Tombstoned keys purged.
    pub tombstones_purged: u64,
    /// How long the pass took.
    pub elapsed: std::time::Duration,
}

/// A node's anti-entropy state, so operators can tell whether replicas agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairStatus {
    /// The node asked.
    pub node_id: String,
    /// Passes completed since it started.
    pub passes: u64,
    /// Wall-clock ms of the last completed pass (`None`: none yet).
    pub last_pass_ms: Option<u64>,
    /// Keys repaired since it started.
    pub keys_repaired: u64,
    /// Tombstoned keys purged since it started.
    pub tombstones_purged: u64,
    /// Ranges compared since it started, and the oldest verification among them (ms).
    pub ranges_verified: usize,
    /// Wall-clock ms of the least recently verified range.
    pub oldest_verified_ms: Option<u64>,
    /// Each collection's hash-tree root on that node.
    pub roots: Vec<(String, u64)>,
}

impl Client {
    /// Run an anti-entropy pass now on the first given node (one collection, or all) and
    /// report what it did; it compares the ranges that node shares with other replicas.
    pub async fn repair(&self, collection: Option<&str>) -> Result<RepairReport> {
        let (address, mut admin) = self.first_node()?;
        let r = admin
            .repair(pb::RepairRequest {
                collection: collection.unwrap_or_default().to_string(),
            })
            .await
            .map_err(|s| unreachable_or(&address, s))?
            .into_inner();
        Ok(RepairReport {
            ranges: r.ranges,
            failed: r.failed,
            keys_repaired: r.keys_repaired,
            bytes_exchanged: r.bytes_exchanged,
            tombstones_purged: r.tombstones_purged,
            elapsed: std::time::Duration::from_millis(r.elapsed_ms),
        })
    }

    /// The first given node's anti-entropy counters, tree roots and range verification.
    pub async fn repair_status(&self) -> Result<RepairStatus> {
        let (address, mut admin) = self.first_node()?;
        let r = admin
            .repair_status(pb::RepairStatusRequest {})
            .await
            .map_err(|s| unreachable_or(&address, s))?
            .into_inner();
        Ok(RepairStatus {
            node_id: r.node_id,
            passes: r.passes,
            last_pass_ms: (r.last_pass_ms > 0).then_some(r.last_pass_ms),
            keys_repaired: r.keys_repaired,
            tombstones_purged: r.tombstones_purged,
            ranges_verified: r.ranges.len(),
            oldest_verified_ms: r.ranges.iter().map(|g| g.verified_ms).min(),
            roots: r
                .roots
                .into_iter()
                .map(|t| (t.collection, t.root))
                .collect(),
        })
    }

    /// Create a collection with `replication` replicas per key (0: the cluster default).
    /// Fails with `AlreadyExists` if it exists, unless `if_not_exists`.
    pub async fn create_collection(
        &self,
        name: &str,
        replication: u32,
        if_not_exists: bool,
    ) -> Result<Collection> {
        self.create_collection_with_ttl(name, replication, None, if_not_exists)
            .await
    }

    /// Like `create_collection`, with a default TTL for its documents (whole seconds).
    pub async fn create_collection_with_ttl(
        &self,
        name: &str,
        replication: u32,
        default_ttl: Option<std::time::Duration>,
        if_not_exists: bool,
    ) -> Result<Collection> {
        let default_ttl_secs = default_ttl.map_or(0, |t| t.as_secs().max(1));
        let r = self
            .call(true, |mut n| {
                let req = pb::CreateCollectionRequest {
                    name: name.to_string(),
                    replication,
                    if_not_exists,
                    default_ttl_secs,
                };
                async move { n.admin.create_collection(req).await }
            })
            .await?
            .into_inner();
        r.collection
            .map(Collection::from)
            .ok_or_else(|| Error::Internal("empty answer to CreateCollection".into()))
    }

    /// Every collection the cluster knows (as one node sees it) and the default N.
    pub async fn collections(&self) -> Result<(Vec<Collection>, u32)> {
        let r = self
            .call(true, |mut n| async move {
                n.admin
                    .list_collections(pb::ListCollectionsRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok((
            r.collections.into_iter().map(Collection::from).collect(),
            r.default_replication,
        ))
    }

    /// Decommission the first given node: it streams its data to the new owners, then
    /// leaves the ring. Returns once it is LEAVING; `status` shows when it is LEFT.
    pub async fn decommission(&self) -> Result<String> {
        let (address, mut admin) = self.first_node()?;
        let r = admin
            .decommission(pb::DecommissionRequest {})
            .await
            .map_err(|s| unreachable_or(&address, s))?;
        Ok(r.into_inner().message)
    }

    /// Remove dead node `node_id`, re-replicating its ranges from the surviving replicas.
    /// Returns once the removal has started.
    pub async fn remove_node(&self, node_id: &str) -> Result<String> {
        let r = self
            .call(false, |mut n| {
                let req = pb::RemoveNodeRequest {
                    node_id: node_id.to_string(),
                };
                async move { n.admin.remove_node(req).await }
            })
            .await?;
        Ok(r.into_inner().message)
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
            serving: r.serving,
            not_serving_reason: r.not_serving_reason,
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

    /// The first given node's own replica of a key: no coordination, no read repair.
    /// For operators and tests checking what one replica holds.
    pub async fn local_get(&self, collection: &str, key: &str) -> Result<GetResult> {
        let (address, mut admin) = self.first_node()?;
        let r = admin
            .local_get(pb::LocalGetRequest {
                collection: collection.to_string(),
                key: key.to_string(),
            })
            .await
            .map_err(|s| unreachable_or(&address, s))?
            .into_inner();
        Ok(GetResult {
            values: parse_values(&r.values)?,
            context: Context::from_token(r.context),
            coordinator: None,
            trace: None,
        })
    }

    /// The first given address and its admin stub: requests about one particular node.
    pub(crate) fn first_node(
        &self,
    ) -> Result<(
        String,
        pb::admin_client::AdminClient<crate::node::NodeChannel>,
    )> {
        let address = self.router.seeds()[0].clone();
        let admin = self.router.node(&address)?.admin;
        Ok((address, admin))
    }
}

/// A failure to reach `address` as `Unreachable` naming it; a server's answer as itself.
pub(crate) fn unreachable_or(address: &str, s: tonic::Status) -> Error {
    if error::transport_failure(&s) {
        Error::Unreachable(format!("{address}: {}", error::describe(&s)))
    } else {
        s.into()
    }
}
