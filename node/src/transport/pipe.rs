//! The calling end of a peer pipeline: one long-lived gRPC stream per peer carrying replica
//! reads and writes tagged with ids, so concurrent requests share HTTP/2 frames and system
//! calls instead of each opening a stream of its own.
//!
//! The multiplexing (ids, waiters, batching, a broken pipe staying broken, a dropped pipe
//! ending its stream) is `ringdb_wire::Pipe`, shared with the client; this file opens it
//! over the Internode service and says what its failures mean as [`TransportError`]s.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use ringdb_proto::v1::internode_client::InternodeClient;
use ringdb_proto::v1::{
    pipe_request, pipe_response, PipeRequest, PipeRequests, PipeResponse, PipeResponses,
};
use ringdb_wire::pipe::{Answers, Connect, Wording};

use super::TransportError;
use crate::security::PeerChannel;

pub(crate) use ringdb_wire::pipe::{batched, MAX_BATCH};

type Answer = Result<pipe_response::Result, TransportError>;

/// One message of a peer's answers, by id.
type Answered = Answers<pipe_response::Result, TransportError>;

/// One peer's pipeline; once broken it stays broken and the transport opens a new one.
pub(super) struct Pipe {
    inner: Arc<ringdb_wire::Pipe<pipe_request::Op, pipe_response::Result, TransportError>>,
}

impl Pipe {
    /// Start a pipeline over `client`'s channel; the stream opens in the background and
    /// requests queue meanwhile.
    /// `refused` hears of a refused or reset connection as soon as the stream breaks with
    /// one, before any request fails on it.
    pub(super) fn open(
        client: InternodeClient<PeerChannel>,
        to: String,
        refused: Option<RefusalHook>,
    ) -> Arc<Pipe> {
        let wording = Wording {
            ended: "peer pipeline ended",
            hung_up: TransportError::Unreachable("peer closed the pipeline".into()),
            closed: TransportError::Unreachable("peer pipeline closed".into()),
        };
        let inner = ringdb_wire::Pipe::open(
            wording,
            Peer {
                client,
                to,
                refused,
            },
        );
        Arc::new(Pipe { inner })
    }

    /// Whether the stream has ended (the transport then replaces this pipe).
    pub(super) fn is_broken(&self) -> bool {
        self.inner.is_broken()
    }

    /// Send one operation and wait for its answer. Dropping the future forgets the request;
    /// the peer may still carry it out, as with any call that times out.
    pub(super) async fn call(&self, op: pipe_request::Op) -> Answer {
        self.inner.call(op).await
    }
}

/// Told `(address, why)` when a peer's connection is refused or reset.
pub type RefusalHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The Internode service's pipeline call, as the stream under a peer's pipe.
struct Peer {
    client: InternodeClient<PeerChannel>,
    to: String,
    refused: Option<RefusalHook>,
}

impl Connect<pipe_request::Op, pipe_response::Result, TransportError> for Peer {
    async fn connect(
        self,
        outbound: impl Stream<Item = Vec<(u64, pipe_request::Op)>> + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Answered, TransportError>> + Send + 'static, TransportError>
    {
        let Peer {
            mut client,
            to,
            refused,
        } = self;
        let answers = client.pipeline(outbound.map(requests)).await?.into_inner();
        Ok(answers.map(move |m| {
            let m = answers_of(m);
            if let (Err(e), Some(hook)) = (&m, &refused) {
                tracing::debug!(peer = %to, error = %e, "peer pipeline broke");
                if let TransportError::Refused { reason, .. } = e {
                    hook(&to, reason);
                }
            }
            m
        }))
    }
}

/// One message of requests as the stream carries it.
fn requests(batch: Vec<(u64, pipe_request::Op)>) -> PipeRequests {
    PipeRequests {
        requests: batch
            .into_iter()
            .map(|(id, op)| PipeRequest { id, op: Some(op) })
            .collect(),
    }
}

/// One message of answers as the multiplexer takes them, or why the stream broke.
fn answers_of(m: Result<PipeResponses, tonic::Status>) -> Result<Answered, TransportError> {
    Ok(m?.responses.into_iter().map(answer).collect())
}

/// One answer by id; a peer's failure of that request fails only that request.
fn answer(a: PipeResponse) -> (u64, Answer) {
    let result = match a.result {
        Some(pipe_response::Result::Failure(f)) => Err(TransportError::Rejected {
            code: tonic::Code::from_i32(f.code),
            message: f.message,
        }),
        Some(answer) => Ok(answer),
        None => Err(TransportError::Rejected {
            code: tonic::Code::Internal,
            message: "peer answered without a result".into(),
        }),
    };
    (a.id, result)
}
