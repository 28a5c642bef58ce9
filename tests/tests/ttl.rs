//! TTL: an expired document reads as not found at every level at once, and every replica's
//! storage turns it into a tombstone (the document bytes are gone).

use std::time::{Duration, Instant};

use ringdb_client::{Consistency, ReadOptions, WriteOptions};
use ringdb_node::coordinator::Level;
use ringdb_node::version::CausalContext;
use ringdb_tests::sim::SimCluster;
use ringdb_tests::Cluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_documents_vanish_from_reads_at_once_and_from_every_replica_soon_after() {
    let c = SimCluster::start_with(3, 3, |cfg| {
        cfg.aae.interval = Duration::ZERO;
        cfg.aae.tombstone_grace = Duration::from_millis(100);
    })
    .await;
    let expires = ringdb_node::cluster::now_ms() + 1_500;
    c.node("n1")
        .put_expiring(
            "t",
            r#"{"v":1}"#,
            CausalContext::new(),
            Level::All,
            Some(expires),
        )
        .await
        .unwrap();
    c.node("n1")
        .put("keep", r#"{"v":2}"#, CausalContext::new(), Level::All)
        .await
        .unwrap();
    for n in ["n1", "n2", "n3"] {
        assert_eq!(
            c.node(n)
                .get("t", Level::One)
                .await
                .unwrap()
                .live_values()
                .count(),
            1
        );
    }
    while ringdb_node::cluster::now_ms() < expires {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in ["n1", "n2", "n3"] {
        for level in [Level::One, Level::Quorum, Level::All] {
            let read = c.node(n).get("t", level).await.unwrap();
            assert_eq!(
                read.live_values().count(),
                0,
                "{n} at {level} still sees it"
            );
        }
        assert_eq!(c.node(n).local("t").await.live_values().count(), 0);
    }
    // The background sweep (every second) rewrites each replica's stored copy.
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in ["n1", "n2", "n3"] {
        let storage = c.node(n).coordinator.storage().clone();
        loop {
            let stored = storage.read("sim", "t").await.unwrap();
            if stored.versions().iter().all(|v| v.value.is_none()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{n} still stores the expired document"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kept = storage.read("sim", "keep").await.unwrap();
        assert_eq!(
            kept.live_values().count(),
            1,
            "a document without TTL stays on {n}"
        );
    }
    // Every replica now holds the same tombstone: anti-entropy purges it everywhere.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut purged = 0;
    for n in ["n1", "n2", "n3"] {
        purged += c.node(n).anti_entropy.pass(None).await.tombstones_purged;
    }
    assert_eq!(purged, 1);
    for n in ["n1", "n2", "n3"] {
        let storage = c.node(n).coordinator.storage();
        assert!(
            storage.read("sim", "t").await.unwrap().is_empty(),
            "{n} still stores t"
        );
        assert_eq!(
            storage
                .read("sim", "keep")
                .await
                .unwrap()
                .live_values()
                .count(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_document_and_collection_ttl_through_the_client() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let created = client
        .create_collection_with_ttl("sessions", 0, Some(Duration::from_secs(2)), false)
        .await
        .unwrap();
    assert_eq!(created.default_ttl, Some(Duration::from_secs(2)));
    let all = ReadOptions::new().consistency(Consistency::All);
    let one = ReadOptions::new().consistency(Consistency::One);
    let written = Instant::now();
    client
        .put("sessions", "s1", &json!({"user": "a"}))
        .await
        .unwrap();
    client
        .put_with(
            "docs",
            "d1",
            &json!({"x": 1}),
            &WriteOptions::new().ttl(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    client.put("docs", "d2", &json!({"x": 2})).await.unwrap();
    assert_eq!(
        client
            .get_with("sessions", "s1", &all)
            .await
            .unwrap()
            .values
            .len(),
        1
    );
    assert_eq!(
        client
            .get_with("docs", "d1", &all)
            .await
            .unwrap()
            .values
            .len(),
        1
    );
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(written.elapsed()) + Duration::from_millis(300),
    )
    .await;
    for opts in [&one, &all] {
        assert!(client
            .get_with("sessions", "s1", opts)
            .await
            .unwrap()
            .values
            .is_empty());
        assert!(client
            .get_with("docs", "d1", opts)
            .await
            .unwrap()
            .values
            .is_empty());
        assert_eq!(
            client
                .get_with("docs", "d2", opts)
                .await
                .unwrap()
                .values
                .len(),
            1
        );
    }
    for n in &cluster.nodes {
        let c = n.client().await;
        assert!(
            c.local_get("docs", "d1").await.unwrap().values.is_empty(),
            "{}",
            n.id
        );
    }
    // A write after expiry starts afresh; it is not hidden by the old TTL.
    client.put("docs", "d1", &json!({"x": 3})).await.unwrap();
    assert_eq!(
        client.get_with("docs", "d1", &all).await.unwrap().values,
        vec![json!({"x": 3})]
    );
}
