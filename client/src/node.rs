//! One node as the client talks to it: gRPC stubs sharing one lazily connected channel,
//! and the node's pipeline, opened on demand and reopened after it breaks.
//!
//! Invariants kept here:
//! - clones of a node's stubs share its pipeline;
//! - a node that answers the pipeline with `UNIMPLEMENTED` (one from before pipelines)
//!   gets unary calls from then on; either way the answers and errors are the same.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{client_request::Op, client_response::Result as Answer};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::error::{Error, Result};
use crate::pipe::{self, NodePipe};

/// Largest message the client accepts (a read can return several large siblings).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// HTTP/2 receive window: a pipeline's answers to many requests share one stream, which
/// the 64 KiB default would throttle.
const WINDOW: u32 = 2 * 1024 * 1024;

/// Adds the client's token (if it has one) to every request as `authorization: Bearer`.
#[derive(Clone, Default)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<token>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    /// A bearer of `token`; refused if it is not printable ASCII.
    pub(crate) fn new(token: Option<&str>) -> Result<Bearer> {
        match token {
            None => Ok(Bearer(None)),
            Some(t) => format!("Bearer {}", t.trim())
                .parse()
                .map(|v| Bearer(Some(v)))
                .map_err(|_| Error::InvalidArgument("the token must be printable ASCII".into())),
        }
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The channel every stub uses: the node connection plus the client's token.
pub(crate) type NodeChannel = InterceptedService<Channel, Bearer>;

/// How the client reaches nodes: timeout, TLS trust, token.
#[derive(Clone, Debug)]
pub(crate) struct Dial {
    pub(crate) connect_timeout: Duration,
    /// The cluster CA (PEM); `Some` means TLS.
    pub(crate) tls_ca: Option<Arc<Vec<u8>>>,
    pub(crate) bearer: Bearer,
}

/// gRPC stubs for one node, sharing one lazily connected channel.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) client: ClientClient<NodeChannel>,
    pub(crate) admin: AdminClient<NodeChannel>,
    slot: Arc<Slot>,
}

fn endpoint(addr: &str, dial: &Dial) -> Result<Endpoint> {
    let scheme = if dial.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("{scheme}://{addr}")
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| Error::InvalidArgument(format!("bad node address {addr:?}: {e}")))?;
    if let Some(ca) = &dial.tls_ca {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.as_slice())))
            .map_err(|e| Error::InvalidArgument(format!("TLS settings: {e}")))?;
    }
    Ok(endpoint
        .connect_timeout(dial.connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

impl Node {
    /// Stubs for `address`; nothing is connected until the first call.
    pub(crate) fn lazy(address: &str, dial: &Dial) -> Result<Node> {
        let channel =
            InterceptedService::new(endpoint(address, dial)?.connect_lazy(), dial.bearer.clone());
        Ok(Node {
            client: ClientClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            admin: AdminClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            slot: Arc::default(),
        })
    }

    /// Send a get, put or delete on the node's pipeline when `pipelined` (and the node has
    /// one), else as a call of its own.
    pub(crate) async fn send(&mut self, op: Op, pipelined: bool) -> Result<Answer, Status> {
        if pipelined {
            if let Some(pipe) = self.slot.pipe(&self.client) {
                match pipe.call(op.clone()).await {
                    Err(s) if s.code() == Code::Unimplemented => {
                        tracing::debug!("node has no pipeline; using unary calls");
                        self.slot.unsupported.store(true, Ordering::Relaxed);
                    }
                    reply => return reply,
                }
            }
        }
        match op {
            Op::Get(r) => self
                .client
                .get(r)
                .await
                .map(|a| Answer::Get(a.into_inner())),
            Op::Put(r) => self
                .client
                .put(r)
                .await
                .map(|a| Answer::Put(a.into_inner())),
            Op::Delete(r) => self
                .client
                .delete(r)
                .await
                .map(|a| Answer::Delete(a.into_inner())),
        }
    }
}

/// A node's pipeline, reopened after it breaks; shared by clones of the node's stubs.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<NodePipe>>>,
    unsupported: AtomicBool,
}

impl Slot {
    /// The live pipeline, opened on demand; `None` when the node has none.
    fn pipe(&self, client: &ClientClient<NodeChannel>) -> Option<Arc<NodePipe>> {
        if self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some(p) if !p.is_broken() => Some(p.clone()),
            _ => {
                let p = pipe::open(client.clone());
                *current = Some(p.clone());
                Some(p)
            }
        }
    }
}
