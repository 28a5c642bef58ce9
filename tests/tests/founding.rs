//! Founding a cluster with real processes (issue 14, defect 6): nodes started at once and
//! seeding each other form one cluster, founded by the lowest id, with nothing to stream;
//! a node tells through gRPC health and `Admin.Status` whether it takes client requests,
//! and refuses them with `UNAVAILABLE` until it does.

use std::time::{Duration, Instant};

use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{ConsistencyLevel, GetRequest, PutRequest, StatusRequest};
use ringdb_tests::{free_port, wait_until, Access, Cluster, NodeProc};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn health(address: &str, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut h = HealthClient::new(channel);
    let r = h
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(r.into_inner().status).ok()
}

async fn put_all(address: &str, key: &str) -> Result<(), tonic::Status> {
    put_at(address, key, ConsistencyLevel::All).await
}

async fn put_at(address: &str, key: &str, level: ConsistencyLevel) -> Result<(), tonic::Status> {
    let mut c = ClientClient::connect(format!("http://{address}"))
        .await
        .expect("client connection");
    c.put(PutRequest {
        collection: "formed".into(),
        key: key.into(),
        document: format!("{{\"k\":\"{key}\"}}").into_bytes().into(),
        consistency: level as i32,
        ..Default::default()
    })
    .await
    .map(|_| ())
}

fn log(node: &NodeProc) -> String {
    std::fs::read_to_string(&node.log).unwrap_or_default()
}

/// Each node's share of the token space (the ranges it is first replica of).
fn shares(tokens: &[(i64, String)]) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (i, (t, owner)) in tokens.iter().enumerate() {
        let prev = tokens[(i + tokens.len() - 1) % tokens.len()].0;
        let span = (*t as i128 - prev as i128).rem_euclid(1i128 << 64) as f64;
        *out.entry(owner.clone()).or_insert(0.0) += span / 2f64.powi(64);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_started_at_once_form_one_cluster_founded_by_the_lowest_id() {
    // The default gossip pace, as a deploy would run it.
    let started = Instant::now();
    let cluster = Cluster::start_together(3, &["--gossip-interval-ms", "1000"]).await;
    eprintln!(
        "three nodes started at once serve after {:?}",
        started.elapsed()
    );
    // Every node's health says so too (within one report interval).
    for node in &cluster.nodes {
        for service in ["", "ringdb.v1.Client"] {
            let what = format!("{} health of {service:?} to be SERVING", node.id);
            wait_until(Duration::from_secs(10), &what, || async {
                health(&node.address, service).await == Some(ServingStatus::Serving)
            })
            .await;
        }
    }
    let logs: Vec<String> = cluster.nodes.iter().map(log).collect();
    assert!(
        logs[0].contains("founded the cluster"),
        "n1, the lowest id, founds:\n{}",
        logs[0]
    );
    for (node, log) in cluster.nodes.iter().zip(&logs).skip(1) {
        assert!(
            !log.contains("founded the cluster"),
            "{} does not found a cluster of its own:\n{log}",
            node.id
        );
        assert!(
            log.contains("joined the forming cluster"),
            "{} joins without streaming:\n{log}",
            node.id
        );
        assert!(
            !log.contains("joining: streaming"),
            "{} had nothing to stream:\n{log}",
            node.id
        );
    }
    // One ring, every node in it with a fair share (the shares are taken one at a time).
    let rings = cluster.rings().await;
    assert!(rings.windows(2).all(|w| w[0] == w[1]), "one ring");
    let shares = shares(&rings[0]);
    assert_eq!(shares.len(), 3, "{shares:?}");
    for (id, share) in &shares {
        assert!(
            (0.2..0.47).contains(share),
            "{id} owns {share:.3} of the token space: {shares:?}"
        );
    }
    // ALL works through every node at once, and what one wrote the others read.
    for (i, node) in cluster.nodes.iter().enumerate() {
        put_all(&node.address, &format!("k{i}"))
            .await
            .unwrap_or_else(|e| panic!("ALL write through {}: {e:?}", node.id));
    }
    let mut c = ClientClient::connect(format!("http://{}", cluster.nodes[2].address))
        .await
        .unwrap();
    let r = c
        .get(GetRequest {
            collection: "formed".into(),
            key: "k0".into(),
            consistency: ConsistencyLevel::All as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.values.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_seeds_never_answer_refuses_clients_until_it_founds_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: every gossip to it is refused.
    let silent = format!("127.0.0.1:{}", free_port());
    let launched = Instant::now();
    let mut node = NodeProc::launch("n1", dir.path(), vec![silent], &[], Access::default());
    let address = node.address.clone();
    // The first answer of its admin service: a node serves gossip and admin calls before
    // it has tokens.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Ok(mut a) = AdminClient::connect(format!("http://{address}")).await {
            if let Ok(s) = a.status(StatusRequest {}).await {
                break Some((launched.elapsed(), s.into_inner()));
            }
        }
        assert!(Instant::now() < deadline, "n1 never answered Status");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (at, status) = first.expect("answered");
    // It waits 10 s for any seed before it founds alone; answered well before that, it
    // must say it does not serve yet, and refuse clients saying why.
    if at < Duration::from_secs(7) {
        assert!(!status.serving, "no tokens yet: {status:?}");
        assert!(
            status.not_serving_reason.contains("no tokens yet"),
            "{status:?}"
        );
        assert_eq!(
            health(&address, "ringdb.v1.Client").await,
            Some(ServingStatus::NotServing)
        );
        let e = put_at(&address, "early", ConsistencyLevel::One)
            .await
            .expect_err("not serving yet");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("n1 is starting"), "{e:?}");
    } else {
        eprintln!("n1 answered only after {at:?}: too late to see it starting");
    }
    node.wait_serving().await;
    eprintln!("n1 founded alone after {:?}", launched.elapsed());
    // Health follows within one report interval.
    wait_until(Duration::from_secs(10), "n1's health to be SERVING", || {
        let address = address.clone();
        async move { health(&address, "ringdb.v1.Client").await == Some(ServingStatus::Serving) }
    })
    .await;
    // Alone with replication factor 3: ONE is what it can do.
    put_at(&address, "alone", ConsistencyLevel::One)
        .await
        .expect("serving");
    assert!(log(&node).contains("no seed answered"), "{}", log(&node));
    node.stop();
}
