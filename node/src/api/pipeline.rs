//! The serving end of pipelines (a peer's replica traffic, a client's gets and puts): many
//! requests arrive per message on one stream, run concurrently, and their answers go back
//! by id, batched the same way, as each finishes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use ringdb_proto::v1::Failure;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::{Code, Status, Streaming};

use super::wire::WireLimits;
use crate::transport::pipe::{batched, MAX_BATCH};

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
/// `handle` answers one request, `batch` wraps the answers ready at one time. A message
/// that does not decode (or is over `limits`) ends the stream, after the answers to the
/// requests before it, with `INVALID_ARGUMENT` saying why.
pub fn serve<In, Req, Ans, Out, H, Fut>(
    mut inbound: Streaming<In>,
    limits: WireLimits,
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
    let (ended, end) = oneshot::channel::<Status>();
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let msg = match inbound.message().await {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(e) => {
                    match limits.documented(e.code(), e.message()) {
                        Some(status) => {
                            tracing::debug!(error = %e, "pipeline message refused");
                            let _ = ended.send(status);
                        }
                        None if e.code() == Code::Cancelled => {}
                        None => tracing::debug!(error = %e, "pipeline closed by its sender"),
                    }
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
    // The answers, then the reason the stream was cut short, if it was.
    let refusal = futures::stream::once(end).filter_map(|r| async move { r.ok().map(Err) });
    Box::pin(
        batched(rx, MAX_BATCH)
            .map(move |answers| Ok(batch(answers)))
            .chain(refusal),
    )
}
