//! The client library against real `ringdb` processes: where token-aware routing sends
//! requests, failover when a node dies mid-run, write receipts, the update helper and typed
//! documents.

use std::collections::BTreeSet;
use std::time::Duration;

use ringdb_client::{Client, Consistency, Error, ReadOptions, Routing, WriteOptions};
use ringdb_tests::{wait_until, Cluster};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn at(c: Consistency) -> ReadOptions {
    ReadOptions::new().consistency(c)
}

/// Create a collection and wait until every node knows it, so no node creates it on a
/// first write with the default N in the meantime.
async fn create_everywhere(cluster: &Cluster, name: &str, replication: u32) {
    cluster.nodes[0]
        .client()
        .await
        .create_collection(name, replication, false)
        .await
        .unwrap();
    for n in &cluster.nodes {
        let c = n.client().await;
        wait_until(
            Duration::from_secs(10),
            &format!("{} to know {name}", n.id),
            || {
                let c = c.clone();
                async move {
                    c.collections()
                        .await
                        .is_ok_and(|(cs, _)| cs.iter().any(|x| x.name == name))
                }
            },
        )
        .await;
    }
}

/// The one node that holds `key` in an N = 1 collection, found by asking every node's own
/// replica: independent of any token computation.
async fn holder(cluster: &Cluster, collection: &str, key: &str) -> String {
    let mut holders = Vec::new();
    for n in cluster.nodes.iter().filter(|n| n.is_running()) {
        let local = n.client().await.local_get(collection, key).await.unwrap();
        if !local.values.is_empty() {
            holders.push(n.id.clone());
        }
    }
    assert_eq!(holders.len(), 1, "{key} held by {holders:?}");
    holders.remove(0)
}

