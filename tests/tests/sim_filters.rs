//! Faults aimed at one kind of internode message, and lossy links whose every decision
//! follows from the run's seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringdb_node::coordinator::Level;
use ringdb_node::transport::{MessageKind, PeerRequest, Transport};
use ringdb_node::version::CausalContext;
use ringdb_proto::v1::{GossipSyn, ReplicaReadRequest, ReplicaWriteBatchRequest};
use ringdb_tests::sim::{Fate, Filter, Link, LinkLog, SimCluster, SimNet};

/// Waits for an eventual condition; the bound guards against "never", not "slow".
async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(log: &LinkLog, kind: MessageKind, fate: Fate) -> usize {
    log.iter().filter(|e| **e == (kind, fate)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_replays_alone_are_lost_while_gossip_flows_and_arrive_once_the_filter_goes() {
    // No background anti-entropy: hints are the only way n3 can get the writes it missed.
    let c = SimCluster::start_with(3, 3, |cfg| cfg.aae.interval = Duration::ZERO).await;
    c.net.isolate("n3", &c.ids(), Link::Refused);
    c.wait_views(|o, t| o == t || (o != "n3" && t != "n3"))
        .await;
    let keys: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    for k in &keys {
        c.node("n1")
            .put(k, r#"{"v":1}"#, CausalContext::new(), Level::Quorum)
            .await
            .unwrap();
    }
    wait_for("hints for n3", async || {
        c.node("n1").coordinator.hints().pending_for("n3") == keys.len() as u64
    })
    .await;

    let lose_hints = c
        .net
        .add_filter(Filter::drop(1.0).only(&[MessageKind::HintReplay]));
    c.net.start_log();
    c.net.isolate("n3", &c.ids(), Link::Up);

    // Gossip reaches n3 and back: every node sees every other up again.
    c.wait_views(|_, _| true).await;
    // n1 now tries to replay every round; each attempt is lost.
    wait_for("three lost hint replays to n3", async || {
        count(
            &c.net.link_log("n1", "n3"),
            MessageKind::HintReplay,
            Fate::Dropped,
        ) >= 3
    })
    .await;
    let log = c.net.log();
    let to_n3 = &log[&("n1".to_string(), "n3".to_string())];
    let from_n3 = &log[&("n3".to_string(), "n1".to_string())];
    assert!(
        count(to_n3, MessageKind::Gossip, Fate::Delivered) > 0,
        "{to_n3:?}"
    );
    assert!(
        count(from_n3, MessageKind::Gossip, Fate::Delivered) > 0,
        "{from_n3:?}"
    );
    for (link, entries) in &log {
        assert!(
            entries
                .iter()
                .all(|(kind, fate)| (*fate == Fate::Dropped) == (*kind == MessageKind::HintReplay)),
            "on {link:?} only hint replays are lost, every one of them: {entries:?}"
        );
    }
    assert_eq!(
        c.node("n1").coordinator.hints().pending_for("n3"),
        keys.len() as u64,
        "no hint was delivered"
    );
    for k in &keys {
        assert!(c.node("n3").local(k).await.is_empty(), "{k} reached n3");
    }

    c.net.remove_filter(lose_hints);
    wait_for("hints delivered", async || {
        c.node("n1").coordinator.hints().pending() == 0
    })
    .await;
    for k in &keys {
        assert_eq!(
            c.node("n3").local(k).await.live_values().count(),
            1,
            "{k} on n3 after the replay"
        );
    }
}

/// How the test sends its messages across links.
#[derive(Clone, Copy)]
enum Order {
    /// Every message of one link, then the next link.
    LinkByLink,
    /// All links at once, each link's messages in order.
    Concurrent,
}

/// The fates of a fixed sequence of messages on each link of a network seeded with `seed`,
/// with lossy links and a filter losing half the gossip to n2.
async fn fates(seed: u64, order: Order) -> BTreeMap<(String, String), LinkLog> {
    let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
    let net = SimNet::new(seed);
    net.set_all(&nodes, Link::Lossy(0.3));
    net.add_filter(
        Filter::drop(0.5)
            .to("n2")
            .only(&[MessageKind::Gossip, MessageKind::HintHandOff]),
    );
    net.start_log();
    let messages = || {
        (0..60).map(|i| match i % 4 {
            0 => PeerRequest::Gossip(GossipSyn::default()),
            1 => PeerRequest::ReplicaRead(ReplicaReadRequest::default()),
            2 => PeerRequest::ReplicaWriteBatch(ReplicaWriteBatchRequest {
                hint_for: "n9".into(),
                ..Default::default()
            }),
            _ => PeerRequest::ReplicaWriteBatch(ReplicaWriteBatchRequest::default()),
        })
    };
    // No node answers on this network: every message that gets through is refused by the
    // missing node, after its fate was decided and recorded.
    let link = |from: String, to: String| {
        let net = net.clone();
        async move {
            let endpoint = net.endpoint(&from);
            for m in messages() {
                assert!(endpoint.call(&to, m).await.is_err());
            }
        }
    };
    let links: Vec<(String, String)> = nodes
        .iter()
        .flat_map(|a| nodes.iter().map(move |b| (a.clone(), b.clone())))
        .filter(|(a, b)| a != b)
        .collect();
    match order {
        Order::LinkByLink => {
            for (a, b) in links {
                link(a, b).await;
            }
        }
        Order::Concurrent => {
            let tasks: Vec<_> = links
                .into_iter()
                .map(|(a, b)| tokio::spawn(link(a, b)))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    }
    net.log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_decides_every_link_the_same_way_whatever_the_other_links_carry() {
    let first = fates(7, Order::LinkByLink).await;
    assert_eq!(first.len(), 6, "every link carried messages");
    for (link, entries) in &first {
        assert_eq!(entries.len(), 60, "{link:?}");
        let lost = entries.iter().filter(|(_, f)| *f == Fate::Dropped).count();
        assert!((5..=45).contains(&lost), "{link:?} lost {lost} of 60");
    }
    let gossip_lost = |to: &str| {
        first
            .iter()
            .filter(|((_, b), _)| b == to)
            .map(|(_, l)| count(l, MessageKind::Gossip, Fate::Dropped))
            .sum::<usize>()
    };
    assert!(
        gossip_lost("n2") > gossip_lost("n3"),
        "the gossip filter on n2 loses more: {} vs {}",
        gossip_lost("n2"),
        gossip_lost("n3")
    );

    assert_eq!(
        fates(7, Order::Concurrent).await,
        first,
        "the same seed gives each link the same decisions, sent in any order"
    );
    assert_eq!(fates(7, Order::LinkByLink).await, first);
    assert_ne!(
        fates(8, Order::LinkByLink).await,
        first,
        "another seed decides otherwise"
    );
}
