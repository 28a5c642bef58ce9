//! Pipelining: a client's gets, puts and deletes to one node share one long-lived gRPC
//! stream (`Client.Pipeline`), tagged with ids and answered in any order, so many requests
//! in flight cost a few HTTP/2 frames and system calls instead of a stream each.
//!
//! Failures keep the meaning the retry rules in `call` rely on: a pipeline that could not
//! be opened fails its requests with the connection error (never sent, safe to retry); one
//! that breaks fails them with the transport error (a write may have been applied); a node's
//! answer to one request fails only that request, as the unary call would. A node without
//! the pipeline (`UNIMPLEMENTED`) gets unary calls from then on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ringdb_proto::v1 as pb;
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{client_request::Op, client_response::Result as Answer};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::routing::Node;

/// Requests queued for a node's stream before callers wait for room.
const QUEUE: usize = 4096;

/// Most requests in one pipeline message.
const MAX_BATCH: usize = 512;

type Reply = std::result::Result<Answer, Status>;

/// A node's pipeline, reopened after it breaks; shared by clones of the node's stubs.
#[derive(Default)]
pub(crate) struct Slot {
    current: Mutex<Option<Arc<Pipe>>>,
    unsupported: AtomicBool,
}

impl Slot {
    /// The live pipeline, opened on demand; `None` when the node has none.
    fn pipe(&self, client: &ClientClient<Channel>) -> Option<Arc<Pipe>> {
        if self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some(p) if !p.is_broken() => Some(p.clone()),
            _ => {
                let p = Pipe::open(client.clone());
                *current = Some(p.clone());
                Some(p)
            }
        }
    }
}

struct Pipe {
    queue: mpsc::Sender<pb::ClientRequest>,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Why the stream ended; once set, nothing new is accepted.
    broken: Option<Status>,
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
}

impl Pipe {
    fn open(mut client: ClientClient<Channel>) -> Arc<Pipe> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let pipe = Arc::new(Pipe {
            queue,
            next_id: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        });
        // The reader holds the pipe weakly: once the client drops it, the queue's sender goes,
        // the request stream ends, the node ends its answers and this task and its
        // connection end too.
        let reader = Arc::downgrade(&pipe);
        tokio::spawn(async move {
            let outbound = batches(rx).map(|requests| pb::ClientRequests { requests });
            let why = match client.pipeline(outbound).await {
                Err(status) => status,
                Ok(resp) => {
                    let mut inbound = resp.into_inner();
                    loop {
                        match inbound.message().await {
                            Ok(Some(m)) => match reader.upgrade() {
                                Some(pipe) => pipe.deliver(m.responses),
                                None => return,
                            },
                            Ok(None) => break Status::unavailable("node closed the pipeline"),
                            Err(status) => break broke_in_flight(&status),
                        }
                    }
                }
            };
            tracing::debug!(error = %why, "pipeline ended");
            if let Some(pipe) = reader.upgrade() {
                pipe.break_with(why);
            }
        });
        pipe
    }

    fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }

    async fn call(&self, op: Op) -> Reply {
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
        let req = pb::ClientRequest { id, op: Some(op) };
        if self.queue.send(req).await.is_err() {
            return Err(self.broken_reason());
        }
        rx.await.unwrap_or_else(|_| Err(self.broken_reason()))
    }

    fn deliver(&self, answers: Vec<pb::ClientResponse>) {
        let ready: Vec<_> = {
            let mut state = self.lock();
            answers
                .into_iter()
                .filter_map(|a| state.waiting.remove(&a.id).map(|tx| (tx, a.result)))
                .collect()
        };
        for (tx, result) in ready {
            let _ = tx.send(match result {
                Some(Answer::Failure(f)) => Err(Status::new(Code::from_i32(f.code), f.message)),
                Some(answer) => Ok(answer),
                None => Err(Status::internal("node answered without a result")),
            });
        }
    }

    fn break_with(&self, why: Status) {
        let waiting = {
            let mut state = self.lock();
            state.broken.get_or_insert(why.clone());
            std::mem::take(&mut state.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(why.clone()));
        }
    }

    fn broken_reason(&self) -> Status {
        self.lock()
            .broken
            .clone()
            .unwrap_or_else(|| Status::unavailable("pipeline closed"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drops a request's waiter when its caller stops waiting.
struct Forget<'a> {
    pipe: &'a Pipe,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pipe.lock().waiting.remove(&self.id);
    }
}

/// The queue as messages of every request ready at once: after the first it yields once so
/// tasks already runnable queue theirs too.
fn batches(
    rx: mpsc::Receiver<pb::ClientRequest>,
) -> impl futures::Stream<Item = Vec<pb::ClientRequest>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        Some((batch, rx))
    })
}

