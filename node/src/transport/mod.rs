//! Peer transport: how a node talks to other nodes, behind a trait so tests can partition,
//! delay and drop messages deterministically without sockets.
//!
//! The trait is one call carrying a [`PeerRequest`]: a new internode message adds a variant,
//! never a trait method, and an implementation (gRPC, the simulated network) sees every
//! message in one place, with its [`MessageKind`]. The typed calls the rest of the node
//! makes (`replica_read`, `gossip`, ...) are built on that call, once, for every transport.

pub mod grpc;
mod message;
pub(crate) mod pipe;

use async_trait::async_trait;
use bytes::Bytes;
use ringdb_proto::v1::{
    CoordinateWriteRequest, CoordinateWriteResponse, FetchRangeRequest, FetchRangeResponse,
    GossipAck, GossipAck2, GossipAck2Response, GossipSyn, KeyHash, KeyHashesRequest,
    KeyHashesResponse, QueryAggregateRequest, QueryAggregateResponse, QueryScanRequest,
    QueryScanResponse, RangeHashesRequest, RangeHashesResponse, ReplicaReadBatchRequest,
    ReplicaReadBatchResponse, ReplicaReadRequest, ReplicaReadResponse, ReplicaWriteBatchRequest,
    ReplicaWriteBatchResponse, ReplicaWriteRequest, ReplicaWriteResponse, TombstonesRequest,
    TombstonesResponse,
};

pub use message::{MessageKind, PeerRequest, PeerResponse};

/// Why a peer call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (partitioned, no route, TLS failure, ...).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Nothing serves at the peer's address any more: the connection was refused, reset or
    /// broken. A strong sign the process is gone, acted on at once (`cluster::Watched`).
    #[error("{reason}")]
    Refused {
        /// The I/O error's words: "connection refused (os error 111)".
        reason: String,
        /// The connection was refused when opened, so the request never left this node.
        unsent: bool,
    },
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
        if let Some((reason, unsent)) = refusal(&s) {
            return TransportError::Refused { reason, unsent };
        }
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

/// The refused, reset or broken connection somewhere in `status`'s chain of causes, as
/// "connection refused (os error 111)", and whether it was refused when opened (so nothing
/// was sent); `None` when the failure was anything else.
fn refusal(status: &tonic::Status) -> Option<(String, bool)> {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(e) = cause {
        // HTTP/2 keeps the I/O error of a broken connection to itself, not as a source.
        let io = e
            .downcast_ref::<std::io::Error>()
            .or_else(|| e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(io) = io {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::NotConnected
            ) {
                let unsent = io.kind() == ErrorKind::ConnectionRefused;
                let words = io.to_string().to_lowercase();
                return Some(if words.starts_with("connection") {
                    (words, unsent)
                } else {
                    (format!("connection lost ({words})"), unsent)
                });
            }
        }
        cause = e.source();
    }
    None
}

/// Sends one node's messages to another; addresses are `host:port`.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Deliver `request` to the node at `to` and wait for its answer.
    async fn call(&self, to: &str, request: PeerRequest) -> Result<PeerResponse, TransportError>;
}

/// The calls the node makes, each one [`Transport::call`] with its request built and its
/// answer unpacked. They are methods of the trait object itself, so every transport has
/// them and callers need nothing imported beyond [`Transport`].
impl dyn Transport {
    /// Send `request` and take its answer as `A`; an answer of another kind is an internal
    /// error (a peer that does not speak this protocol).
    async fn ask<A: TryFrom<PeerResponse, Error = PeerResponse>>(
        &self,
        to: &str,
        request: PeerRequest,
    ) -> Result<A, TransportError> {
        let kind = request.kind();
        A::try_from(self.call(to, request).await?).map_err(|other| TransportError::Rejected {
            code: tonic::Code::Internal,
            message: format!("peer answered a {kind} with a {} answer", other.answers()),
        })
    }

    /// Fetch a replica's encoded sibling set (empty bytes when it holds none).
    pub async fn replica_read(
        &self,
        to: &str,
        collection: &str,
        key: &str,
    ) -> Result<Bytes, TransportError> {
        let req = ReplicaReadRequest {
            collection: collection.to_string(),
            key: key.to_string(),
        };
        let a: ReplicaReadResponse = self.ask(to, PeerRequest::ReplicaRead(req)).await?;
        Ok(a.siblings)
    }

    /// Merge an encoded sibling set into a replica.
    pub async fn replica_write(
        &self,
        to: &str,
        req: ReplicaWriteRequest,
    ) -> Result<(), TransportError> {
        let _: ReplicaWriteResponse = self.ask(to, PeerRequest::ReplicaWrite(req)).await?;
        Ok(())
    }

    /// Deliver a stored hint to a replica: a replica write, sent as its own kind.
    pub async fn replay_hint(
        &self,
        to: &str,
        req: ReplicaWriteRequest,
    ) -> Result<(), TransportError> {
        let _: ReplicaWriteResponse = self.ask(to, PeerRequest::HintReplay(req)).await?;
        Ok(())
    }

    /// Merge many encoded sibling sets into a node at once (streaming, hint hand-off).
    pub async fn replica_write_batch(
        &self,
        to: &str,
        req: ReplicaWriteBatchRequest,
    ) -> Result<(), TransportError> {
        let _: ReplicaWriteBatchResponse =
            self.ask(to, PeerRequest::ReplicaWriteBatch(req)).await?;
        Ok(())
    }

