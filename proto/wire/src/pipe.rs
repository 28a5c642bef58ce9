//! The pipelined request multiplexer: many requests share one long-lived stream, each
//! tagged with an id, answered in any order and delivered by id, so many requests in flight
//! cost a few frames and system calls instead of a stream each. The node uses it for replica
//! traffic to its peers, the client for gets, puts and deletes to a node; each side brings
//! only the stream (its gRPC call), the translation of its messages and its error wording.
//!
//! Invariants kept here:
//! - ids are unique within a pipe; an answer reaches the caller waiting on its id, or nobody
//!   (the caller stopped waiting);
//! - a pipe that broke stays broken: its waiters and every later call fail with the reason
//!   it broke (the first one, if it broke twice); whoever holds it opens a new one;
//! - the task reading answers holds the pipe weakly: dropping the last handle drops the
//!   queue, which ends the outbound stream, so the other end ends its answers and the task
//!   and its connection end too;
//! - a caller whose future is dropped (timed out, cancelled) forgets its waiter, so
//!   abandoned requests do not accumulate (the other end may still carry them out);
//! - batching ([`batched`]): a message holds the first item queued and, after one
//!   `yield_now`, everything else queued by then, up to the maximum.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

/// Requests queued for the stream before callers wait for room.
pub const QUEUE: usize = 4096;

/// Most requests (or answers) in one pipeline message.
pub const MAX_BATCH: usize = 512;

/// Everything queued on `rx`, a message at a time. After the first item it yields once, so
/// the tasks already runnable on this thread get to queue theirs too: under load one message
/// carries many items, at the cost of one task switch when there is no load.
pub fn batched<T: Send + 'static>(
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

/// The stream under a pipe, opened by the side that uses it (a gRPC call; an in-memory
/// stand-in in tests). A trait rather than a closure so the outbound stream reaches it as
/// its own type: tonic cannot send a boxed `dyn Stream` from a spawned task.
pub trait Connect<Req, Ans, Err>: Send + 'static {
    /// Open the stream. `outbound` carries batches of `(id, request)` and ends when the
    /// pipe is dropped; the result is the inbound answers, or why the stream could not be
    /// opened. An inbound error breaks the pipe with that error.
    fn connect(
        self,
        outbound: impl Stream<Item = Vec<(u64, Req)>> + Send + 'static,
    ) -> impl Future<
        Output = Result<impl Stream<Item = Result<Answers<Ans, Err>, Err>> + Send + 'static, Err>,
    > + Send;
}

/// One message of answers: `(id, answer)`, where the answer may be that request's own
/// failure (which fails only that request).
pub type Answers<Ans, Err> = Vec<(u64, Result<Ans, Err>)>;

/// How one side words the endings the multiplexer notices by itself.
#[derive(Debug, Clone)]
pub struct Wording<Err> {
    /// What the debug log says when the stream ends ("peer pipeline ended").
    pub ended: &'static str,
    /// The error once the other end closes its answers without an error.
    pub hung_up: Err,
    /// The error for a caller whose pipe went away with no reason recorded.
    pub closed: Err,
}

/// One stream's multiplexer; once broken it stays broken, and its owner opens a new one.
pub struct Pipe<Req, Ans, Err> {
    queue: mpsc::Sender<(u64, Req)>,
    next_id: AtomicU64,
    state: Mutex<State<Ans, Err>>,
    closed: Err,
}

struct State<Ans, Err> {
    /// Why the stream ended; set once, after which nothing new is accepted.
    broken: Option<Err>,
    waiting: HashMap<u64, oneshot::Sender<Result<Ans, Err>>>,
}

impl<Req, Ans, Err> Pipe<Req, Ans, Err>
where
    Req: Send + 'static,
    Ans: Send + 'static,
    Err: Clone + fmt::Display + Send + Sync + 'static,
{
    /// Start a pipe over the stream `connect` opens; it opens in the background, and
    /// requests queue meanwhile.
    pub fn open(wording: Wording<Err>, connect: impl Connect<Req, Ans, Err>) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let Wording {
            ended,
            hung_up,
            closed,
        } = wording;
        let pipe = Arc::new(Pipe {
            queue,
            next_id: AtomicU64::new(0),
            state: Mutex::new(State {
                broken: None,
                waiting: HashMap::new(),
            }),
            closed,
        });
        // Held weakly, so a dropped pipe ends its stream, this task and the connection.
        let reader = Arc::downgrade(&pipe);
        tokio::spawn(async move {
            let why = match connect.connect(batched(rx, MAX_BATCH)).await {
                Err(why) => why,
                Ok(inbound) => {
                    let mut inbound = std::pin::pin!(inbound);
                    loop {
                        match inbound.next().await {
                            Some(Ok(answers)) => match reader.upgrade() {
                                Some(pipe) => pipe.deliver(answers),
                                None => return,
                            },
                            Some(Err(why)) => break why,
                            None => break hung_up,
                        }
                    }
                }
            };
            tracing::debug!(error = %why, "{ended}");
            if let Some(pipe) = reader.upgrade() {
                pipe.break_with(why);
            }
        });
        pipe
    }

    /// Whether the stream has ended (the owner then replaces this pipe).
    pub fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }

    /// Send one request and wait for its answer. Dropping the future forgets the request;
    /// the other end may still carry it out, as with any call that times out.
    pub async fn call(&self, req: Req) -> Result<Ans, Err> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if let Some(why) = &state.broken {
                return Err(why.clone());
            }
            state.waiting.insert(id, tx);
        }
        let _forget = Forget {
            state: &self.state,
            id,
        };
        if self.queue.send((id, req)).await.is_err() {
            return Err(self.broken_reason());
        }
        rx.await.unwrap_or_else(|_| Err(self.broken_reason()))
    }

    fn deliver(&self, answers: Answers<Ans, Err>) {
        let ready: Vec<_> = {
            let mut state = self.lock();
            answers
                .into_iter()
                .filter_map(|(id, answer)| state.waiting.remove(&id).map(|tx| (tx, answer)))
                .collect()
        };
        for (tx, answer) in ready {
            let _ = tx.send(answer);
        }
    }

    fn break_with(&self, why: Err) {
        let waiting = {
            let mut state = self.lock();
            state.broken.get_or_insert(why.clone());
            std::mem::take(&mut state.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(why.clone()));
        }
    }

    fn broken_reason(&self) -> Err {
        self.lock()
            .broken
            .clone()
            .unwrap_or_else(|| self.closed.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State<Ans, Err>> {
        lock(&self.state)
    }
}

fn lock<Ans, Err>(state: &Mutex<State<Ans, Err>>) -> MutexGuard<'_, State<Ans, Err>> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes a request's waiter when its caller stops waiting (answered, timed out or
/// dropped), so abandoned requests do not accumulate.
struct Forget<'a, Ans, Err> {
    state: &'a Mutex<State<Ans, Err>>,
    id: u64,
}

impl<Ans, Err> Drop for Forget<'_, Ans, Err> {
    fn drop(&mut self) {
        lock(self.state).waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests;
