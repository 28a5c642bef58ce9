//! Queries and consistency with real processes: a stale replica can neither bring back nor
//! hide a document at QUORUM (and is repaired by the query), an acknowledged write is
//! found at once from every node, siblings come back once with a context that resolves
//! them, deleted and expired documents never appear, comparisons stay within one JSON type,
//! and bad queries are refused with INVALID_ARGUMENT.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringdb_client::{Client, Consistency, Error, WriteOptions};
use ringdb_tests::{wait_until, Cluster};
use serde_json::{json, Value};

fn keys(docs: &[ringdb_client::Document]) -> Vec<String> {
    docs.iter().map(|d| d.key.clone()).collect()
}

/// Keys of `held` whose document has `status` "open", in key order.
fn open_keys(held: &BTreeMap<String, Value>) -> Vec<String> {
    held.iter()
        .filter(|(_, d)| d["status"] == "open")
        .map(|(k, _)| k.clone())
        .collect()
}

/// Replace a document with what a read at `level` saw.
async fn replace(client: &Client, c: &str, key: &str, doc: &Value, level: Consistency) {
    let read = client
        .get_with(
            c,
            key,
            &ringdb_client::ReadOptions::new().consistency(level),
        )
        .await
        .unwrap();
    let opts = WriteOptions::new().consistency(level).context(read.context);
    client.put_with(c, key, doc, &opts).await.unwrap();
}

/// 40 documents written at ALL: k30..k34 closed, the others open.
async fn write_all_open(client: &Client, c: &str) -> BTreeMap<String, Value> {
    let all = WriteOptions::new().consistency(Consistency::All);
    let mut held = BTreeMap::new();
    for i in 0..40 {
        let status = if (30..35).contains(&i) {
            "closed"
        } else {
            "open"
        };
        let doc = json!({"n": i, "status": status});
        let key = format!("k{i:02}");
        client.put_with(c, &key, &doc, &all).await.unwrap();
        held.insert(key, doc);
    }
    held
}