impl Node {
    /// Send a get, put or delete on the node's pipeline when `pipelined` (and the node has
    /// one), else as a call of its own.
    pub(crate) async fn send(&mut self, op: Op, pipelined: bool) -> Reply {
        if pipelined {
            if let Some(pipe) = self.pipe.pipe(&self.client) {
                match pipe.call(op.clone()).await {
                    Err(s) if s.code() == Code::Unimplemented => {
                        tracing::debug!("node has no pipeline; using unary calls");
                        self.pipe.unsupported.store(true, Ordering::Relaxed);
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

/// Why the requests on a stream that broke after it opened failed. They may have reached the
/// node, so whatever the transport said (hyper's "operation was canceled" included), the
/// error must never read as "never sent": it keeps a cause, so the retry rules see a
/// transport failure (reads move on, writes may have been applied), with fixed wording.
fn broke_in_flight(status: &Status) -> Status {
    let mut s = Status::unavailable(format!(
        "the stream to the node broke with requests in flight ({})",
        status.code()
    ));
    s.set_source(Arc::new(InFlight));
    s
}

/// The cause attached by [`broke_in_flight`].
#[derive(Debug)]
struct InFlight;

impl std::fmt::Display for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("requests may have been applied")
    }
}

impl std::error::Error for InFlight {}

/// The error for an answer of the wrong kind (a broken or foreign server).
pub(crate) fn mismatched(what: &str) -> Status {
    Status::internal(format!("node answered a {what} with something else"))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use ringdb_proto::v1::client_server::{Client as ClientApi, ClientServer};
    use tonic::{Request, Response, Streaming};

    use crate::{Client, RetryPolicy};

    use super::*;

    type Answers = Pin<
        Box<dyn futures::Stream<Item = std::result::Result<pb::ClientResponses, Status>> + Send>,
    >;

    /// A stand-in node. With `pipelined` it answers gets on its pipeline (coordinator
    /// "pipe") and notifies `ended` when a client's stream ends; without, it is a node from
    /// before pipelines. Unary gets answer with coordinator "unary"; writes are refused.
    struct Fake {
        pipelined: bool,
        ended: Arc<tokio::sync::Notify>,
    }

    fn answered(coordinator: &str, key: &str) -> pb::GetResponse {
        pb::GetResponse {
            values: vec![format!("{{\"key\":\"{key}\"}}").into()],
            coordinator: coordinator.into(),
            ..Default::default()
        }
    }

    #[tonic::async_trait]
    impl ClientApi for Fake {
        type PipelineStream = Answers;

        async fn pipeline(
            &self,
            req: Request<Streaming<pb::ClientRequests>>,
        ) -> std::result::Result<Response<Answers>, Status> {
            if !self.pipelined {
                return Err(Status::unimplemented("no pipeline here"));
            }
            let (ended, mut inbound) = (self.ended.clone(), req.into_inner());
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                while let Ok(Some(m)) = inbound.message().await {
                    let responses = m
                        .requests
                        .into_iter()
                        .map(|r| pb::ClientResponse {
                            id: r.id,
                            result: Some(match r.op {
                                Some(Op::Get(g)) => Answer::Get(answered("pipe", &g.key)),
                                _ => Answer::Failure(pb::Failure {
                                    code: Code::FailedPrecondition as i32,
                                    message: "read only".into(),
                                }),
                            }),
                        })
                        .collect();
                    let _ = tx.send(Ok(pb::ClientResponses { responses })).await;
                }
                ended.notify_one();
            });
            Ok(Response::new(Box::pin(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )))
        }

        async fn get(
            &self,
            req: Request<pb::GetRequest>,
        ) -> std::result::Result<Response<pb::GetResponse>, Status> {
            Ok(Response::new(answered("unary", &req.into_inner().key)))
        }

        async fn put(
            &self,
            _: Request<pb::PutRequest>,
        ) -> std::result::Result<Response<pb::PutResponse>, Status> {
            Err(Status::failed_precondition("read only"))
        }

        async fn delete(
            &self,
            _: Request<pb::DeleteRequest>,
        ) -> std::result::Result<Response<pb::DeleteResponse>, Status> {
            Err(Status::failed_precondition("read only"))
        }
    }

    /// Serve `fake` on a free port and connect a client to it (no routing, no retries).
    async fn client_of(fake: Fake) -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ClientServer::new(fake))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Client::builder([address.as_str()])
            .routing(crate::Routing::RoundRobin)
            .retry(RetryPolicy::none())
            .connect()
            .await
            .unwrap()
    }

    #[test]
    fn a_stream_that_broke_never_reads_as_never_sent() {
        let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::new(std::io::Error::other(
            "operation was canceled: connection closed",
        ));
        let mut raw = Status::unknown("operation was canceled");
        raw.set_source(cause);
        assert!(
            crate::error::never_sent(&raw),
            "the raw error reads as never sent"
        );
        let s = broke_in_flight(&raw);
        assert!(!crate::error::never_sent(&s), "{s:?}");
        assert!(crate::error::transport_failure(&s), "{s:?}");
    }

    #[tokio::test]
    async fn dropping_the_client_ends_its_pipelines() {
        let ended = Arc::new(tokio::sync::Notify::new());
        let client = client_of(Fake {
            pipelined: true,
            ended: ended.clone(),
        })
        .await;
        let r = client.get("c", "k").await.unwrap();
        assert_eq!(r.coordinator.as_deref(), Some("pipe"));
        // A request's own failure travels on the stream and ends nothing.
        match client.put("c", "k", &serde_json::json!({})).await {
            Err(crate::Error::FailedPrecondition(m)) => assert_eq!(m, "read only"),
            other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
        }
        assert_eq!(
            client.get("c", "j").await.unwrap().values,
            vec![serde_json::json!({"key": "j"})]
        );
        drop(client);
        tokio::time::timeout(std::time::Duration::from_secs(10), ended.notified())
            .await
            .expect("the node's pipeline is still open after the client was dropped");
    }

    #[tokio::test]
    async fn a_node_without_pipelines_gets_unary_calls() {
        let client = client_of(Fake {
            pipelined: false,
            ended: Arc::default(),
        })
        .await;
        for key in ["a", "b"] {
            let r = client.get("c", key).await.unwrap();
            assert_eq!(r.values, vec![serde_json::json!({ "key": key })]);
            assert_eq!(r.coordinator.as_deref(), Some("unary"));
        }
        // The node's own answers still come through as errors of their kind.
        match client.put("c", "a", &serde_json::json!({})).await {
            Err(crate::Error::FailedPrecondition(m)) => assert_eq!(m, "read only"),
            other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
        }
    }
}
