//! Overload protection against real processes: past `--max-client-requests` a node refuses
//! requests at once with `RESOURCE_EXHAUSTED` instead of queueing them until they time out,
//! and it serves normally again as soon as the load drops.

use ringdb_client::{Client, Error, RetryPolicy, Routing};
use ringdb_tests::Cluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_past_its_request_limit_refuses_at_once_and_recovers() {
    let cluster = Cluster::start_with(
        1,
        &["--max-client-requests", "2", "--replication-factor", "1"],
    )
    .await;
    let client = Client::builder([cluster.nodes[0].address.as_str()])
        .routing(Routing::RoundRobin)
        .retry(RetryPolicy::none())
        .connect()
        .await
        .unwrap();
    // 200 durable writes at once on the pipeline: at most two run at a time, so most are
    // refused; none waits for a timeout and none is answered with anything else.
    let writes = (0..200).map(|i| {
        let c = client.clone();
        async move { c.put("load", &format!("k{i}"), &json!({"i": i})).await }
    });
    let (mut ok, mut refused) = (Vec::new(), 0);
    for (i, r) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        match r {
            Ok(_) => ok.push(i),
            Err(Error::Overloaded(m)) => {
                assert!(m.contains("overloaded") && m.contains("n1"), "{m}");
                refused += 1;
            }
            Err(e) => panic!("write {i}: expected success or RESOURCE_EXHAUSTED, got {e}"),
        }
    }
    assert!(
        refused > 0,
        "nothing was refused with 200 writes against a limit of 2"
    );
    assert!(!ok.is_empty(), "every write was refused");
    // What was acknowledged is there; what was refused was not written.
    for i in 0..200 {
        let r = client.get("load", &format!("k{i}")).await.unwrap();
        if ok.contains(&i) {
            assert_eq!(r.values, vec![json!({"i": i})], "k{i}");
        } else {
            assert!(
                r.values.is_empty(),
                "k{i} was refused but is there: {:?}",
                r.values
            );
        }
    }
}
