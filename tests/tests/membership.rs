//! Membership with real processes: discovery from one seed, failure detection with the
//! default settings, recovery after restart.

use std::time::{Duration, Instant};

use ringdb_tests::{wait_until, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_with_one_seed_each_converge_and_detect_a_dead_node_within_10_s() {
    // Default gossip pace (1 s) and phi threshold (8): the promise is about the defaults.
    let mut cluster = Cluster::start_with(5, &["--gossip-interval-ms", "1000"]).await;
    // Every node was given only n1 as its seed, yet all know all (wait_all_up checked the
    // rings too); and they agree on the ring.
    let rings = cluster.rings().await;
    assert!(
        rings.windows(2).all(|w| w[0] == w[1]),
        "all nodes derive the same ring"
    );

    cluster.node("n4").kill9();
    let killed_at = Instant::now();
    for observer in cluster.nodes.iter().filter(|n| n.is_running()) {
        let client = observer.client().await;
        let left = Duration::from_secs(10).saturating_sub(killed_at.elapsed());
        wait_until(left, &format!("{} to mark n4 down", observer.id), || {
            let c = client.clone();
            async move {
                c.status()
                    .await
                    .is_ok_and(|s| s.nodes.iter().any(|m| m.id == "n4" && !m.up))
            }
        })
        .await;
    }
    eprintln!(
        "n4 marked down by all four others {:?} after kill -9",
        killed_at.elapsed()
    );

    cluster.node("n4").restart().await;
    cluster.wait_all_up().await;
}
