//! The messages one node sends another, as one request type and one answer type, so the
//! transport has a single call and whatever sits between nodes (the gRPC client, the
//! simulated network and its fault filters) handles every message the same way.
//!
//! Invariants kept here:
//! - each request variant carries one `ringdb.v1.Internode` request message unchanged; the
//!   variant only adds what the sender knows about its purpose (a hint replay is a replica
//!   write on the wire), so the wire protocol is the one the service defines;
//! - every request kind has one answer variant (hint replays are answered as replica
//!   writes), and [`MessageKind`] names are stable: tests and logs match on them.

use std::fmt;

use ringdb_proto::v1::{
    CoordinateWriteRequest, CoordinateWriteResponse, FetchRangeRequest, FetchRangeResponse,
    GossipAck, GossipAck2, GossipAck2Response, GossipSyn, KeyHashesRequest, KeyHashesResponse,
    QueryAggregateRequest, QueryAggregateResponse, QueryScanRequest, QueryScanResponse,
    RangeHashesRequest, RangeHashesResponse, ReplicaReadBatchRequest, ReplicaReadBatchResponse,
    ReplicaReadRequest, ReplicaReadResponse, ReplicaWriteBatchRequest, ReplicaWriteBatchResponse,
    ReplicaWriteRequest, ReplicaWriteResponse, TombstonesRequest, TombstonesResponse,
};

/// A request from one node to another.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerRequest {
    /// Fetch a replica's encoded sibling set.
    ReplicaRead(ReplicaReadRequest),
    /// Merge an encoded sibling set into a replica (a coordinator replicating a write).
    ReplicaWrite(ReplicaWriteRequest),
    /// A stored hint delivered to its replica: a replica write on the wire, told apart here
    /// so faults can target hinted handoff alone.
    HintReplay(ReplicaWriteRequest),
    /// Merge many sibling sets at once (range streaming, repair; with `hint_for`, a leaving
    /// node handing its hints over).
    ReplicaWriteBatch(ReplicaWriteBatchRequest),
    /// Ask a replica of the key to mint and coordinate a write.
    CoordinateWrite(CoordinateWriteRequest),
    /// One page of a replica's documents in a token range.
    FetchRange(FetchRangeRequest),
    /// Gossip, first leg.
    Gossip(GossipSyn),
    /// Gossip, last leg.
    GossipFinish(GossipAck2),
    /// Anti-entropy: hashes of token ranges.
    RangeHashes(RangeHashesRequest),
    /// Anti-entropy: keys and entry hashes in one token range.
    KeyHashes(KeyHashesRequest),
    /// Tombstone purge: check or purge keys.
    Tombstones(TombstonesRequest),
    /// Many keys' encoded sibling sets from one replica.
    ReplicaReadBatch(ReplicaReadBatchRequest),
    /// A query's matching documents on one replica, in result order.
    QueryScan(QueryScanRequest),
    /// A query's partial aggregation on one replica.
    QueryAggregate(QueryAggregateRequest),
}

/// A node's answer to a [`PeerRequest`].
// A forwarded write's answer (with its trace) is the large one; an answer is moved once or
// twice on its way to the caller, cheaper than boxing it would be.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PeerResponse {
    /// Answers [`PeerRequest::ReplicaRead`].
    ReplicaRead(ReplicaReadResponse),
    /// Answers [`PeerRequest::ReplicaWrite`] and [`PeerRequest::HintReplay`].
    ReplicaWrite(ReplicaWriteResponse),
    /// Answers [`PeerRequest::ReplicaWriteBatch`].
    ReplicaWriteBatch(ReplicaWriteBatchResponse),
    /// Answers [`PeerRequest::CoordinateWrite`].
    CoordinateWrite(CoordinateWriteResponse),
    /// Answers [`PeerRequest::FetchRange`].
    FetchRange(FetchRangeResponse),
    /// Answers [`PeerRequest::Gossip`].
    Gossip(GossipAck),
    /// Answers [`PeerRequest::GossipFinish`].
    GossipFinish(GossipAck2Response),
    /// Answers [`PeerRequest::RangeHashes`].
    RangeHashes(RangeHashesResponse),
    /// Answers [`PeerRequest::KeyHashes`].
    KeyHashes(KeyHashesResponse),
    /// Answers [`PeerRequest::Tombstones`].
    Tombstones(TombstonesResponse),
    /// Answers [`PeerRequest::ReplicaReadBatch`].
    ReplicaReadBatch(ReplicaReadBatchResponse),
    /// Answers [`PeerRequest::QueryScan`].
    QueryScan(QueryScanResponse),
    /// Answers [`PeerRequest::QueryAggregate`].
    QueryAggregate(QueryAggregateResponse),
}

