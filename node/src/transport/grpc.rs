//! The production transport: one lazily connected HTTP/2 channel per peer address.
//! Replica reads and writes (hint replays included) of up to 1 MiB share the
//! peer's pipeline; every other message is its own unary call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use ringdb_proto::v1::internode_client::InternodeClient;
use ringdb_proto::v1::{pipe_request, pipe_response};
use tonic::transport::Endpoint;

use super::pipe::Pipe;
pub use super::pipe::RefusalHook;
use super::{PeerRequest, PeerResponse, Transport, TransportError};
use crate::security::tls::Tls;
use crate::security::{NodeCredential, PeerChannel};

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
    clients: RwLock<HashMap<String, InternodeClient<PeerChannel>>>,
    pipes: RwLock<HashMap<String, Arc<Pipe>>>,
    connect_timeout: Duration,
    tls: Option<Arc<Tls>>,
    credential: NodeCredential,
    /// The TLS generation the cached channels were made with.
    made_with: AtomicU64,
    /// Told when a pipeline breaks on a refused or reset connection.
    refused: OnceLock<RefusalHook>,
}

impl GrpcTransport {
    /// A transport whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::secured(connect_timeout, None, NodeCredential::default())
    }

    /// A transport that dials peers over TLS (presenting this node's certificate) when
    /// `tls` is set, and sends `credential` with every request.
    pub fn secured(
        connect_timeout: Duration,
        tls: Option<Arc<Tls>>,
        credential: NodeCredential,
    ) -> Self {
        GrpcTransport {
            clients: RwLock::new(HashMap::new()),
            pipes: RwLock::new(HashMap::new()),
            connect_timeout,
            made_with: AtomicU64::new(tls.as_ref().map_or(0, |t| t.generation())),
            tls,
            credential,
            refused: OnceLock::new(),
        }
    }

    /// Have `hook` told `(address, why)` as soon as a peer's pipeline breaks on a refused
    /// or reset connection (a killed process), not only when a later request fails. Set
    /// once; later calls are ignored.
    pub fn on_refused(&self, hook: RefusalHook) {
        let _ = self.refused.set(hook);
    }

    /// Forget every channel made with certificates that have since been replaced, so the
    /// next request connects with the new ones.
    fn renew_after_reload(&self) {
        let Some(tls) = &self.tls else { return };
        let now = tls.generation();
        if self.made_with.swap(now, Ordering::Relaxed) != now {
            if let Ok(mut m) = self.clients.write() {
                m.clear();
            }
            if let Ok(mut m) = self.pipes.write() {
                m.clear();
            }
        }
    }

    fn client(&self, to: &str) -> Result<InternodeClient<PeerChannel>, TransportError> {
        self.renew_after_reload();
        if let Some(c) = self.clients.read().ok().and_then(|m| m.get(to).cloned()) {
            return Ok(c);
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{to}"))
            .map_err(|e| TransportError::Unreachable(format!("bad peer address {to}: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.client_config()).map_err(|e| {
                TransportError::Unreachable(format!("TLS settings for peer {to}: {e}"))
            })?;
        }
        let channel = tonic::service::interceptor::InterceptedService::new(
            endpoint.connect_lazy(),
            self.credential.clone(),
        );
        let client = InternodeClient::new(channel)
            .max_decoding_message_size(MAX_INTERNODE_MESSAGE)
            .max_encoding_message_size(MAX_INTERNODE_MESSAGE);
        if let Ok(mut m) = self.clients.write() {
            m.insert(to.to_string(), client.clone());
        }
        Ok(client)
    }

    /// The peer's pipeline, opened (or reopened after it broke) on demand.
    fn pipe(&self, to: &str) -> Result<Arc<Pipe>, TransportError> {
        self.renew_after_reload();
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
        let pipe = Pipe::open(client, to.to_string(), self.refused.get().cloned());
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
    async fn call(&self, to: &str, request: PeerRequest) -> Result<PeerResponse, TransportError> {
        use PeerRequest as Q;
        use PeerResponse as A;
        Ok(match request {
            Q::ReplicaRead(r) => match self.pipe(to)?.call(pipe_request::Op::Read(r)).await? {
                pipe_response::Result::Read(r) => A::ReplicaRead(r),
                _ => return Err(unexpected("read")),
            },
            Q::ReplicaWrite(w) | Q::HintReplay(w) if w.siblings.len() > MAX_PIPELINED_WRITE => {
                A::ReplicaWrite(self.client(to)?.replica_write(w).await?.into_inner())
            }
            Q::ReplicaWrite(w) | Q::HintReplay(w) => {
                match self.pipe(to)?.call(pipe_request::Op::Write(w)).await? {
                    pipe_response::Result::Write(w) => A::ReplicaWrite(w),
                    _ => return Err(unexpected("write")),
                }
            }
            Q::ReplicaWriteBatch(r) => {
                A::ReplicaWriteBatch(self.client(to)?.replica_write_batch(r).await?.into_inner())
            }
            Q::CoordinateWrite(r) => {
                A::CoordinateWrite(self.client(to)?.coordinate_write(r).await?.into_inner())
            }
            Q::FetchRange(r) => A::FetchRange(self.client(to)?.fetch_range(r).await?.into_inner()),
            Q::Gossip(syn) => A::Gossip(self.client(to)?.gossip(syn).await?.into_inner()),
            Q::GossipFinish(ack2) => {
                A::GossipFinish(self.client(to)?.gossip_finish(ack2).await?.into_inner())
            }
            Q::RangeHashes(r) => {
                A::RangeHashes(self.client(to)?.range_hashes(r).await?.into_inner())
            }
            Q::KeyHashes(r) => A::KeyHashes(self.client(to)?.key_hashes(r).await?.into_inner()),
            Q::Tombstones(r) => A::Tombstones(self.client(to)?.tombstones(r).await?.into_inner()),
            Q::ReplicaReadBatch(r) => {
                A::ReplicaReadBatch(self.client(to)?.replica_read_batch(r).await?.into_inner())
            }
            Q::QueryScan(r) => A::QueryScan(self.client(to)?.query_scan(r).await?.into_inner()),
            Q::QueryAggregate(r) => {
                A::QueryAggregate(self.client(to)?.query_aggregate(r).await?.into_inner())
            }
        })
    }
}
