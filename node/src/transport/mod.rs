//! Peer transport: how a node talks to other nodes, behind a trait so tests can partition,
//! delay and drop messages deterministically without sockets.

pub mod grpc;
pub(crate) mod pipe;

use async_trait::async_trait;
use bytes::Bytes;
use ringdb_proto::v1::{
    CoordinateWriteRequest, CoordinateWriteResponse, FetchRangeRequest, FetchRangeResponse,
    GossipAck, GossipAck2, GossipSyn, KeyHash, KeyHashesRequest, RangeHashesRequest,
    ReplicaReadBatchRequest, ReplicaWriteBatchRequest, ReplicaWriteRequest, TombstonesRequest,
    TombstonesResponse,
};

/// Why a peer call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (refused, reset, partitioned).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// The peer answered with an error status.
    #[error("{message}")]
    Rejected {
        /// Status code the peer chose.
        code: tonic::Code,
        /// The peer's message.
        message: String,
    },
}

impl From<tonic::Status> for TransportError {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable
                if s.message().contains("transport") || s.message().contains("connect") =>
            {
                TransportError::Unreachable(s.message().to_string())
            }
            tonic::Code::Cancelled | tonic::Code::Unknown if s.message().contains("transport") => {
                TransportError::Unreachable(s.message().to_string())
            }
            code => TransportError::Rejected {
                code,
                message: s.message().to_string(),
            },
        }
    }
}

/// Calls one node makes on another; addresses are `host:port`.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Fetch a replica's encoded sibling set (empty bytes when it holds none).
    async fn replica_read(
        &self,
        to: &str,
        collection: &str,
        key: &str,
    ) -> Result<Bytes, TransportError>;
    /// Merge an encoded sibling set into a replica.
    async fn replica_write(&self, to: &str, req: ReplicaWriteRequest)
        -> Result<(), TransportError>;
    /// Merge many encoded sibling sets into a node at once (streaming, hint hand-off).
    async fn replica_write_batch(
        &self,
        to: &str,
        req: ReplicaWriteBatchRequest,
    ) -> Result<(), TransportError>;
    /// Ask a replica of the key to mint and coordinate a write.
    async fn coordinate_write(
        &self,
        to: &str,
        req: CoordinateWriteRequest,
    ) -> Result<CoordinateWriteResponse, TransportError>;
    /// One page of a replica's documents in a token range.
    async fn fetch_range(
        &self,
        to: &str,
        req: FetchRangeRequest,
    ) -> Result<FetchRangeResponse, TransportError>;
    /// Gossip, first leg: send digests, get back newer states and what the peer wants.
    async fn gossip(&self, to: &str, syn: GossipSyn) -> Result<GossipAck, TransportError>;
    /// Gossip, last leg: send the states the peer asked for.
    async fn gossip_finish(&self, to: &str, ack2: GossipAck2) -> Result<(), TransportError>;
    /// Anti-entropy: a replica's hashes of token ranges of a collection.
    async fn range_hashes(
        &self,
        to: &str,
        req: RangeHashesRequest,
    ) -> Result<Vec<u64>, TransportError>;
    /// Anti-entropy: a replica's keys and entry hashes in one token range.
    async fn key_hashes(
        &self,
        to: &str,
        req: KeyHashesRequest,
    ) -> Result<Vec<KeyHash>, TransportError>;
    /// Tombstone purge: check (and with `purge_if`, purge) keys on one node.
    async fn tombstones(
        &self,
        to: &str,
        req: TombstonesRequest,
    ) -> Result<TombstonesResponse, TransportError>;
    /// Many keys' encoded sibling sets from one replica.
    async fn replica_read_batch(
        &self,
        to: &str,
        req: ReplicaReadBatchRequest,
    ) -> Result<Vec<Bytes>, TransportError>;
}