    /// Ask a replica of the key to mint and coordinate a write.
    pub async fn coordinate_write(
        &self,
        to: &str,
        req: CoordinateWriteRequest,
    ) -> Result<CoordinateWriteResponse, TransportError> {
        self.ask(to, PeerRequest::CoordinateWrite(req)).await
    }

    /// One page of a replica's documents in a token range.
    pub async fn fetch_range(
        &self,
        to: &str,
        req: FetchRangeRequest,
    ) -> Result<FetchRangeResponse, TransportError> {
        self.ask(to, PeerRequest::FetchRange(req)).await
    }

    /// Gossip, first leg: send digests, get back newer states and what the peer wants.
    pub async fn gossip(&self, to: &str, syn: GossipSyn) -> Result<GossipAck, TransportError> {
        self.ask(to, PeerRequest::Gossip(syn)).await
    }

    /// Gossip, last leg: send the states the peer asked for.
    pub async fn gossip_finish(&self, to: &str, ack2: GossipAck2) -> Result<(), TransportError> {
        let _: GossipAck2Response = self.ask(to, PeerRequest::GossipFinish(ack2)).await?;
        Ok(())
    }

    /// Anti-entropy: a replica's hashes of token ranges of a collection.
    pub async fn range_hashes(
        &self,
        to: &str,
        req: RangeHashesRequest,
    ) -> Result<Vec<u64>, TransportError> {
        let a: RangeHashesResponse = self.ask(to, PeerRequest::RangeHashes(req)).await?;
        Ok(a.hashes)
    }

    /// Anti-entropy: a replica's keys and entry hashes in one token range.
    pub async fn key_hashes(
        &self,
        to: &str,
        req: KeyHashesRequest,
    ) -> Result<Vec<KeyHash>, TransportError> {
        let a: KeyHashesResponse = self.ask(to, PeerRequest::KeyHashes(req)).await?;
        Ok(a.keys)
    }

    /// Tombstone purge: check (and with `purge_if`, purge) keys on one node.
    pub async fn tombstones(
        &self,
        to: &str,
        req: TombstonesRequest,
    ) -> Result<TombstonesResponse, TransportError> {
        self.ask(to, PeerRequest::Tombstones(req)).await
    }

    /// Many keys' encoded sibling sets from one replica.
    pub async fn replica_read_batch(
        &self,
        to: &str,
        req: ReplicaReadBatchRequest,
    ) -> Result<Vec<Bytes>, TransportError> {
        let a: ReplicaReadBatchResponse = self.ask(to, PeerRequest::ReplicaReadBatch(req)).await?;
        Ok(a.siblings)
    }

    /// A query's matching documents on one replica, in result order.
    pub async fn query_scan(
        &self,
        to: &str,
        req: QueryScanRequest,
    ) -> Result<QueryScanResponse, TransportError> {
        self.ask(to, PeerRequest::QueryScan(req)).await
    }

    /// A query's partial aggregation on one replica.
    pub async fn query_aggregate(
        &self,
        to: &str,
        req: QueryAggregateRequest,
    ) -> Result<QueryAggregateResponse, TransportError> {
        self.ask(to, PeerRequest::QueryAggregate(req)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Answers every request with one fixed answer and remembers what was asked.
    struct Fixed {
        answer: PeerResponse,
        asked: Mutex<Vec<MessageKind>>,
    }

    #[async_trait]
    impl Transport for Fixed {
        async fn call(
            &self,
            _: &str,
            request: PeerRequest,
        ) -> Result<PeerResponse, TransportError> {
            self.asked.lock().unwrap().push(request.kind());
            Ok(self.answer.clone())
        }
    }

    fn answering(answer: PeerResponse) -> Arc<Fixed> {
        Arc::new(Fixed {
            answer,
            asked: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test]
    async fn a_typed_call_unpacks_its_answer_and_refuses_another_kind() {
        let fixed = answering(PeerResponse::RangeHashes(RangeHashesResponse {
            hashes: vec![1, 2],
        }));
        let t: Arc<dyn Transport> = fixed.clone();
        assert_eq!(
            t.range_hashes("n2", RangeHashesRequest::default())
                .await
                .unwrap(),
            vec![1, 2]
        );
        match t.gossip("n2", GossipSyn::default()).await {
            Err(TransportError::Rejected { code, message }) => {
                assert_eq!(code, tonic::Code::Internal);
                assert!(message.contains("gossip"), "{message}");
            }
            other => panic!("a range_hashes answer taken for a gossip one: {other:?}"),
        }
        assert_eq!(
            *fixed.asked.lock().unwrap(),
            [MessageKind::RangeHashes, MessageKind::Gossip]
        );
    }

    #[tokio::test]
    async fn a_hint_replay_is_sent_as_its_own_kind_and_answered_as_a_write() {
        let fixed = answering(PeerResponse::ReplicaWrite(ReplicaWriteResponse {}));
        let t: Arc<dyn Transport> = fixed.clone();
        t.replay_hint("n3", ReplicaWriteRequest::default())
            .await
            .unwrap();
        t.replica_write("n3", ReplicaWriteRequest::default())
            .await
            .unwrap();
        assert_eq!(
            *fixed.asked.lock().unwrap(),
            [MessageKind::HintReplay, MessageKind::ReplicaWrite]
        );
    }
}
