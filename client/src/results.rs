//! What requests return: a read's siblings and context, a write's receipt, and the
//! cluster's status and ring as one node reports them.

use bytes::Bytes;
use ringdb_proto::v1 as pb;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::options::Context;
use crate::trace::Trace;

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
    ///
    /// [`ReadOptions::trace`]: crate::ReadOptions::trace
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
    ///
    /// [`WriteOptions::trace`]: crate::WriteOptions::trace
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
    /// Whether the answering node takes client requests (a new cluster is ready once
    /// every node does).
    pub serving: bool,
    /// Why it does not, while it does not.
    pub not_serving_reason: String,
}

/// Token ownership as seen by one node.
#[derive(Debug, Clone)]
pub struct RingInfo {
    /// Every (token, owner) in ring order.
    pub tokens: Vec<(i64, String)>,
    /// N.
    pub replication_factor: u32,
}

/// Parse every sibling's JSON into `T`.
pub(crate) fn parse_values<T: DeserializeOwned>(raw: &[Bytes]) -> Result<Vec<T>> {
    raw.iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| Error::Document(e.to_string())))
        .collect()
}

/// An empty wire string as `None`.
pub(crate) fn named(id: String) -> Option<String> {
    (!id.is_empty()).then_some(id)
}
