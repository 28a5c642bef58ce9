//! Cluster behaviour under network faults, in-process over the simulated network.

use std::time::{Duration, Instant};

use ringdb_node::coordinator::Level;
use ringdb_node::error::Error;
use ringdb_node::ring::token_for;
use ringdb_node::version::CausalContext;
use ringdb_tests::sim::{Link, SimCluster};

fn none() -> CausalContext {
    CausalContext::new()
}

/// Waits for an eventual condition. The bound is generous on purpose: under 30% loss
/// the failure detector first has to see n3 up again and every refused replay waits a
/// round, and CI runs test binaries side by side on two cores. It guards against
/// "never", not against "slow" (speed is measured by benchmarks).
async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_gets_the_writes_it_missed_from_hints_after_the_heal() {
    let c = SimCluster::start(3, 3).await;
    c.net.isolate("n3", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n3" && t != "n3"))
        .await;
    for i in 0..20 {
        c.node("n1")
            .put(&format!("h{i}"), r#"{"v":1}"#, none(), Level::Quorum)
            .await
            .unwrap();
    }
    wait_for("hints for n3", async || {
        c.node("n1").coordinator.hints().pending_for("n3") == 20
    })
    .await;
    // Replay waits while n3 is unreachable, even with messages still being tried.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.node("n1").coordinator.hints().pending_for("n3"), 20);

    c.net.heal();
    wait_for("hints delivered", async || {
        c.node("n1").coordinator.hints().pending() == 0
    })
    .await;
    for i in 0..20 {
        assert_eq!(
            c.node("n3")
                .local(&format!("h{i}"))
                .await
                .live_values()
                .count(),
            1,
            "h{i} on n3 without any read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hints_a_missed_write_is_recorded_for_repair_and_fixed_by_a_read() {
    let c = SimCluster::start_with(3, 3, |cfg| cfg.hints.max_per_target = 0).await;
    c.net.isolate("n3", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n3" && t != "n3"))
        .await;

    c.node("n1")
        .put("k", r#"{"v":1}"#, none(), Level::Quorum)
        .await
        .expect("QUORUM with two of three");
    assert!(matches!(
        c.node("n1").put("k2", "{}", none(), Level::All).await,
        Err(Error::Unavailable(_))
    ));
    assert!(
        matches!(
            c.node("n3").put("k3", "{}", none(), Level::Quorum).await,
            Err(Error::Unavailable(_))
        ),
        "the minority side refuses"
    );
    assert!(
        c.node("n3").local("k3").await.is_empty(),
        "and writes nothing"
    );

    wait_for("k recorded as needing repair on n3", async || {
        c.node("n1")
            .coordinator
            .hints()
            .needs_repair("n3")
            .await
            .unwrap()
            == vec![("sim".to_string(), "k".to_string())]
    })
    .await;
    c.net.heal();
    c.wait_views(|_, _| true).await;
    assert!(c.node("n3").local("k").await.is_empty());
    let read = c.node("n1").get("k", Level::All).await.unwrap();
    assert_eq!(read.live_values().count(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.node("n3").local("k").await != read {
        assert!(Instant::now() < deadline, "n3 was not repaired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_replica_times_out_all_while_quorum_succeeds() {
    let c = SimCluster::start(3, 3).await;
    c.net.set("n1", "n3", Link::Blackhole);
    let (all, quorum) = tokio::join!(
        c.node("n1").put("a", "{}", none(), Level::All),
        c.node("n1").put("q", "{}", none(), Level::Quorum),
    );
    match all {
        Err(Error::Timeout(m)) => assert!(
            m.contains("2 of 3 replicas acknowledged") && m.contains("n3"),
            "{m}"
        ),
        other => panic!("expected a timeout, got {other:?}"),
    }
    quorum.expect("QUORUM does not wait for the silent replica");
    // The timed-out write was still stored where it could be: it is not rolled back.
    assert_eq!(c.node("n2").local("a").await.live_values().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_is_not_a_replica_forwards_the_write_to_one() {
    let c = SimCluster::start(3, 2).await;
    let n1 = c.node("n1");
    for i in 0..40 {
        let key = format!("f{i}");
        n1.put(&key, &format!(r#"{{"i":{i}}}"#), none(), Level::Quorum)
            .await
            .unwrap();
        let replicas: Vec<String> = n1
            .membership
            .ring()
            .preference_list(token_for("sim", &key), 2)
            .into_iter()
            .map(String::from)
            .collect();
        for r in &replicas {
            let local = c.node(r).local(&key).await;
            assert_eq!(local.live_values().count(), 1, "{key} on replica {r}");
            let minter = &local.versions()[0].dot.actor;
            assert!(
                replicas
                    .iter()
                    .any(|r| minter.starts_with(&format!("{r}."))),
                "{key} minted by {minter}, not a replica {replicas:?}"
            );
        }
        for n in c.nodes.iter().filter(|n| !replicas.contains(&n.id)) {
            assert!(
                n.local(&key).await.is_empty(),
                "{key} stored on non-replica {}",
                n.id
            );
        }
    }
    let forwarded = n1
        .coordinator
        .stats()
        .forwarded_writes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(forwarded > 0, "with N=2 of 3 nodes some keys are not n1's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_every_coordinator_are_all_kept() {
    let c = SimCluster::start(3, 3).await;
    let (a, b, d) = tokio::join!(
        c.node("n1").put("x", r#"{"by":1}"#, none(), Level::Quorum),
        c.node("n2").put("x", r#"{"by":2}"#, none(), Level::Quorum),
        c.node("n3").put("x", r#"{"by":3}"#, none(), Level::Quorum),
    );
    a.unwrap();
    b.unwrap();
    d.unwrap();
    let read = c.node("n2").get("x", Level::All).await.unwrap();
    assert_eq!(
        read.live_values().count(),
        3,
        "three concurrent writers, three siblings"
    );
    c.node("n3")
        .put("x", r#"{"by":"merge"}"#, read.context().clone(), Level::All)
        .await
        .unwrap();
    for n in &c.nodes {
        let local = n.local("x").await;
        assert_eq!(
            local.live_values().collect::<Vec<_>>(),
            vec![&bytes::Bytes::from_static(br#"{"by":"merge"}"#)],
            "on {}",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_does_not_hold_up_a_quorum_read() {
    let c = SimCluster::start(3, 3).await;
    let n1 = c.node("n1");
    // A key whose first replica after n1 itself is n2, so n2 is asked first.
    let key = (0..)
        .map(|i| format!("s{i}"))
        .find(|k| {
            let ring = n1.membership.ring();
            let list = ring.preference_list(token_for("sim", k), 3);
            list.iter()
                .filter(|n| **n != "n1")
                .copied()
                .collect::<Vec<_>>()
                == ["n2", "n3"]
        })
        .unwrap();
    n1.put(&key, "{}", none(), Level::All).await.unwrap();
    c.net.set("n1", "n2", Link::Slow(Duration::from_secs(5)));
    let started = Instant::now();
    let read = n1
        .get(&key, Level::Quorum)
        .await
        .expect("answered by n1 and n3 after speculative retry");
    assert_eq!(read.live_values().count(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_converges_despite_losing_a_third_of_all_messages() {
    let c = SimCluster::start(6, 3).await;
    c.net.set_all(&c.ids(), Link::Lossy(0.33));
    // A node that dies is noticed by everyone even though gossip about it is lossy...
    c.net.isolate("n6", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n6" && t != "n6"))
        .await;
    // ...and when it comes back, everyone sees it again.
    c.net.set_all(&c.ids(), Link::Lossy(0.33));
    c.wait_views(|_, _| true).await;
    // With heartbeats still flowing at this loss rate, live nodes stay up. Phi accrual is
    // probabilistic and these in-process nodes share two cores with other test binaries,
    // so a scheduling stall can cause a brief suspicion; what must not happen is a live
    // node staying suspected.
    let mut wrong = 0;
    for _ in 0..40 {
        if !c.views_are(|_, _| true) {
            wrong += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        wrong <= 10,
        "live nodes were suspected in {wrong} of 40 samples under message loss"
    );
    c.wait_views(|_, _| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_are_replayed_over_a_lossy_network() {
    let c = SimCluster::start(3, 3).await;
    c.net.isolate("n3", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n3" && t != "n3"))
        .await;
    for i in 0..30 {
        c.node("n1")
            .put(&format!("l{i}"), "{}", none(), Level::Quorum)
            .await
            .unwrap();
    }
    c.net.set_all(&c.ids(), Link::Lossy(0.3));
    wait_for("hints delivered through loss", async || {
        c.node("n1").coordinator.hints().pending() == 0
    })
    .await;
    for i in 0..30 {
        assert_eq!(
            c.node("n3")
                .local(&format!("l{i}"))
                .await
                .live_values()
                .count(),
            1,
            "l{i}"
        );
    }
}
