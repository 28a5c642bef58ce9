//! Regression tests for defects a stranger found driving the raw gRPC API (issue 14): the
//! generated stubs only, and hand-made protobuf messages where the stubs cannot express the
//! bad input (invalid UTF-8 in a string field).

use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{
    ConditionOp, ConsistencyLevel, DeleteRequest, FindRequest, GetRequest, GetResponse, PutRequest,
    QueryCondition,
};
use ringdb_tests::Cluster;
use serde_json::{json, Value};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::Code;

const ALL: i32 = ConsistencyLevel::All as i32;

async fn put(
    c: &mut ClientClient<Channel>,
    collection: &str,
    key: &str,
    doc: &[u8],
    context: &str,
) -> Result<String, tonic::Status> {
    let r = c
        .put(PutRequest {
            collection: collection.into(),
            key: key.into(),
            document: doc.to_vec().into(),
            context: context.into(),
            consistency: ALL,
            ..Default::default()
        })
        .await?;
    Ok(r.into_inner().context)
}

async fn get(c: &mut ClientClient<Channel>, collection: &str, key: &str) -> (Vec<Value>, String) {
    let r = c
        .get(GetRequest {
            collection: collection.into(),
            key: key.into(),
            consistency: ALL,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let values = r
        .values
        .iter()
        .map(|v| serde_json::from_slice(v).expect("Get returns JSON"))
        .collect();
    (values, r.context)
}

async fn delete(
    c: &mut ClientClient<Channel>,
    collection: &str,
    key: &str,
    context: &str,
) -> Result<(), tonic::Status> {
    c.delete(DeleteRequest {
        collection: collection.into(),
        key: key.into(),
        context: context.into(),
        consistency: ALL,
        ..Default::default()
    })
    .await
    .map(drop)
}

fn refused(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, says: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(says),
        "message {:?} lacks {says:?}",
        e.message()
    );
}

/// A GetRequest whose string fields are raw bytes, as a client in another language can send.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGetRequest {
    #[prost(bytes = "vec", tag = "1")]
    collection: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
}

/// A bare gRPC channel to `address`, for messages the generated stubs cannot express.
async fn raw_grpc(address: &str) -> tonic::client::Grpc<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc
}

