//! The calling end of a peer pipeline: one long-lived gRPC stream per peer carrying replica
//! reads and writes tagged with ids, so concurrent requests share HTTP/2 frames and system
//! calls instead of each opening a stream of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use ringdb_proto::v1::internode_client::InternodeClient;
use ringdb_proto::v1::{pipe_request, pipe_response, PipeRequest, PipeRequests, PipeResponse};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::TransportError;

/// Requests queued for the stream before callers wait for room.
const QUEUE: usize = 4096;

/// Most requests (or answers) in one pipeline message.
pub(crate) const MAX_BATCH: usize = 512;

/// Everything queued on `rx`, a message at a time. After the first item it yields once, so
/// the tasks already runnable on this thread get to queue theirs too: under load one message
/// carries many requests, at the cost of one task switch when there is no load.
pub(crate) fn batched<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
    max: usize,
) -> impl Stream<Item = Vec<T>> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| async move {
        let first = rx.recv().await?;
        tokio::task::yield_now().await;
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        Some((batch, rx))
    })
}

type Answer = Result<pipe_response::Result, TransportError>;

/// One peer's pipeline; once broken it stays broken and the transport opens a new one.
pub(super) struct Pipe {
    queue: mpsc::Sender<PipeRequest>,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Why the stream ended; set once, after which nothing new is accepted.
    broken: Option<TransportError>,
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
}

impl Pipe {
    /// Start a pipeline over `client`'s channel; the stream opens in the background and
    /// requests queue meanwhile.
    pub(super) fn open(mut client: InternodeClient<Channel>) -> Arc<Pipe> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let pipe = Arc::new(Pipe {
            queue,
            next_id: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        });
        // Held weakly, so a dropped pipe ends its stream, this task and the connection.
        let reader = Arc::downgrade(&pipe);
        tokio::spawn(async move {
            let outbound = batched(rx, MAX_BATCH).map(|requests| PipeRequests { requests });
            let why = match client.pipeline(outbound).await {
                Err(status) => TransportError::from(status),
                Ok(resp) => {
                    let mut inbound = resp.into_inner();
                    loop {
                        match inbound.message().await {
                            Ok(Some(answers)) => match reader.upgrade() {
                                Some(pipe) => pipe.deliver(answers.responses),
                                None => return,
                            },
                            Ok(None) => {
                                break TransportError::Unreachable(
                                    "peer closed the pipeline".into(),
                                )
                            }
                            Err(status) => break TransportError::from(status),
                        }
                    }
                }
            };
            tracing::debug!(error = %why, "peer pipeline ended");
            if let Some(pipe) = reader.upgrade() {
                pipe.break_with(why);
            }
        });
        pipe
    }

    /// Whether the stream has ended (the transport then replaces this pipe).
    pub(super) fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }

    /// Send one operation and wait for its answer. Dropping the future forgets the request;
    /// the peer may still carry it out, as with any call that times out.
    pub(super) async fn call(&self, op: pipe_request::Op) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if let Some(why) = &state.broken {
                return Err(why.clone());
            }
            state.waiting.insert(id, tx);
        }
        let _forget = Forget { pipe: self, id };
        let req = PipeRequest { id, op: Some(op) };
        if self.queue.send(req).await.is_err() {
            return Err(self.broken_reason());
        }
        rx.await.unwrap_or_else(|_| Err(self.broken_reason()))
    }

    fn deliver(&self, answers: Vec<PipeResponse>) {
        let waiters: Vec<_> = {
            let mut state = self.lock();
            answers
                .into_iter()
                .filter_map(|a| state.waiting.remove(&a.id).map(|tx| (tx, a.result)))
                .collect()
        };
        for (tx, result) in waiters {
            let _ = tx.send(match result {
                Some(pipe_response::Result::Failure(f)) => Err(TransportError::Rejected {
                    code: tonic::Code::from_i32(f.code),
                    message: f.message,
                }),
                Some(answer) => Ok(answer),
                None => Err(TransportError::Rejected {
                    code: tonic::Code::Internal,
                    message: "peer answered without a result".into(),
                }),
            });
        }
    }

    fn break_with(&self, why: TransportError) {
        let waiting = {
            let mut state = self.lock();
            state.broken.get_or_insert(why.clone());
            std::mem::take(&mut state.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(why.clone()));
        }
    }

    fn broken_reason(&self) -> TransportError {
        self.lock()
            .broken
            .clone()
            .unwrap_or_else(|| TransportError::Unreachable("peer pipeline closed".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a request's waiter when its caller stops waiting (answered, timed out or
/// dropped), so abandoned requests do not accumulate.
struct Forget<'a> {
    pipe: &'a Pipe,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pipe.lock().waiting.remove(&self.id);
    }
}
