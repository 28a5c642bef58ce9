//! The production transport: one lazily connected HTTP/2 channel per peer address.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ringdb_proto::v1::internode_client::InternodeClient;
use ringdb_proto::v1::{
    pipe_request, pipe_response, CoordinateWriteRequest, CoordinateWriteResponse,
    FetchRangeRequest, FetchRangeResponse, GossipAck, GossipAck2, GossipSyn, KeyHash,
    KeyHashesRequest, RangeHashesRequest, ReplicaReadBatchRequest, ReplicaReadRequest,
    ReplicaWriteBatchRequest, ReplicaWriteRequest, TombstonesRequest, TombstonesResponse,
};
use tonic::transport::{Channel, Endpoint};

use super::pipe::Pipe;
use super::{Transport, TransportError};

/// Largest internode message: a sibling set can hold several maximum-size documents.
pub const MAX_INTERNODE_MESSAGE: usize = 256 * 1024 * 1024;

/// Largest replica write sent on the shared pipeline; bigger ones get a call of their own so
/// they do not hold up the small requests queued behind them.
const MAX_PIPELINED_WRITE: usize = 1024 * 1024;

/// HTTP/2 receive windows for peer traffic: a pipeline carries hundreds of requests at once,
/// and the 64 KiB default would cap how many can be in the air.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// See [`STREAM_WINDOW`]; the connection window covers all streams to one peer.
pub const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// gRPC peer channels, created on first use and reused.
pub struct GrpcTransport {
    clients: RwLock<HashMap<String, InternodeClient<Channel>>>,
    pipes: RwLock<HashMap<String, Arc<Pipe>>>,
    connect_timeout: Duration,
}

impl GrpcTransport {
    /// A transport whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        GrpcTransport {
            clients: RwLock::new(HashMap::new()),
            pipes: RwLock::new(HashMap::new()),
            connect_timeout,
        }
    }

    fn client(&self, to: &str) -> Result<InternodeClient<Channel>, TransportError> {
        if let Some(c) = self.clients.read().ok().and_then(|m| m.get(to).cloned()) {
            return Ok(c);
        }
        let endpoint = Endpoint::from_shared(format!("http://{to}"))
            .map_err(|e| TransportError::Unreachable(format!("bad peer address {to}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let client = InternodeClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_INTERNODE_MESSAGE)
            .max_encoding_message_size(MAX_INTERNODE_MESSAGE);
        if let Ok(mut m) = self.clients.write() {
            m.insert(to.to_string(), client.clone());
        }
        Ok(client)
    }

    /// The peer's pipeline, opened (or reopened after it broke) on demand.
    fn pipe(&self, to: &str) -> Result<Arc<Pipe>, TransportError> {
        if let Some(p) = self.pipes.read().ok().and_then(|m| m.get(to).cloned()) {
            if !p.is_broken() {
                return Ok(p);
            }
        }
        let client = self.client(to)?;
        let mut pipes = self
            .pipes
            .write()
            .map_err(|_| TransportError::Unreachable("pipeline table poisoned".into()))?;
        if let Some(p) = pipes.get(to) {
            if !p.is_broken() {
                return Ok(p.clone());
            }
        }
        let pipe = Pipe::open(client);
        pipes.insert(to.to_string(), pipe.clone());
        Ok(pipe)
    }
}

fn unexpected(what: &str) -> TransportError {
    TransportError::Rejected {
        code: tonic::Code::Internal,
        message: format!("peer answered a {what} with something else"),
    }
}

#[async_trait]
impl Transport for GrpcTransport {
    async fn replica_read(
        &self,
        to: &str,
        collection: &str,
        key: &str,
    ) -> Result<Bytes, TransportError> {
        let req = ReplicaReadRequest {
            collection: collection.to_string(),
            key: key.to_string(),
        };
        match self.pipe(to)?.call(pipe_request::Op::Read(req)).await? {
            pipe_response::Result::Read(r) => Ok(r.siblings),
            _ => Err(unexpected("read")),
        }
    }

    async fn replica_write(
        &self,
        to: &str,
        req: ReplicaWriteRequest,
    ) -> Result<(), TransportError> {
        if req.siblings.len() > MAX_PIPELINED_WRITE {
            self.client(to)?.replica_write(req).await?;
            return Ok(());
        }
        match self.pipe(to)?.call(pipe_request::Op::Write(req)).await? {
            pipe_response::Result::Write(_) => Ok(()),
            _ => Err(unexpected("write")),
        }
    }

    async fn replica_write_batch(
        &self,
        to: &str,
        req: ReplicaWriteBatchRequest,
    ) -> Result<(), TransportError> {
        self.client(to)?.replica_write_batch(req).await?;
        Ok(())
    }

    async fn coordinate_write(
        &self,
        to: &str,
        req: CoordinateWriteRequest,
    ) -> Result<CoordinateWriteResponse, TransportError> {
        Ok(self.client(to)?.coordinate_write(req).await?.into_inner())
    }

    async fn fetch_range(
        &self,
        to: &str,
        req: FetchRangeRequest,
    ) -> Result<FetchRangeResponse, TransportError> {
        Ok(self.client(to)?.fetch_range(req).await?.into_inner())
    }

    async fn range_hashes(
        &self,
        to: &str,
        req: RangeHashesRequest,
    ) -> Result<Vec<u64>, TransportError> {
        Ok(self
            .client(to)?
            .range_hashes(req)
            .await?
            .into_inner()
            .hashes)
    }

    async fn key_hashes(
        &self,
        to: &str,
        req: KeyHashesRequest,
    ) -> Result<Vec<KeyHash>, TransportError> {
        Ok(self.client(to)?.key_hashes(req).await?.into_inner().keys)
    }

    async fn tombstones(
        &self,
        to: &str,
        req: TombstonesRequest,
    ) -> Result<TombstonesResponse, TransportError> {
        Ok(self.client(to)?.tombstones(req).await?.into_inner())
    }

    async fn replica_read_batch(
        &self,
        to: &str,
        req: ReplicaReadBatchRequest,
    ) -> Result<Vec<Bytes>, TransportError> {
        Ok(self
            .client(to)?
            .replica_read_batch(req)
            .await?
            .into_inner()
            .siblings)
    }

    async fn gossip(&self, to: &str, syn: GossipSyn) -> Result<GossipAck, TransportError> {
        Ok(self.client(to)?.gossip(syn).await?.into_inner())
    }

    async fn gossip_finish(&self, to: &str, ack2: GossipAck2) -> Result<(), TransportError> {
        self.client(to)?.gossip_finish(ack2).await?;
        Ok(())
    }
}
