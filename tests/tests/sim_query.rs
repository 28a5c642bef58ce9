//! Queries on an in-process cluster whose network refuses or swallows query messages to one
//! node: the coordinator asks another replica of the same ranges instead, fails with
//! UNAVAILABLE when none is left, and with a timeout when a replica never answers.

use std::time::Duration;

use ringdb_node::coordinator::Level;
use ringdb_node::error::Error;
use ringdb_node::query::aggregate::AggregateQuery;
use ringdb_node::query::find::FindQuery;
use ringdb_node::transport::MessageKind;
use ringdb_node::version::CausalContext;
use ringdb_query::{AggregateSpec, Filter};
use ringdb_tests::sim::{Action, Filter as NetFilter, SimCluster};

fn find(level: Level, timeout: Duration) -> FindQuery {
    FindQuery {
        collection: "sim".into(),
        filter: Filter::default(),
        fields: Vec::new(),
        allow_filtering: false,
        level,
        timeout,
        page_size: 1000,
        trace: true,
    }
}

fn count(level: Level) -> AggregateQuery {
    AggregateQuery {
        statement: "COUNT",
        collection: "sim".into(),
        filter: Filter::default(),
        spec: AggregateSpec::count_all(),
        allow_filtering: false,
        level,
        timeout: Duration::from_secs(5),
        trace: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refusing_queries_is_stood_in_for_until_none_is_left() {
    // Four nodes, N = 3: some ranges' first replica other than n1 is n2.
    let c = SimCluster::start(4, 3).await;
    let n1 = c.node("n1");
    for i in 0..60 {
        n1.put(
            &format!("k{i:02}"),
            r#"{"v":1}"#,
            CausalContext::new(),
            Level::All,
        )
        .await
        .unwrap();
    }
    let everything: Vec<String> = (0..60).map(|i| format!("k{i:02}")).collect();
    c.net.add_filter(
        NetFilter::new(Action::Refuse)
            .to("n2")
            .only(&[MessageKind::QueryScan, MessageKind::QueryAggregate]),
    );

    // ONE from n4 asks n2 for the ranges n2 leads among those n4 does not hold.
    let n4 = c.node("n4");
    let page = n4
        .queries
        .find(&find(Level::One, Duration::from_secs(5)), None)
        .await
        .unwrap();
    let keys: Vec<&str> = page.documents.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys, everything,
        "every document, from stand-ins where n2 refused"
    );
    let trace = page.trace.unwrap();
    let failed: Vec<_> = trace.scans.iter().filter(|s| s.node == "n2").collect();
    assert!(!failed.is_empty(), "n2 was asked: {trace:?}");
    assert!(
        trace.scans.iter().any(|s| s.detail == "stood in for n2"),
        "{trace:?}"
    );

    let counted = n4.queries.aggregate(&count(Level::One)).await.unwrap();
    assert_eq!(counted.partial.finish_count().unwrap()["count"], 60);

    // ALL needs every replica of every range: nobody can stand in for n2.
    match n4
        .queries
        .find(&find(Level::All, Duration::from_secs(5)), None)
        .await
    {
        Err(Error::Unavailable(m)) => assert!(m.contains("n2 failed"), "{m}"),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_answers_times_the_query_out() {
    let c = SimCluster::start(3, 3).await;
    c.node("n1")
        .put("k", r#"{"v":1}"#, CausalContext::new(), Level::All)
        .await
        .unwrap();
    c.net.add_filter(
        NetFilter::new(Action::Blackhole)
            .to("n2")
            .only(&[MessageKind::QueryScan]),
    );
    c.net.add_filter(
        NetFilter::new(Action::Blackhole)
            .to("n3")
            .only(&[MessageKind::QueryScan]),
    );
    let started = std::time::Instant::now();
    match c
        .node("n1")
        .queries
        .find(&find(Level::Quorum, Duration::from_millis(300)), None)
        .await
    {
        Err(Error::Timeout(m)) => assert!(m.contains("300 ms") || m.contains("no answer"), "{m}"),
        other => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // ONE reads only n1's own copy: no message, no wait.
    let page = c
        .node("n1")
        .queries
        .find(&find(Level::One, Duration::from_millis(300)), None)
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 1);
}
