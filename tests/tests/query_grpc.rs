//! Queries through the raw gRPC API, as a client in another language would call it: the
//! generated stubs only (no Rust client), conditions as path text, operator enum and JSON
//! operand bytes; pages streamed with their tokens; bad input refused with
//! INVALID_ARGUMENT and a message.

use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{
    AggregateFunc, AggregateRequest, ConditionOp, ConsistencyLevel, CountRequest, FindRequest,
    PutRequest, QueryAggregation, QueryCondition,
};
use ringdb_tests::Cluster;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

fn cond(path: &str, op: ConditionOp, operands: &[&str]) -> QueryCondition {
    QueryCondition {
        path: path.into(),
        op: op as i32,
        operands: operands
            .iter()
            .map(|o| o.as_bytes().to_vec().into())
            .collect(),
    }
}

/// Every page of a FIND: (keys per page, next token per page).
async fn pages(
    c: &mut ClientClient<Channel>,
    req: FindRequest,
) -> Result<(Vec<Vec<String>>, Vec<String>), tonic::Status> {
    let mut stream = c.find(req).await?.into_inner();
    let (mut keys, mut tokens) = (Vec::new(), Vec::new());
    while let Some(p) = stream.message().await? {
        keys.push(p.documents.iter().map(|d| d.key.clone()).collect());
        tokens.push(p.next_page_token);
    }
    Ok((keys, tokens))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_grpc_api_finds_counts_aggregates_and_refuses_bad_input() {
    let cluster = Cluster::start(3).await;
    let mut c = ClientClient::connect(format!("http://{}", cluster.nodes[0].address))
        .await
        .unwrap();
    for i in 0..6 {
        let doc = json!({"n": i, "tag": if i % 2 == 0 { "even" } else { "odd" }});
        c.put(PutRequest {
            collection: "raw".into(),
            key: format!("k{i}"),
            document: doc.to_string().into_bytes().into(),
            consistency: ConsistencyLevel::All as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let find = FindRequest {
        collection: "raw".into(),
        conditions: vec![cond("n", ConditionOp::Ge, &["2"])],
        allow_filtering: true,
        limit: Some(3),
        page_size: 2,
        consistency: ConsistencyLevel::Quorum as i32,
        ..Default::default()
    };
    let (keys, tokens) = pages(&mut c, find.clone()).await.unwrap();
    assert_eq!(keys, [vec!["k2", "k3"], vec!["k4"]]);
    assert!(!tokens[0].is_empty());
    assert!(!tokens[1].is_empty(), "the limit stopped it, more match");
    let (rest, last) = pages(
        &mut c,
        FindRequest {
            limit: None,
            page_token: tokens[1].clone(),
            ..find.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(rest, [vec!["k5"]]);
    assert_eq!(last, [""], "done");

    // A page's documents carry every sibling's JSON and the context.
    let mut stream = c
        .find(FindRequest {
            conditions: vec![cond("tag", ConditionOp::In, &["\"odd\"", "7"])],
            fields: vec!["n".into()],
            page_size: 0,
            ..find.clone()
        })
        .await
        .unwrap()
        .into_inner();
    let page = stream.message().await.unwrap().unwrap();
    let values: Vec<Value> = page
        .documents
        .iter()
        .map(|d| serde_json::from_slice(&d.values[0]).unwrap())
        .collect();
    assert_eq!(values, [json!({"n": 1}), json!({"n": 3}), json!({"n": 5})]);
    assert!(page.documents.iter().all(|d| !d.context.is_empty()));
    assert_eq!(page.coordinator, "n1");

    let count = c
        .count(CountRequest {
            collection: "raw".into(),
            conditions: vec![cond("n", ConditionOp::Exists, &[])],
            allow_filtering: true,
            consistency: ConsistencyLevel::One as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(count.count, 6);
    let agg = AggregateRequest {
        collection: "raw".into(),
        aggregations: vec![
            QueryAggregation {
                func: AggregateFunc::Count as i32,
                path: "*".into(),
            },
            QueryAggregation {
                func: AggregateFunc::Sum as i32,
                path: "n".into(),
            },
        ],
        group_by: "tag".into(),
        ..Default::default()
    };
    let groups = c.aggregate(agg.clone()).await.unwrap().into_inner().groups;
    let groups: Vec<(Value, Value)> = groups
        .iter()
        .map(|g| {
            (
                serde_json::from_slice(&g.group).unwrap(),
                serde_json::from_slice(&g.values).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (json!("even"), json!({"count(*)": 3, "sum(n)": 6})),
            (json!("odd"), json!({"count(*)": 3, "sum(n)": 9})),
        ]
    );

    // Bad input: INVALID_ARGUMENT with a message saying what is wrong.
    let other_query_token = tokens[0].clone();
    let bad: Vec<(FindRequest, &str)> = vec![
        (
            FindRequest {
                limit: Some(0),
                ..find.clone()
            },
            "limit",
        ),
        (
            FindRequest {
                conditions: vec![cond("n", ConditionOp::Eq, &["abc"])],
                ..find.clone()
            },
            "not JSON",
        ),
        (
            FindRequest {
                conditions: vec![cond("n", ConditionOp::Eq, &["[1]"])],
                ..find.clone()
            },
            "array",
        ),
        (
            FindRequest {
                conditions: vec![cond("a..b", ConditionOp::Eq, &["1"])],
                ..find.clone()
            },
            "path",
        ),
        (
            FindRequest {
                conditions: vec![cond("n", ConditionOp::Unspecified, &["1"])],
                ..find.clone()
            },
            "operator",
        ),
        (
            FindRequest {
                consistency: 42,
                ..find.clone()
            },
            "consistency level",
        ),
        (
            FindRequest {
                consistency: ConsistencyLevel::Any as i32,
                ..find.clone()
            },
            "ANY",
        ),
        (
            FindRequest {
                page_token: "%%%".into(),
                ..find.clone()
            },
            "invalid page token",
        ),
        (
            FindRequest {
                page_token: other_query_token,
                conditions: vec![cond("n", ConditionOp::Lt, &["2"])],
                ..find.clone()
            },
            "different query",
        ),
        (
            FindRequest {
                fields: vec!["x y".into()],
                ..find.clone()
            },
            "field",
        ),
        (
            FindRequest {
                allow_filtering: false,
                ..find.clone()
            },
            "ALLOW FILTERING",
        ),
        (
            FindRequest {
                collection: "no such/name".into(),
                ..find.clone()
            },
            "collection name",
        ),
    ];
    for (req, says) in bad {
        let e = pages(&mut c, req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(
            e.message().contains(says),
            "{says:?} not in {:?}",
            e.message()
        );
    }
    let e = c
        .aggregate(AggregateRequest {
            aggregations: vec![],
            ..agg
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("at least one aggregation"),
        "{}",
        e.message()
    );
}
