//! Deletes never come back: a tombstone is purged only once every replica holds it, however
//! long a replica was away, and then it is purged everywhere.

use std::time::Duration;

use ringdb_node::coordinator::{Level, WriteOp};
use ringdb_node::storage::Durability;
use ringdb_node::version::CausalContext;
use ringdb_tests::sim::{Link, SimCluster};

async fn delete(c: &SimCluster, via: &str, key: &str) {
    let op = WriteOp {
        collection: "sim".into(),
        key: key.into(),
        value: None,
        context: CausalContext::new(),
        level: Level::Quorum,
        durability: Durability::Durable,
        timeout: Duration::from_millis(500),
        expires_ms: None,
    };
    c.node(via).coordinator.delete(op, None).await.unwrap();
}

async fn stored(c: &SimCluster, node: &str, key: &str) -> ringdb_node::version::SiblingSet {
    c.node(node)
        .coordinator
        .storage()
        .read("sim", key)
        .await
        .unwrap()
}

async fn passes(c: &SimCluster, nodes: &[&str]) -> u64 {
    let mut purged = 0;
    for n in nodes {
        purged += c.node(n).anti_entropy.pass(None).await.tombstones_purged;
    }
    purged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_away_longer_than_the_grace_cannot_resurrect_a_delete() {
    let c = SimCluster::start_with(3, 3, |cfg| {
        cfg.hints.max_per_target = 0; // only anti-entropy can tell n3 about the delete
        cfg.aae.interval = Duration::ZERO;
        cfg.aae.tombstone_grace = Duration::from_millis(200);
    })
    .await;
    for k in ["gone", "kept"] {
        c.node("n1")
            .put(k, r#"{"v":1}"#, CausalContext::new(), Level::All)
            .await
            .unwrap();
    }
    c.net.isolate("n3", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n3" && t != "n3"))
        .await;
    delete(&c, "n1", "gone").await;
    assert_eq!(stored(&c, "n3", "gone").await.live_values().count(), 1);

    // Far past the grace period, but n3 is away: nobody purges.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(passes(&c, &["n1", "n2"]).await, 0);
    for n in ["n1", "n2"] {
        let s = stored(&c, n, "gone").await;
        assert!(
            !s.is_empty() && s.live_values().count() == 0,
            "{n} keeps the tombstone"
        );
    }

    // n3 comes back holding the old version: anti-entropy gives it the tombstone, which
    // supersedes the version, and reads everywhere see the delete.
    c.net.heal();
    c.wait_views(|_, _| true).await;
    // Within these passes the primary may already purge, once n3 holds the tombstone.
    let mut purged = passes(&c, &["n1", "n2", "n3"]).await;
    for n in ["n1", "n2", "n3"] {
        assert_eq!(stored(&c, n, "gone").await.live_values().count(), 0, "{n}");
        let read = c.node(n).get("gone", Level::All).await.unwrap();
        assert_eq!(read.live_values().count(), 0, "read through {n}");
    }

    // Now every replica holds the same tombstone: once its grace passed on the primary,
    // the tombstone is purged on all three, and nothing comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    purged += passes(&c, &["n1", "n2", "n3"]).await;
    assert_eq!(purged, 1, "exactly the one tombstone");
    for n in ["n1", "n2", "n3"] {
        assert!(
            stored(&c, n, "gone").await.is_empty(),
            "{n} still stores the tombstone"
        );
        assert_eq!(stored(&c, n, "kept").await.live_values().count(), 1, "{n}");
    }
    passes(&c, &["n1", "n2", "n3"]).await;
    for n in ["n1", "n2", "n3"] {
        assert!(
            stored(&c, n, "gone").await.is_empty(),
            "{n}: resurrected by a pass"
        );
        let read = c.node(n).get("gone", Level::All).await.unwrap();
        assert!(read.live_values().next().is_none());
    }
    let roots: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).coordinator.storage().trees().roots())
        .collect();
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
}

/// Regression (fault suite, sim seed 3025): a delete that timed out left its tombstone on
/// one replica; a later blind delete read it through a quorum, saw nothing live, and was
/// acknowledged without writing, so the next quorum read missed the tombstone and returned
/// the deleted versions. A blind delete now writes the tombstone to W replicas again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_delete_of_a_half_deleted_key_makes_the_delete_stick() {
    let c = SimCluster::start_with(3, 3, |cfg| {
        cfg.hints.max_per_target = 0;
        cfg.aae.interval = Duration::ZERO;
    })
    .await;
    c.node("n1")
        .put("k", r#"{"v":1}"#, CausalContext::new(), Level::All)
        .await
        .unwrap();
    // A tombstone on n1 alone (an ALL delete that reached only its coordinator).
    c.net.isolate("n1", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n1" && t != "n1"))
        .await;
    let seen = c.node("n1").local("k").await;
    let op = WriteOp {
        collection: "sim".into(),
        key: "k".into(),
        value: None,
        context: CausalContext::new(),
        level: Level::One,
        durability: Durability::Durable,
        timeout: Duration::from_millis(500),
        expires_ms: None,
    };
    c.node("n1")
        .coordinator
        .delete(op, Some(seen.context().clone()))
        .await
        .unwrap();
    c.net.heal();
    c.wait_views(|_, _| true).await;
    // n1 and n2 answer the blind delete's read: nothing live. It must still write: read
    // repair would tell n2 too, but only later (here: 300 ms later), while the delete has
    // been acknowledged already.
    c.net.set("n1", "n3", Link::Refused);
    c.net.set("n3", "n1", Link::Refused);
    c.net
        .set("n1", "n2", Link::Slow(Duration::from_millis(300)));
    delete(&c, "n1", "k").await;
    // A quorum read that misses n1 (n3 and n2 answer) must see the delete.
    let read = c.node("n3").get("k", Level::Quorum).await.unwrap();
    assert_eq!(
        read.live_values().count(),
        0,
        "the acknowledged delete is not visible to a quorum without n1"
    );
}