/// What a message is for, so faults and logs can single out one kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// A coordinator reading a replica.
    ReplicaRead,
    /// A coordinator writing a replica.
    ReplicaWrite,
    /// A stored hint delivered to its replica (or, when its target left, to a new replica).
    HintReplay,
    /// A leaving node handing its hints to a node that stays.
    HintHandOff,
    /// Many entries merged at once: range streaming and repair.
    ReplicaWriteBatch,
    /// A write forwarded to a replica of its key.
    CoordinateWrite,
    /// A page of a token range (streaming on join and leave).
    FetchRange,
    /// Gossip, first leg.
    Gossip,
    /// Gossip, last leg.
    GossipFinish,
    /// Anti-entropy range hashes.
    RangeHashes,
    /// Anti-entropy key hashes.
    KeyHashes,
    /// Tombstone purge check or purge.
    Tombstones,
    /// A batch of replica reads (repair, and queries re-reading candidates).
    ReplicaReadBatch,
    /// A query's scan of one replica.
    QueryScan,
    /// A query's partial aggregation on one replica.
    QueryAggregate,
}

impl MessageKind {
    /// Every kind, for tests and tools that go through them all.
    pub const ALL: [MessageKind; 15] = [
        MessageKind::ReplicaRead,
        MessageKind::ReplicaWrite,
        MessageKind::HintReplay,
        MessageKind::HintHandOff,
        MessageKind::ReplicaWriteBatch,
        MessageKind::CoordinateWrite,
        MessageKind::FetchRange,
        MessageKind::Gossip,
        MessageKind::GossipFinish,
        MessageKind::RangeHashes,
        MessageKind::KeyHashes,
        MessageKind::Tombstones,
        MessageKind::ReplicaReadBatch,
        MessageKind::QueryScan,
        MessageKind::QueryAggregate,
    ];

