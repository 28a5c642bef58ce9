//! The serving end of pipelines (a peer's replica traffic, a client's gets and puts): many
//! requests arrive per message on one stream, run concurrently, and their answers go back
//! by id, batched the same way, as each finishes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use ringdb_proto::v1::{
    pipe_request, pipe_response, Failure, PipeRequest, PipeRequests, PipeResponse, PipeResponses,
    ReplicaReadResponse, ReplicaWriteResponse,
};
use tokio::sync::{mpsc, Semaphore};
use tonic::{Status, Streaming};

use crate::error::Error;
use crate::storage::Storage;
use crate::transport::pipe::{batched, MAX_BATCH};
use crate::version::SiblingSet;

/// Operations one pipeline runs at once; past this the stream stops being read, so HTTP/2
/// flow control pushes back on the sender instead of tasks piling up here.
const MAX_IN_FLIGHT: usize = 1024;

/// A pipeline's answers, one message per batch.
pub type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A failed operation as its pipeline answer carries it.
pub fn failure(status: Status) -> Failure {
    Failure {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

/// Serve one pipeline until its sender closes it: `unbatch` opens an incoming message,
/// `handle` answers one request, `batch` wraps the answers ready at one time.
pub fn serve<In, Req, Ans, Out, H, Fut>(
    mut inbound: Streaming<In>,
    unbatch: fn(In) -> Vec<Req>,
    handle: H,
    batch: fn(Vec<Ans>) -> Out,
) -> Answers<Out>
where
    In: Send + 'static,
    Req: Send + 'static,
    Ans: Send + 'static,
    Out: Send + 'static,
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Ans> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let msg = match inbound.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "pipeline closed by its sender");
                    return;
                }
            };
            for req in unbatch(msg) {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (tx, answer) = (tx.clone(), handle(req));
                tokio::spawn(async move {
                    let _ = tx.send(answer.await).await;
                    drop(permit);
                });
            }
        }
    });
    Box::pin(batched(rx, MAX_BATCH).map(move |answers| Ok(batch(answers))))
}

/// Serve a peer's replica reads and writes.
pub fn serve_replica(storage: Storage, inbound: Streaming<PipeRequests>) -> Answers<PipeResponses> {
    serve(
        inbound,
        |m: PipeRequests| m.requests,
        move |req: PipeRequest| {
            let storage = storage.clone();
            async move {
                let result = run(&storage, req.op)
                    .await
                    .unwrap_or_else(|s| pipe_response::Result::Failure(failure(s)));
                PipeResponse {
                    id: req.id,
                    result: Some(result),
                }
            }
        },
        |responses| PipeResponses { responses },
    )
}

async fn run(
    storage: &Storage,
    op: Option<pipe_request::Op>,
) -> Result<pipe_response::Result, Status> {
    match op {
        Some(pipe_request::Op::Read(r)) => {
            let raw = storage
                .read_raw(&r.collection, &r.key)
                .await
                .map_err(Error::from)?;
            Ok(pipe_response::Result::Read(ReplicaReadResponse {
                siblings: raw.unwrap_or_default(),
            }))
        }
        Some(pipe_request::Op::Write(w)) => {
            let set = SiblingSet::decode(&w.siblings)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let durability = super::durability(w.durability)?;
            storage
                .merge(&w.collection, &w.key, set, durability)
                .await
                .map_err(Error::from)?;
            Ok(pipe_response::Result::Write(ReplicaWriteResponse {}))
        }
        None => Err(Status::invalid_argument(
            "pipeline request without an operation",
        )),
    }
}