#[test]
fn the_clients_token_is_the_nodes_token() {
    for i in 0..20_000 {
        let (c, k) = (
            format!("coll{}", i % 7),
            format!("key-{i}-{}", "é".repeat(i % 5)),
        );
        assert_eq!(
            ringdb_client::token_for(&c, &k),
            ringdb_node::ring::token_for(&c, &k),
            "{c}/{k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_aware_requests_are_coordinated_by_the_keys_replica() {
    let cluster = Cluster::start(3).await;
    // With N = 1 exactly one node holds each key, so "coordinated by a replica" means
    // "coordinated by the node that holds it".
    create_everywhere(&cluster, "solo", 1).await;
    let routed = cluster.client().await;
    assert_eq!(routed.routing(), Routing::TokenAware);
    assert!(routed.knows_ring(), "connect fetched the ring");
    let rotating = Client::builder(cluster.nodes.iter().map(|n| n.address.as_str()))
        .routing(Routing::RoundRobin)
        .connect()
        .await
        .unwrap();

    let mut rotated_elsewhere = 0;
    for i in 0..30 {
        let key = format!("k{i}");
        let w = routed.put("solo", &key, &json!({"i": i})).await.unwrap();
        let owner = holder(&cluster, "solo", &key).await;
        assert_eq!(w.coordinator.as_deref(), Some(owner.as_str()), "put {key}");
        assert_eq!(w.acknowledged_by, vec![owner.clone()], "put {key}");
        assert!(w.hinted_for.is_empty());
        let r = routed.get("solo", &key).await.unwrap();
        assert_eq!(r.coordinator.as_deref(), Some(owner.as_str()), "get {key}");
        assert_eq!(r.values, vec![json!({"i": i})]);
        let owner_address = &cluster
            .nodes
            .iter()
            .find(|n| n.id == owner)
            .unwrap()
            .address;
        assert_eq!(&routed.route("solo", &key)[0], owner_address);

        // The same requests without routing land anywhere (and are forwarded).
        let r = rotating.get("solo", &key).await.unwrap();
        assert_eq!(r.values, vec![json!({"i": i})]);
        if r.coordinator.as_deref() != Some(owner.as_str()) {
            rotated_elsewhere += 1;
        }
    }
    assert!(
        rotated_elsewhere >= 10,
        "round-robin should mostly miss the one replica, so the check above means something ({rotated_elsewhere} of 30)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keep_succeeding_at_quorum_when_the_contacted_node_is_killed_mid_run() {
    let mut cluster = Cluster::start(3).await;
    // The client is given n1 only: it finds n2 and n3 through the ring.
    let client = Client::connect([cluster.nodes[0].address.as_str()])
        .await
        .unwrap();
    assert!(client.knows_ring());
    let opts = WriteOptions::new().consistency(Consistency::Quorum);
    let mut written = Vec::new();
    for i in 0..120 {
        if i == 40 {
            cluster.node("n1").kill9();
        }
        let key = format!("k{i}");
        let w = client
            .put_with("failover", &key, &json!({"i": i}), &opts)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "write {i} ({}killed n1): {e}",
                    if i < 40 { "before " } else { "after " }
                )
            });
        assert!(w.acknowledged_by.len() >= 2, "{key}: {w:?}");
        if i >= 40 {
            assert_ne!(w.coordinator.as_deref(), Some("n1"), "{key}");
            assert!(!w.acknowledged_by.contains(&"n1".to_string()), "{key}");
        }
        written.push((key, i));
    }
    // Reads fail over too, and see every acknowledged write.
    for (key, i) in &written {
        let r = client
            .get_with("failover", key, &at(Consistency::Quorum))
            .await
            .unwrap();
        assert_eq!(r.values, vec![json!({"i": i})], "{key}");
        assert_ne!(r.coordinator.as_deref(), Some("n1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_receipts_name_who_acknowledged_and_who_holds_a_hint() {
    let mut cluster = Cluster::start(3).await;
    cluster.node("n3").kill9();
    cluster.wait_all_up().await; // n1 and n2 see n3 down
    let client = cluster.client().await;
    for i in 0..10 {
        let key = format!("k{i}");
        let w = client
            .put("receipts", &key, &json!({"i": i}))
            .await
            .unwrap();
        let acked: BTreeSet<&str> = w.acknowledged_by.iter().map(String::as_str).collect();
        assert_eq!(acked, BTreeSet::from(["n1", "n2"]), "{key}: {w:?}");
        assert_eq!(w.hinted_for, vec!["n3".to_string()], "{key}: {w:?}");
        let d = client
            .delete_with("receipts", &key, &WriteOptions::new().context(w.context))
            .await
            .unwrap();
        assert_eq!(d.hinted_for, vec!["n3".to_string()], "delete {key}: {d:?}");
    }
}

/// The items of every sibling, plus `extra`, as one cart: a merge that is safe to repeat.
fn union(siblings: &[Value], extra: &[&str]) -> Value {
    let mut items: BTreeSet<String> = siblings
        .iter()
        .flat_map(|v| v["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(String::from))
        .collect();
    items.extend(extra.iter().map(|s| s.to_string()));
    json!({ "items": items })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_merges_the_siblings_of_two_concurrent_blind_writers_into_one() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let (a, b) = (
        cluster.nodes[0].client().await,
        cluster.nodes[1].client().await,
    );
    let (apple, pear) = (json!({"items": ["apple"]}), json!({"items": ["pear"]}));
    let (ra, rb) = tokio::join!(a.put("carts", "k", &apple), b.put("carts", "k", &pear));
    ra.unwrap();
    rb.unwrap();
    let before = client
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(
        before.values.len(),
        2,
        "blind writes are siblings: {before:?}"
    );

    let mut seen = Vec::new();
    let done = client
        .update("carts", "k", |siblings| {
            seen.push(siblings.len());
            Some(union(siblings, &["fig"]))
        })
        .await
        .unwrap();
    assert_eq!(seen, vec![2], "merge got both siblings, once");
    assert_eq!(done.attempts, 1);
    assert_eq!(
        done.value(),
        Some(&json!({"items": ["apple", "fig", "pear"]}))
    );
    let after = client
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(
        after.values,
        vec![json!({"items": ["apple", "fig", "pear"]})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_tries_again_when_a_write_gets_in_between() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let intruder = cluster.nodes[2].client().await;
    client
        .put("carts", "k", &json!({"items": ["apple"]}))
        .await
        .unwrap();
    let runtime = tokio::runtime::Handle::current();
    let mut calls = Vec::new();
    let done = client
        .update("carts", "k", |siblings| {
            calls.push(siblings.to_vec());
            if calls.len() == 1 {
                // Between this update's read and its write, another writer adds a
                // version blindly: the update's write cannot supersede it.
                tokio::task::block_in_place(|| {
                    runtime.block_on(intruder.put("carts", "k", &json!({"items": ["plum"]})))
                })
                .unwrap();
            }
            Some(union(siblings, &["fig"]))
        })
        .await
        .unwrap();
    assert_eq!(done.attempts, 2, "{calls:?}");
    assert_eq!(calls[0], vec![json!({"items": ["apple"]})]);
    let second: BTreeSet<String> = calls[1].iter().map(|v| v.to_string()).collect();
    assert_eq!(
        second,
        BTreeSet::from([
            json!({"items": ["apple", "fig"]}).to_string(),
            json!({"items": ["plum"]}).to_string()
        ]),
        "the retry saw its own first write and the intruder's"
    );
    let after = client
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(
        after.values,
        vec![json!({"items": ["apple", "fig", "plum"]})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updaters_lose_nothing_and_leave_one_version() {
    let cluster = Cluster::start(3).await;
    let (a, b) = (
        cluster.nodes[0].client().await,
        cluster.nodes[1].client().await,
    );
    let adder = |client: Client, who: &'static str| async move {
        for i in 0..8 {
            let item = format!("{who}{i}");
            client
                .update("carts", "shared", |s| Some(union(s, &[item.as_str()])))
                .await
                .unwrap_or_else(|e| panic!("{who} adding {item}: {e}"));
        }
    };
    tokio::join!(adder(a, "a"), adder(b, "b"));
    let after = cluster
        .client()
        .await
        .get_with("carts", "shared", &at(Consistency::All))
        .await
        .unwrap();
    let want: Vec<String> = (0..8)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(after.values, vec![json!({ "items": want })]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    age: u32,
    tags: Vec<String>,
    address: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_documents_round_trip_through_serde() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let alice = Profile {
        name: "Alice".into(),
        age: 31,
        tags: vec!["admin".into(), "ops".into()],
        address: Some(Address {
            city: "Lyon".into(),
            zip: "69001".into(),
        }),
    };
    client.put("profiles", "alice", &alice).await.unwrap();
    let read = client
        .get_as::<Profile>("profiles", "alice", &ReadOptions::new())
        .await
        .unwrap();
    assert_eq!(read.values, vec![alice.clone()]);

    let done = client
        .update_as::<Profile, _>("profiles", "alice", |versions| {
            let mut p = versions.first()?.clone();
            p.age += 1;
            p.address = None;
            Some(p)
        })
        .await
        .unwrap();
    let older = Profile {
        age: 32,
        address: None,
        ..alice
    };
    assert_eq!(done.value(), Some(&older));
    let read = client
        .get_as::<Profile>("profiles", "alice", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(read.values, vec![older]);

    // A document that is not a Profile is a conversion error, not a panic.
    client
        .put("profiles", "bob", &json!({"name": "Bob"}))
        .await
        .unwrap();
    match client
        .get_as::<Profile>("profiles", "bob", &ReadOptions::new())
        .await
    {
        Err(Error::Document(m)) => assert!(m.contains("age"), "{m}"),
        other => panic!("expected a document conversion error, got {other:?}"),
    }
    // Nothing to update: the function is told so and may decline.
    let none = client
        .update_as::<Profile, _>("profiles", "nobody", |versions| {
            assert!(versions.is_empty());
            None
        })
        .await
        .unwrap();
    assert!(none.write.is_none() && none.values.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_learns_of_a_new_node_by_itself() {
    let mut cluster = Cluster::start(3).await;
    let client = Client::builder(cluster.nodes.iter().map(|n| n.address.as_str()))
        .refresh_interval(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let n4 = cluster.add_node().await.address.clone();
    wait_until(Duration::from_secs(10), "the client to route to n4", || {
        let (client, n4) = (client.clone(), n4.clone());
        async move { (0..200).any(|i| client.route("c", &format!("k{i}"))[0] == n4) }
    })
    .await;
}

/// Many requests in flight on one node's pipeline each get their own answer, errors
/// included, exactly as with a gRPC call per request; and the pipeline comes back after
/// the node restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answer_as_unary_calls_do_and_survive_a_restart() {
    let mut cluster = Cluster::start(3).await;
    let address = cluster.nodes[0].address.clone();
    let connect = |pipelined: bool| {
        let address = address.clone();
        async move {
            Client::builder([address.as_str()])
                .routing(Routing::RoundRobin)
                .pipelining(pipelined)
                .connect()
                .await
                .unwrap()
        }
    };
    let (piped, unary) = (connect(true).await, connect(false).await);

    // 300 writes at once on one stream; each answer belongs to its own request.
    let writes = (0..300).map(|i| {
        let c = piped.clone();
        async move { c.put("pipe", &format!("k{i}"), &json!({"i": i})).await }
    });
    for (i, w) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        let w = w.unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert!(w.acknowledged_by.len() >= 2, "k{i}: {w:?}");
    }
    let reads = (0..300).map(|i| {
        let (p, u) = (piped.clone(), unary.clone());
        async move {
            let key = format!("k{i}");
            (
                i,
                p.get("pipe", &key).await.unwrap(),
                u.get("pipe", &key).await.unwrap(),
            )
        }
    });
    for (i, p, u) in futures::future::join_all(reads).await {
        assert_eq!(p.values, vec![json!({"i": i})], "k{i} pipelined");
        assert_eq!(p.values, u.values, "k{i}");
        assert_eq!(p.context, u.context, "k{i}");
    }

    // A bad request fails alone, with the unary call's error.
    let bad = bytes::Bytes::from_static(b"[1, 2]");
    let (p, u) = (
        piped
            .put_raw("pipe", "bad", bad.clone(), &WriteOptions::new())
            .await,
        unary
            .put_raw("pipe", "bad", bad, &WriteOptions::new())
            .await,
    );
    match (p, u) {
        (Err(Error::InvalidArgument(p)), Err(Error::InvalidArgument(u))) => assert_eq!(p, u),
        other => panic!("expected INVALID_ARGUMENT from both, got {other:?}"),
    }
    piped
        .put("pipe", "after-bad", &json!({"ok": true}))
        .await
        .unwrap();

    // The node restarts: its old stream is gone, the next requests open a new one.
    cluster.node("n1").kill9();
    cluster.node("n1").restart().await;
    cluster.wait_all_up().await;
    wait_until(
        Duration::from_secs(20),
        "a pipelined write after the restart",
        || {
            let c = piped.clone();
            async move {
                c.put("pipe", "after-restart", &json!({"ok": 1}))
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    let r = piped.get("pipe", "k7").await.unwrap();
    assert_eq!(r.values, vec![json!({"i": 7})]);
}