/// At QUORUM while a replica is down: close k00..k09, delete k10..k14, open k30..k34, add
/// k40..k44 open.
async fn change_while_down(n1: &Client, c: &str, held: &mut BTreeMap<String, Value>) {
    let quorum = WriteOptions::new().consistency(Consistency::Quorum);
    for i in 0..10 {
        let key = format!("k{i:02}");
        let doc = json!({"n": i, "status": "closed"});
        replace(n1, c, &key, &doc, Consistency::Quorum).await;
        held.insert(key, doc);
    }
    for i in 10..15 {
        let key = format!("k{i:02}");
        n1.delete_with(c, &key, &quorum).await.unwrap();
        held.remove(&key);
    }
    for i in 30..35 {
        let key = format!("k{i:02}");
        let doc = json!({"n": i, "status": "open"});
        replace(n1, c, &key, &doc, Consistency::Quorum).await;
        held.insert(key, doc);
    }
    for i in 40..45 {
        let key = format!("k{i:02}");
        let doc = json!({"n": i, "status": "open"});
        n1.put_with(c, &key, &doc, &quorum).await.unwrap();
        held.insert(key, doc);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_writes_neither_resurrects_nor_hides_and_is_repaired() {
    // No hints and no anti-entropy: only the query can bring n3 up to date.
    let mut cluster = Cluster::start_with(
        3,
        &["--max-hints-per-target", "0", "--aae-interval-secs", "0"],
    )
    .await;
    let client = cluster.client().await;
    let (c, paged, indexed) = ("tickets", "paged", "indexed");
    // The third collection is queried through an index on status: n3's index entries go
    // stale with its documents.
    client.create_index(indexed, "status", false).await.unwrap();
    let mut held = BTreeMap::new();
    let mut held_paged = BTreeMap::new();
    let mut held_indexed = BTreeMap::new();
    for (name, h) in [
        (c, &mut held),
        (paged, &mut held_paged),
        (indexed, &mut held_indexed),
    ] {
        *h = write_all_open(&client, name).await;
    }
    cluster.node("n3").stop();
    cluster.wait_all_up().await;
    let n1 = cluster.nodes[0].client().await;
    for (name, h) in [
        (c, &mut held),
        (paged, &mut held_paged),
        (indexed, &mut held_indexed),
    ] {
        change_while_down(&n1, name, h).await;
    }

    cluster.node("n3").restart().await;
    cluster.wait_all_up().await;
    let n3 = cluster.nodes[2].client().await;
    // n3's own copy is stale: it still holds the closed, deleted and missing documents
    // as they were.
    let stale = n3.local_get(c, "k00").await.unwrap();
    assert_eq!(stale.values, vec![json!({"n": 0, "status": "open"})]);

    // n3 coordinates and asks its own (stale) copy first at QUORUM.
    let found = n3
        .find(c)
        .filter(r#"status = "open""#)
        .allow_filtering()
        .consistency(Consistency::Quorum)
        .trace(true)
        .page_size(1000)
        .page()
        .await
        .unwrap();
    assert_eq!(keys(&found.documents), open_keys(&held));
    for d in &found.documents {
        assert_eq!(d.values, vec![held[&d.key].clone()], "{}", d.key);
    }
    let trace = found.trace.expect("a trace");
    assert!(trace.scans.iter().any(|s| s.node == "n3"), "{trace:?}");
    assert!(
        trace.dropped >= 15,
        "closed and deleted were dropped: {trace:?}"
    );
    assert!(trace.reread > 0 && trace.repaired > 0, "{trace:?}");
    let count = n3
        .count(c)
        .filter(r#"status = "open""#)
        .allow_filtering()
        .consistency(Consistency::Quorum)
        .run()
        .await
        .unwrap();
    assert_eq!(count.count as usize, open_keys(&held).len());

    // Small pages over the other stale collection: n3 reports closed and deleted documents
    // first, so pages need more rounds, and still come out exactly right.
    let mut seen = Vec::new();
    let (mut token, mut most_rounds) = (None, 0);
    loop {
        let q = n3
            .find(paged)
            .filter(r#"status = "open""#)
            .allow_filtering()
            .consistency(Consistency::Quorum)
            .trace(true)
            .page_size(3);
        let page = match token.take() {
            Some(t) => q.after(t),
            None => q,
        }
        .page()
        .await
        .unwrap();
        most_rounds = most_rounds.max(page.trace.map_or(0, |t| t.rounds));
        seen.extend(keys(&page.documents));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, open_keys(&held_paged));
    assert!(most_rounds > 1, "stale candidates cost a page extra rounds");

    // The same through n3's stale index, in small pages: no ALLOW FILTERING, every replica
    // reads its index, and the answer is still exactly the open documents.
    wait_until(Duration::from_secs(60), "the status index ready", || {
        let n3 = n3.clone();
        async move {
            n3.indexes(Some("indexed"))
                .await
                .is_ok_and(|l| l.len() == 1 && l[0].state == ringdb_client::IndexState::Ready)
        }
    })
    .await;
    let (mut seen, mut token, mut dropped) = (Vec::new(), None, 0);
    loop {
        let q = n3
            .find(indexed)
            .filter(r#"status = "open""#)
            .consistency(Consistency::Quorum)
            .trace(true)
            .page_size(4);
        let page = match token.take() {
            Some(t) => q.after(t),
            None => q,
        }
        .page()
        .await
        .unwrap();
        let t = page.trace.expect("a trace");
        assert!(
            t.scans.iter().all(|s| s.source == "index on status"),
            "{t:?}"
        );
        dropped += t.dropped;
        for d in &page.documents {
            assert_eq!(d.values, vec![held_indexed[&d.key].clone()], "{}", d.key);
        }
        seen.extend(keys(&page.documents));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, open_keys(&held_indexed));
    assert!(
        dropped >= 15,
        "n3's stale entries were re-checked and dropped"
    );
    let count = n3
        .count(indexed)
        .filter(r#"status = "closed""#)
        .consistency(Consistency::Quorum)
        .run()
        .await
        .unwrap();
    let closed = held_indexed
        .values()
        .filter(|d| d["status"] == "closed")
        .count();
    assert_eq!(count.count as usize, closed);

    // The queries repaired n3's copies of what they re-checked (and so its index entries:
    // a COUNT at ONE through n3's own index now sees the repaired documents).
    for (name, held) in [(c, &held), (indexed, &held_indexed)] {
        wait_until(Duration::from_secs(20), "n3 repaired by the query", || {
            let (n3, held) = (n3.clone(), held.clone());
            async move {
                for i in (0..15).chain(30..35).chain(40..45) {
                    let key = format!("k{i:02}");
                    let local = n3.local_get(name, &key).await.unwrap();
                    let want: Vec<Value> = held.get(&key).cloned().into_iter().collect();
                    if local.values != want {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }
    let own = n3
        .count(indexed)
        .filter(r#"status = "open""#)
        .consistency(Consistency::One)
        .trace(true)
        .run()
        .await
        .unwrap();
    let t = own.trace.unwrap();
    assert!(
        t.scans
            .iter()
            .all(|s| s.node == "n3" && s.source == "index on status"),
        "{t:?}"
    );
    assert_eq!(own.count as usize, open_keys(&held_indexed).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_acknowledged_writes_siblings_deletes_expiry_and_types_as_promised() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let per_node: Vec<Client> = {
        let mut v = Vec::new();
        for n in &cluster.nodes {
            v.push(n.client().await);
        }
        v
    };

    // A write acknowledged at QUORUM is found by a QUORUM query from every node at once.
    for i in 0..20 {
        let key = format!("w{i}");
        let tag = format!("t{i}");
        client
            .put_with(
                "ryw",
                &key,
                &json!({"tag": tag}),
                &WriteOptions::new().consistency(Consistency::Quorum),
            )
            .await
            .unwrap();
        for (n, node) in per_node.iter().enumerate() {
            let found = node
                .find("ryw")
                .where_("tag", ringdb_client::Op::Eq(json!(tag)))
                .allow_filtering()
                .consistency(Consistency::Quorum)
                .all()
                .await
                .unwrap();
            assert_eq!(
                keys(&found),
                std::slice::from_ref(&key),
                "node {n} right after writing {key}"
            );
        }
    }

    // Siblings: one matching version is enough; the document comes back once with both,
    // and its context resolves them.
    for color in ["red", "blue"] {
        client
            .put("paint", "door", &json!({"color": color}))
            .await
            .unwrap();
    }
    let found = client
        .find("paint")
        .filter(r#"color = "red""#)
        .allow_filtering()
        .all()
        .await
        .unwrap();
    assert_eq!(keys(&found), ["door"]);
    let mut values = found[0].values.clone();
    values.sort_by_key(|v| v["color"].as_str().unwrap().to_string());
    assert_eq!(values, [json!({"color": "blue"}), json!({"color": "red"})]);
    client
        .put_with(
            "paint",
            "door",
            &json!({"color": "green"}),
            &WriteOptions::new().context(found[0].context.clone()),
        )
        .await
        .unwrap();
    let read = client
        .get_with(
            "paint",
            "door",
            &ringdb_client::ReadOptions::new().consistency(Consistency::All),
        )
        .await
        .unwrap();
    assert_eq!(
        read.values,
        [json!({"color": "green"})],
        "the context covered both siblings"
    );
    assert!(client
        .find("paint")
        .filter(r#"color = "red""#)
        .allow_filtering()
        .all()
        .await
        .unwrap()
        .is_empty());

    // Deleted and expired documents never appear, at any level.
    let all = WriteOptions::new().consistency(Consistency::All);
    for i in 0..6 {
        client
            .put_with("gone", &format!("keep{i}"), &json!({"x": 1}), &all)
            .await
            .unwrap();
        client
            .put_with("gone", &format!("del{i}"), &json!({"x": 1}), &all)
            .await
            .unwrap();
        client
            .delete_with("gone", &format!("del{i}"), &all)
            .await
            .unwrap();
    }
    let expiry = Instant::now() + Duration::from_secs(2);
    for i in 0..6 {
        client
            .put_with(
                "gone",
                &format!("ttl{i}"),
                &json!({"x": 1}),
                &all.clone().ttl(Duration::from_secs(2)),
            )
            .await
            .unwrap();
    }
    let kept: Vec<String> = (0..6).map(|i| format!("keep{i}")).collect();
    let with_ttl: Vec<String> = (0..6).map(|i| format!("ttl{i}")).collect();
    let before = keys(
        &client
            .find("gone")
            .filter("x = 1")
            .allow_filtering()
            .all()
            .await
            .unwrap(),
    );
    if Instant::now() < expiry {
        let mut want = kept.clone();
        want.extend(with_ttl.clone());
        assert_eq!(before, want, "deleted documents never appear");
    }
    while Instant::now() < expiry + Duration::from_millis(100) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for level in [Consistency::One, Consistency::Quorum, Consistency::All] {
        let after = client.find("gone").consistency(level).all().await.unwrap();
        assert_eq!(keys(&after), kept, "{level}: expired documents are gone");
        let count = client
            .count("gone")
            .filter("x EXISTS")
            .allow_filtering()
            .consistency(level)
            .run()
            .await
            .unwrap();
        assert_eq!(count.count, 6, "{level}");
    }

    // Comparisons stay within one JSON type.
    let values = [
        ("int", json!(1)),
        ("float", json!(1.0)),
        ("two", json!(2.5)),
        ("string", json!("1")),
        ("bool", json!(true)),
        ("null", Value::Null),
        ("array", json!([1])),
        ("object", json!({"a": 1})),
    ];
    for (k, v) in &values {
        client
            .put_with("types", k, &json!({"v": v}), &all)
            .await
            .unwrap();
    }
    client
        .put_with("types", "missing", &json!({"w": 1}), &all)
        .await
        .unwrap();
    let cases = [
        ("v = 1", vec!["float", "int"]),
        ("v = 1.0", vec!["float", "int"]),
        ("v != 1", vec!["two"]),
        ("v > 0", vec!["float", "int", "two"]),
        (r#"v < "2""#, vec!["string"]),
        (r#"v >= """#, vec!["string"]),
        ("v < true", vec![]),
        ("v <= true", vec!["bool"]),
        ("v >= null", vec!["null"]),
        ("v != null", vec![]),
        (
            r#"v IN (1, "1", null)"#,
            vec!["float", "int", "null", "string"],
        ),
        (
            "v EXISTS",
            vec![
                "array", "bool", "float", "int", "null", "object", "string", "two",
            ],
        ),
    ];
    for (cond, want) in cases {
        let got = keys(
            &client
                .find("types")
                .filter(cond)
                .allow_filtering()
                .all()
                .await
                .unwrap(),
        );
        assert_eq!(got, want, "WHERE {cond}");
    }
    let agg = client
        .aggregate("types")
        .count_all()
        .sum("v")
        .min("v")
        .max("v")
        .run()
        .await
        .unwrap();
    assert_eq!(
        agg.to_json(),
        json!({"groups": [{"group": null, "values": {"count(*)": 9, "sum(v)": 4.5, "min(v)": true, "max(v)": {"a": 1}}}]})
    );

    // Refusals name what is wrong.
    let refused = |r: Result<_, Error>| match r {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    let m = refused(
        client
            .find("types")
            .filter("v = 1")
            .page()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("(v)") && m.contains("ALLOW FILTERING"), "{m}");
    let m = refused(
        client
            .count("types")
            .filter(r#"w > 0 AND "first name" EXISTS"#)
            .run()
            .await
            .map(|_| ()),
    );
    assert!(m.contains(r#"(w, "first name")"#), "{m}");
    let m = refused(
        client
            .aggregate("types")
            .count_all()
            .filter("v = 1")
            .run()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("ALLOW FILTERING"), "{m}");
    assert_eq!(
        client.count("types").run().await.unwrap().count,
        9,
        "no conditions: a plain scan"
    );
    let m = refused(
        client
            .find("types")
            .consistency(Consistency::Any)
            .page()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("ANY"), "{m}");
    let m = refused(
        client
            .find("types")
            .filter("v = ")
            .allow_filtering()
            .page()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("column"), "{m}");
    let page = client.find("types").page_size(2).page().await.unwrap();
    let token = page.next.expect("more than two documents");
    let m = refused(
        client
            .find("ryw")
            .after(token.clone())
            .page()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("different query"), "{m}");
    let m = refused(
        client
            .find("types")
            .after("garbage!")
            .page()
            .await
            .map(|_| ()),
    );
    assert!(m.contains("invalid page token"), "{m}");
    let rest = client.find("types").after(token).all().await.unwrap();
    assert_eq!(rest.len(), 7);
}