    /// The kind's stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::ReplicaRead => "replica_read",
            MessageKind::ReplicaWrite => "replica_write",
            MessageKind::HintReplay => "hint_replay",
            MessageKind::HintHandOff => "hint_hand_off",
            MessageKind::ReplicaWriteBatch => "replica_write_batch",
            MessageKind::CoordinateWrite => "coordinate_write",
            MessageKind::FetchRange => "fetch_range",
            MessageKind::Gossip => "gossip",
            MessageKind::GossipFinish => "gossip_finish",
            MessageKind::RangeHashes => "range_hashes",
            MessageKind::KeyHashes => "key_hashes",
            MessageKind::Tombstones => "tombstones",
            MessageKind::ReplicaReadBatch => "replica_read_batch",
            MessageKind::QueryScan => "query_scan",
            MessageKind::QueryAggregate => "query_aggregate",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PeerRequest {
    /// What this message is for.
    pub fn kind(&self) -> MessageKind {
        match self {
            PeerRequest::ReplicaRead(_) => MessageKind::ReplicaRead,
            PeerRequest::ReplicaWrite(_) => MessageKind::ReplicaWrite,
            PeerRequest::HintReplay(_) => MessageKind::HintReplay,
            PeerRequest::ReplicaWriteBatch(r) if !r.hint_for.is_empty() => MessageKind::HintHandOff,
            PeerRequest::ReplicaWriteBatch(_) => MessageKind::ReplicaWriteBatch,
            PeerRequest::CoordinateWrite(_) => MessageKind::CoordinateWrite,
            PeerRequest::FetchRange(_) => MessageKind::FetchRange,
            PeerRequest::Gossip(_) => MessageKind::Gossip,
            PeerRequest::GossipFinish(_) => MessageKind::GossipFinish,
            PeerRequest::RangeHashes(_) => MessageKind::RangeHashes,
            PeerRequest::KeyHashes(_) => MessageKind::KeyHashes,
            PeerRequest::Tombstones(_) => MessageKind::Tombstones,
            PeerRequest::ReplicaReadBatch(_) => MessageKind::ReplicaReadBatch,
            PeerRequest::QueryScan(_) => MessageKind::QueryScan,
            PeerRequest::QueryAggregate(_) => MessageKind::QueryAggregate,
        }
    }
}

impl PeerResponse {
    /// The name of the request this answers, for error messages.
    pub fn answers(&self) -> &'static str {
        match self {
            PeerResponse::ReplicaRead(_) => "replica_read",
            PeerResponse::ReplicaWrite(_) => "replica_write",
            PeerResponse::ReplicaWriteBatch(_) => "replica_write_batch",
            PeerResponse::CoordinateWrite(_) => "coordinate_write",
            PeerResponse::FetchRange(_) => "fetch_range",
            PeerResponse::Gossip(_) => "gossip",
            PeerResponse::GossipFinish(_) => "gossip_finish",
            PeerResponse::RangeHashes(_) => "range_hashes",
            PeerResponse::KeyHashes(_) => "key_hashes",
            PeerResponse::Tombstones(_) => "tombstones",
            PeerResponse::ReplicaReadBatch(_) => "replica_read_batch",
            PeerResponse::QueryScan(_) => "query_scan",
            PeerResponse::QueryAggregate(_) => "query_aggregate",
        }
    }
}

/// Each answer message taken back out of a [`PeerResponse`]; the error hands back an
/// answer of another kind.
macro_rules! answer_types {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl TryFrom<PeerResponse> for $ty {
            type Error = PeerResponse;
            fn try_from(r: PeerResponse) -> Result<Self, PeerResponse> {
                match r {
                    PeerResponse::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
        })*
    };
}

answer_types!(
    ReplicaRead(ReplicaReadResponse),
    ReplicaWrite(ReplicaWriteResponse),
    ReplicaWriteBatch(ReplicaWriteBatchResponse),
    CoordinateWrite(CoordinateWriteResponse),
    FetchRange(FetchRangeResponse),
    Gossip(GossipAck),
    GossipFinish(GossipAck2Response),
    RangeHashes(RangeHashesResponse),
    KeyHashes(KeyHashesResponse),
    Tombstones(TombstonesResponse),
    ReplicaReadBatch(ReplicaReadBatchResponse),
    QueryScan(QueryScanResponse),
    QueryAggregate(QueryAggregateResponse),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_distinct_lowercase_words() {
        let names: std::collections::BTreeSet<&str> =
            MessageKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), MessageKind::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }

    #[test]
    fn a_hint_hand_off_is_told_apart_from_range_streaming() {
        let stream = ReplicaWriteBatchRequest::default();
        let hand_off = ReplicaWriteBatchRequest {
            hint_for: "n3".into(),
            ..Default::default()
        };
        assert_eq!(
            PeerRequest::ReplicaWriteBatch(stream).kind(),
            MessageKind::ReplicaWriteBatch
        );
        assert_eq!(
            PeerRequest::ReplicaWriteBatch(hand_off).kind(),
            MessageKind::HintHandOff
        );
        let w = ReplicaWriteRequest::default();
        assert_eq!(
            PeerRequest::HintReplay(w.clone()).kind(),
            MessageKind::HintReplay
        );
        assert_eq!(
            PeerRequest::ReplicaWrite(w).kind(),
            MessageKind::ReplicaWrite
        );
    }

    #[test]
    fn an_answer_of_another_kind_is_handed_back() {
        let a = PeerResponse::Gossip(GossipAck::default());
        let back = ReplicaReadResponse::try_from(a.clone()).unwrap_err();
        assert_eq!(back, a);
        assert!(GossipAck::try_from(a).is_ok());
    }
}