/// A Get sent with `RawGetRequest`'s bytes.
async fn raw_get(
    address: &str,
    collection: &[u8],
    key: &[u8],
) -> Result<GetResponse, tonic::Status> {
    let mut grpc = raw_grpc(address).await;
    let codec = tonic_prost::ProstCodec::<RawGetRequest, GetResponse>::default();
    let req = RawGetRequest {
        collection: collection.to_vec(),
        key: key.to_vec(),
    };
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static("/ringdb.v1.Client/Get"),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_from_the_wire_never_lose_another_clients_write() {
    let cluster = Cluster::start(3).await;
    let address = cluster.nodes[0].address.clone();
    let mut a = ClientClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let mut b = ClientClient::connect(format!("http://{}", cluster.nodes[1].address))
        .await
        .unwrap();

    // 1. The delete trap: A reads "not found", B writes, A deletes with what it read.
    let (values, nothing) = get(&mut a, "w", "trap").await;
    assert!(values.is_empty());
    assert!(
        !nothing.is_empty(),
        "a not-found read returns a context that covers nothing (empty would mean read first)"
    );
    put(&mut b, "w", "trap", br#"{"by":"b"}"#, "")
        .await
        .unwrap();
    delete(&mut a, "w", "trap", &nothing).await.unwrap();
    let (values, seen) = get(&mut a, "w", "trap").await;
    assert_eq!(
        values,
        [json!({"by": "b"})],
        "B's acknowledged write survives"
    );
    // With the context of a read that saw B's write, the delete does delete it.
    delete(&mut a, "w", "trap", &seen).await.unwrap();
    assert!(get(&mut a, "w", "trap").await.0.is_empty());
    // A Put with a not-found context supersedes nothing: concurrent writes become siblings.
    let (_, nothing) = get(&mut a, "w", "fresh").await;
    put(&mut b, "w", "fresh", br#"{"by":"b"}"#, "")
        .await
        .unwrap();
    put(&mut a, "w", "fresh", br#"{"by":"a"}"#, &nothing)
        .await
        .unwrap();
    let (mut values, _) = get(&mut a, "w", "fresh").await;
    values.sort_by_key(|v| v.to_string());
    assert_eq!(values, [json!({"by": "a"}), json!({"by": "b"})]);

    // 2. A context is bound to its key and collection.
    let x = put(&mut a, "w", "x", br#"{"k":"x"}"#, "").await.unwrap();
    put(&mut a, "w", "y", br#"{"k":"y"}"#, "").await.unwrap();
    refused(
        put(&mut a, "w", "y", br#"{"k":"y2"}"#, &x).await,
        Code::InvalidArgument,
        "another key",
    );
    refused(
        delete(&mut a, "w", "y", &x).await,
        Code::InvalidArgument,
        "another key",
    );
    refused(
        put(&mut a, "w2", "x", br#"{"k":"x"}"#, &x).await,
        Code::InvalidArgument,
        "another key",
    );
    let (read_x, ctx_x) = get(&mut a, "w", "x").await;
    assert_eq!(read_x, [json!({"k": "x"})]);
    refused(
        delete(&mut a, "w", "y", &ctx_x).await,
        Code::InvalidArgument,
        "another key",
    );
    // A context a FIND returned is bound to that document too.
    let mut found = a
        .find(FindRequest {
            collection: "w".into(),
            conditions: vec![QueryCondition {
                path: "k".into(),
                op: ConditionOp::Eq as i32,
                operands: vec![br#""x""#.to_vec().into()],
            }],
            allow_filtering: true,
            consistency: ALL,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let page = found.message().await.unwrap().unwrap();
    assert_eq!(page.documents.len(), 1);
    let from_find = page.documents[0].context.clone();
    refused(
        delete(&mut a, "w", "y", &from_find).await,
        Code::InvalidArgument,
        "another key",
    );
    put(&mut a, "w", "x", br#"{"k":"x2"}"#, &from_find)
        .await
        .unwrap();
    assert_eq!(get(&mut a, "w", "x").await.0, [json!({"k": "x2"})]);
    assert_eq!(
        get(&mut a, "w", "y").await.0,
        [json!({"k": "y"})],
        "y untouched"
    );
    refused(
        put(&mut a, "w", "y", b"{}", "not-a-token").await,
        Code::InvalidArgument,
        "context",
    );

    // 3. Invalid UTF-8 inside a JSON string is refused, not stored.
    refused(
        put(&mut a, "w", "bad", b"{\"a\":\"\xff\xfe\"}", "").await,
        Code::InvalidArgument,
        "UTF-8",
    );
    assert!(get(&mut a, "w", "bad").await.0.is_empty());
    put(
        &mut a,
        "w",
        "good",
        "{\"a\":\"\u{e9}\u{1F600}\"}".as_bytes(),
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        get(&mut a, "w", "good").await.0,
        [json!({"a": "\u{e9}\u{1F600}"})]
    );

    // 4. Invalid UTF-8 in a key or collection name: INVALID_ARGUMENT, not INTERNAL.
    refused(
        raw_get(&address, b"w", b"k\xff").await,
        Code::InvalidArgument,
        "UTF-8",
    );
    refused(
        raw_get(&address, b"w\xc3", b"k").await,
        Code::InvalidArgument,
        "UTF-8",
    );
    assert!(raw_get(&address, b"w", b"good").await.unwrap().values.len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_get_invalid_argument_with_the_limit() {
    let cluster = Cluster::start_with(
        1,
        &["--replication-factor", "1", "--max-document-bytes", "1000"],
    )
    .await;
    let mut c = ClientClient::connect(format!("http://{}", cluster.nodes[0].address))
        .await
        .unwrap();
    let doc = |n: usize| format!("{{\"a\":\"{}\"}}", "x".repeat(n)).into_bytes();
    put(&mut c, "big", "fits", &doc(900), "").await.unwrap();
    // Over the document limit but inside one message.
    refused(
        put(&mut c, "big", "doc", &doc(5000), "").await,
        Code::InvalidArgument,
        "limit is 1000",
    );
    // Over the message limit (document limit + 1 MiB): refused by the transport before the
    // service runs, still with the documented code and the limits.
    let e = put(&mut c, "big", "msg", &doc(3 << 20), "")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("bytes per message") && e.message().contains("1000"),
        "{e:?}"
    );
    // Keys: 1 to 1024 bytes.
    refused(
        put(&mut c, "big", &"k".repeat(1025), b"{}", "").await,
        Code::InvalidArgument,
        "1024",
    );
    refused(
        put(&mut c, "big", "", b"{}", "").await,
        Code::InvalidArgument,
        "empty",
    );
    // Nothing refused was stored; the node still serves.
    assert_eq!(get(&mut c, "big", "fits").await.0.len(), 1);
    assert!(get(&mut c, "big", "msg").await.0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_is_served_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let cluster = Cluster::start_with(1, &["--replication-factor", "1"]).await;
    let url = format!("http://{}", cluster.nodes[0].address);

    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha answered {answer:?}");
    };
    let alpha_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    let mut stable = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = stable
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1 answered {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "ringdb.v1.Client",
        "ringdb.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(
            alpha_names.iter().any(|n| n == service),
            "v1alpha lacks {service}: {alpha_names:?}"
        );
        assert!(
            names.iter().any(|n| n == service),
            "v1 lacks {service}: {names:?}"
        );
    }
}

/// A Put at `level` with no context.
async fn put_at(
    c: &mut ClientClient<Channel>,
    key: &str,
    level: ConsistencyLevel,
) -> Result<(), tonic::Status> {
    c.put(PutRequest {
        collection: "k9".into(),
        key: key.into(),
        document: b"{\"a\":1}".to_vec().into(),
        consistency: level as i32,
        ..Default::default()
    })
    .await
    .map(drop)
}

/// Defect 5: a replica killed with `kill -9` refuses connections, and that alone marks it
/// down: the failure detector is made too patient to convict anyone during the test, so
/// only the refused connection can make ALL fail with `UNAVAILABLE` before anything is
/// written, while QUORUM goes on; a restarted replica counts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_refused_at_once_and_nothing_is_written() {
    let mut cluster = Cluster::start_with(3, &["--phi-threshold", "1000000"]).await;
    let address = cluster.nodes[0].address.clone();
    let mut c = ClientClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    // The coordinator's pipelines to both replicas are open before the kill.
    put_at(&mut c, "before", ConsistencyLevel::All)
        .await
        .unwrap();
    cluster.node("n3").kill9();

    // Right after the kill: refused before anything is written, or (if the coordinator
    // had not yet heard the connection break) failed mid-request with a message that says
    // so, never a claimed timeout that did not happen.
    match put_at(&mut c, "right-after", ConsistencyLevel::All).await {
        Ok(()) => panic!("ALL met with a replica killed"),
        Err(e) if e.code() == Code::Unavailable => {
            eprintln!("right after the kill: {e:?}");
            assert!(e.message().contains("nothing was written"), "{e:?}")
        }
        Err(e) => {
            eprintln!("right after the kill: {e:?}");
            assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
            assert!(e.message().contains("failed after"), "{e:?}");
            assert!(e.message().contains("n3: connection"), "{e:?}");
        }
    }

    // From now on n1 knows: its status says n3 is down although phi cannot say so.
    let client = cluster.nodes[0].client().await;
    ringdb_tests::wait_until(
        std::time::Duration::from_secs(30),
        "n1 to report n3 down",
        || {
            let client = client.clone();
            async move {
                client
                    .status()
                    .await
                    .is_ok_and(|s| s.nodes.iter().any(|m| m.id == "n3" && !m.up))
            }
        },
    )
    .await;
    let e = put_at(&mut c, "refused", ConsistencyLevel::All)
        .await
        .expect_err("ALL with n3 killed");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let m = e.message();
    assert!(m.contains("(n3 down; n3: connection"), "{m}");
    assert!(m.contains("ago"), "says when: {m}");
    assert!(m.contains("nothing was written"), "{m}");
    for live in &cluster.nodes[..2] {
        assert_eq!(
            live.local_versions("k9", "refused").await,
            Vec::<Option<Vec<u8>>>::new(),
            "{} stored a write that was refused",
            live.id
        );
    }
    put_at(&mut c, "quorum", ConsistencyLevel::Quorum)
        .await
        .expect("QUORUM with one replica killed");

    cluster.node("n3").restart().await;
    let mut attempts = 0;
    ringdb_tests::wait_until(
        std::time::Duration::from_secs(60),
        "ALL to succeed again once n3 is back",
        || {
            attempts += 1;
            let mut c = c.clone();
            let key = format!("back-{attempts}");
            async move { put_at(&mut c, &key, ConsistencyLevel::All).await.is_ok() }
        },
    )
    .await;
}

/// A `ClientRequests` whose requests are raw bytes, so one of them can be damaged.
#[derive(Clone, PartialEq, prost::Message)]
struct RawClientRequests {
    #[prost(bytes = "vec", repeated, tag = "1")]
    requests: Vec<Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_pipeline_message_ends_the_stream_with_invalid_argument_after_earlier_answers() {
    use prost::Message;
    use ringdb_proto::v1::{client_request, client_response, ClientRequest, ClientResponses};
    let cluster = Cluster::start(1).await;
    let mut grpc = raw_grpc(&cluster.nodes[0].address).await;
    let put = ClientRequest {
        id: 7,
        op: Some(client_request::Op::Put(PutRequest {
            collection: "pipe".into(),
            key: "k".into(),
            document: b"{\"a\":1}".to_vec().into(),
            consistency: ConsistencyLevel::One as i32,
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<RawClientRequests>(4);
    tx.send(RawClientRequests {
        requests: vec![put.encode_to_vec()],
    })
    .await
    .unwrap();
    let codec = tonic_prost::ProstCodec::<RawClientRequests, ClientResponses>::default();
    let mut answers = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            PathAndQuery::from_static("/ringdb.v1.Client/Pipeline"),
            codec,
        )
        .await
        .expect("pipeline opens")
        .into_inner();
    let first = answers.message().await.expect("answer").expect("a message");
    assert_eq!(first.responses.len(), 1);
    assert_eq!(first.responses[0].id, 7);
    assert!(
        matches!(
            first.responses[0].result,
            Some(client_response::Result::Put(_))
        ),
        "{first:?}"
    );
    // A request whose bytes are not a ClientRequest (a length prefix pointing past its end).
    tx.send(RawClientRequests {
        requests: vec![vec![0x12, 0x7f, 0x01]],
    })
    .await
    .unwrap();
    let end = answers
        .message()
        .await
        .expect_err("the stream ends with a status");
    assert_eq!(end.code(), Code::InvalidArgument, "{end:?}");
    assert!(
        end.message().contains("not a valid protobuf message"),
        "{end:?}"
    );
    drop(tx);
}
