//! Pipelining: a client's gets, puts and deletes to one node share one long-lived gRPC
//! stream (`Client.Pipeline`), tagged with ids and answered in any order, so many requests
//! in flight cost a few HTTP/2 frames and system calls instead of a stream each.
//!
//! Failures keep the meaning the retry rules in `call` rely on: a pipeline that could not
//! be opened fails its requests with the connection error (never sent, safe to retry); one
//! that breaks fails them with the transport error (a write may have been applied); a node's
//! answer to one request fails only that request, as the unary call would. A node without
//! the pipeline (`UNIMPLEMENTED`) gets unary calls from then on (see `node`).
//!
//! The multiplexing itself (ids, waiters, batching, a broken pipe staying broken, a
//! dropped pipe ending its stream) is `ringdb_wire::Pipe`, shared with the node; this file
//! opens it over the Client service and words its failures as the retry rules read them.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use ringdb_proto::v1 as pb;
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{client_request::Op, client_response::Result as Answer};
use ringdb_wire::pipe::{Answers, Connect, Wording};
use tonic::{Code, Status};

/// A node's pipeline: gets, puts and deletes out, their answers (or each one's own
/// failure) back.
pub(crate) type NodePipe = ringdb_wire::Pipe<Op, Answer, Status>;

/// Start a pipeline to the node behind `client`; it opens in the background and requests
/// queue meanwhile. If it cannot open, its requests fail with the call's own error
/// (`UNIMPLEMENTED` from a node without pipelines).
pub(crate) fn open(client: ClientClient<crate::node::NodeChannel>) -> Arc<NodePipe> {
    let wording = Wording {
        ended: "pipeline ended",
        hung_up: Status::unavailable("node closed the pipeline"),
        closed: Status::unavailable("pipeline closed"),
    };
    ringdb_wire::Pipe::open(wording, ToNode(client))
}

/// The Client service's pipeline call, as the stream under a node's pipe.
struct ToNode(ClientClient<crate::node::NodeChannel>);

impl Connect<Op, Answer, Status> for ToNode {
    async fn connect(
        mut self,
        outbound: impl Stream<Item = Vec<(u64, Op)>> + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Answers<Answer, Status>, Status>> + Send + 'static, Status>
    {
        let answers = self.0.pipeline(outbound.map(requests)).await?.into_inner();
        Ok(answers.map(answers_of))
    }
}

/// One message of requests as the stream carries it.
fn requests(batch: Vec<(u64, Op)>) -> pb::ClientRequests {
    pb::ClientRequests {
        requests: batch
            .into_iter()
            .map(|(id, op)| pb::ClientRequest { id, op: Some(op) })
            .collect(),
    }
}

/// One message of answers as the multiplexer takes them, or why the stream broke.
fn answers_of(m: Result<pb::ClientResponses, Status>) -> Result<Answers<Answer, Status>, Status> {
    match m {
        Ok(m) => Ok(m.responses.into_iter().map(answer).collect()),
        Err(status) => Err(broke_in_flight(&status)),
    }
}

/// One answer by id; the node's failure of that request fails only that request, as the
/// unary call would.
fn answer(a: pb::ClientResponse) -> (u64, Result<Answer, Status>) {
    let result = match a.result {
        Some(Answer::Failure(f)) => Err(Status::new(Code::from_i32(f.code), f.message)),
        Some(answer) => Ok(answer),
        None => Err(Status::internal("node answered without a result")),
    };
    (a.id, result)
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use ringdb_proto::v1::client_server::{Client as ClientApi, ClientServer};
    use tokio::sync::mpsc;
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
        type FindStream =
            Pin<Box<dyn futures::Stream<Item = std::result::Result<pb::FindPage, Status>> + Send>>;

        async fn find(
            &self,
            _: Request<pb::FindRequest>,
        ) -> std::result::Result<Response<Self::FindStream>, Status> {
            Err(Status::unimplemented("no queries here"))
        }

        async fn count(
            &self,
            _: Request<pb::CountRequest>,
        ) -> std::result::Result<Response<pb::CountResponse>, Status> {
            Err(Status::unimplemented("no queries here"))
        }

        async fn aggregate(
            &self,
            _: Request<pb::AggregateRequest>,
        ) -> std::result::Result<Response<pb::AggregateResponse>, Status> {
            Err(Status::unimplemented("no queries here"))
        }

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
