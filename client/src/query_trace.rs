//! Query traces: what a query's coordinator did for one FIND page, COUNT or AGGREGATE (the
//! coverage plan, each replica scan, what the merge re-read, re-checked and dropped, and
//! the replicas it repaired). Ask with the builders' `trace(true)`.

use std::time::Duration;

use ringdb_proto::v1 as pb;
use ringdb_wire::Level as Consistency;

use crate::trace::Outcome;

/// What a query's coordinator did, as of its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTrace {
    /// `"find"`, `"count"` or `"aggregate"`.
    pub operation: String,
    /// Id of the node that coordinated it.
    pub coordinator: String,
    /// The query's level (`None` if the server named one this client does not know).
    pub consistency: Option<Consistency>,
    /// Replicas asked per token range.
    pub required: u32,
    /// Token ranges in the coverage plan.
    pub ranges: u32,
    /// Where candidates came from (a full scan, an index).
    pub source: String,
    /// The result order.
    pub order: String,
    /// Each replica scan, in the order they were sent.
    pub scans: Vec<ScanTrace>,
    /// Scan rounds (more than one when replicas stopped early and the page was short).
    pub rounds: u32,
    /// Distinct documents the replicas reported.
    pub candidates: u64,
    /// Candidates re-read from asked replicas that had not reported them.
    pub reread: u64,
    /// Merged documents re-checked against the conditions.
    pub rechecked: u64,
    /// Re-checked documents that no longer matched (changed, deleted or expired).
    pub dropped: u64,
    /// Replica copies sent the merged sibling set (read repair, in the background).
    pub repaired: u64,
    /// The replicas repaired.
    pub repaired_nodes: Vec<String>,
    /// Aggregations: computed on the replicas, only partial states shipped.
    pub pushed_down: bool,
    /// From the coordinator taking the query to its answer.
    pub total: Duration,
}

/// One scan a query sent to a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTrace {
    /// Node id.
    pub node: String,
    /// Token ranges it covered.
    pub ranges: u32,
    /// The round it belonged to (from 1).
    pub round: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub latency: Duration,
    /// Documents it read.
    pub scanned: u64,
    /// Candidates it reported (matching documents, for an aggregation).
    pub candidates: u64,
    /// Whether it stopped at its limit.
    pub stopped: bool,
    /// Why it failed, or whom it stood in for.
    pub detail: String,
    /// How the replica found its candidates: "index on PATH" or "full scan (...)".
    pub source: String,
}

impl QueryTrace {
    pub(crate) fn from_proto(t: pb::QueryTrace) -> QueryTrace {
        QueryTrace {
            operation: t.operation,
            coordinator: t.coordinator,
            consistency: Consistency::known(t.level),
            required: t.required,
            ranges: t.ranges,
            source: t.source,
            order: t.order,
            scans: t
                .scans
                .into_iter()
                .map(|s| ScanTrace {
                    node: s.node,
                    ranges: s.ranges,
                    round: s.round,
                    outcome: match pb::ReplicaOutcome::try_from(s.outcome) {
                        Ok(pb::ReplicaOutcome::Ok) => Outcome::Ok,
                        Ok(pb::ReplicaOutcome::Failed) => Outcome::Failed,
                        Ok(pb::ReplicaOutcome::Timeout) => Outcome::Timeout,
                        Ok(pb::ReplicaOutcome::NotAsked) => Outcome::NotAsked,
                        Ok(pb::ReplicaOutcome::Pending) => Outcome::Pending,
                        Ok(pb::ReplicaOutcome::Unspecified) | Err(_) => Outcome::Unknown,
                    },
                    latency: Duration::from_micros(s.micros),
                    scanned: s.scanned,
                    candidates: s.candidates,
                    stopped: s.stopped,
                    detail: s.detail,
                    source: s.source,
                })
                .collect(),
            rounds: t.rounds,
            candidates: t.candidates,
            reread: t.reread,
            rechecked: t.rechecked,
            dropped: t.dropped,
            repaired: t.repaired,
            repaired_nodes: t.repaired_nodes,
            pushed_down: t.pushed_down,
            total: Duration::from_micros(t.total_micros),
        }
    }
}
