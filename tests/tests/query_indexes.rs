//! Queries served by secondary indexes, with real processes: an indexed path needs no
//! ALLOW FILTERING, results come in the index's order (value, then key) and equal brute
//! force, every replica scan reads the index (TRACING says so), COUNT at ONE folds index
//! entries on the replicas; and while an index is still building a query is refused with
//! the build's progress, or with ALLOW FILTERING answered completely by a full scan, never
//! partially from the index. Through the Rust client, the raw gRPC stubs and ringsh.

use std::process::Command;
use std::time::Duration;

use ringdb_client::{Client, Consistency, Error, IndexState};
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{ConditionOp, ConsistencyLevel, CountRequest, FindRequest, QueryCondition};
use ringdb_query::statement::parse_conditions;
use ringdb_query::{order, Order};
use ringdb_tests::{binary, wait_until, Cluster};
use serde_json::{json, Value};
use tonic::Code;

/// The test documents: `age` a number (some floats, some strings, some missing), `tags` an
/// array, `city` a string.
fn person(i: u64) -> Value {
    let age = match i % 10 {
        7 => json!(format!("{}", 20 + i % 40)),
        8 => Value::Null,
        9 => json!(20.5 + (i % 40) as f64),
        _ => json!(20 + i % 40),
    };
    let city = ["Oslo", "Lima", "Pune", "Kyiv"][(i % 4) as usize];
    let mut doc = json!({
        "name": format!("p{i}"),
        "tags": [format!("t{}", i % 7), format!("t{}", i % 3)],
        "city": city,
    });
    if i % 10 != 8 {
        doc["age"] = age;
    }
    doc
}

/// The documents matching `conditions`, in the result order of `order`: (key, document).
fn brute_force(docs: &[(String, Value)], conditions: &str, indexed: &[&str]) -> Vec<String> {
    let f = parse_conditions(conditions).unwrap();
    let order = Order::choose(&f, |p| indexed.contains(&p.to_string().as_str()));
    let mut hits: Vec<(ringdb_query::Position, String)> = docs
        .iter()
        .filter_map(|(k, d)| {
            order::position(&f, order, k, std::slice::from_ref(d)).map(|p| (p, k.clone()))
        })
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, k)| k).collect()
}

async fn load(client: &Client, collection: &str, n: u64) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let docs: Vec<(String, Value)> = (0..n).map(|i| (format!("k{i:04}"), person(i))).collect();
    futures::stream::iter(docs.clone())
        .for_each_concurrent(32, |(k, d)| {
            let client = client.clone();
            let collection = collection.to_string();
            async move {
                client.put(&collection, &k, &d).await.expect("load");
            }
        })
        .await;
    docs
}

async fn wait_ready(client: &Client, collection: &str, within: Duration) {
    wait_until(within, "the indexes to be ready everywhere", || {
        let client = client.clone();
        let collection = collection.to_string();
        async move {
            client
                .indexes(Some(&collection))
                .await
                .is_ok_and(|l| !l.is_empty() && l.iter().all(|i| i.state == IndexState::Ready))
        }
    })
    .await;
}

fn ringsh_json(host: &str, statements: &str) -> Vec<Value> {
    let out = Command::new(binary("ringsh"))
        .args(["--host", host, "--format", "json", "-e", statements])
        .output()
        .expect("run ringsh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn keys_of(docs: &[ringdb_client::Document]) -> Vec<String> {
    docs.iter().map(|d| d.key.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_queries_need_no_allow_filtering_come_in_index_order_and_match_brute_force() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    for path in ["age", "tags[]"] {
        client.create_index("people", path, false).await.unwrap();
    }
    let docs = load(&client, "people", 400).await;
    wait_ready(&client, "people", Duration::from_secs(120)).await;
    let indexed = ["age", "tags[]"];

    for (conditions, level) in [
        ("age >= 30 AND age < 41", Consistency::Quorum),
        ("age = 25", Consistency::All),
        (r#"age IN (22, 30.5, "33")"#, Consistency::Quorum),
        (r#"tags[] = "t2""#, Consistency::One),
        (r#"tags[] > "t4" AND age > 50"#, Consistency::Quorum),
        ("age EXISTS", Consistency::Quorum),
    ] {
        let want = brute_force(&docs, conditions, &indexed);
        assert!(
            !want.is_empty(),
            "{conditions}: the data should match something"
        );
        // Pages of 17 through the stream, no ALLOW FILTERING.
        let found = client
            .find("people")
            .filter(conditions)
            .page_size(17)
            .limit(10_000)
            .consistency(level)
            .all()
            .await
            .unwrap_or_else(|e| panic!("{conditions}: {e}"));
        assert_eq!(keys_of(&found), want, "{conditions} at {level}");
        // Every replica scan read the index; the plan says so.
        let page = client
            .find("people")
            .filter(conditions)
            .consistency(level)
            .trace(true)
            .page()
            .await
            .unwrap();
        let t = page.trace.expect("a trace");
        assert!(
            t.source.starts_with("index on "),
            "{conditions}: {}",
            t.source
        );
        assert!(!t.scans.is_empty());
        for s in &t.scans {
            assert!(s.source.starts_with("index on "), "{conditions}: {s:?}");
        }
        // COUNT agrees, pushed down at ONE (index entries folded on the replicas).
        let count = client
            .count("people")
            .filter(conditions)
            .consistency(Consistency::One)
            .trace(true)
            .run()
            .await
            .unwrap();
        assert_eq!(count.count, want.len() as u64, "COUNT {conditions}");
        let t = count.trace.unwrap();
        assert!(t.pushed_down);
        assert!(
            t.scans.iter().all(|s| s.source.starts_with("index on ")),
            "{t:?}"
        );
        let count = client
            .count("people")
            .filter(conditions)
            .consistency(Consistency::Quorum)
            .run()
            .await
            .unwrap();
        assert_eq!(
            count.count,
            want.len() as u64,
            "COUNT {conditions} at QUORUM"
        );
    }

    // A condition on an unindexed path still needs ALLOW FILTERING; with it, the indexed
    // condition serves and orders, the other is checked on each candidate.
    let e = client
        .find("people")
        .filter(r#"city = "Oslo" AND age > 30"#)
        .page()
        .await
        .unwrap_err();
    match e {
        Error::InvalidArgument(m) => {
            assert!(
                m.contains("city (no index)") && m.contains("CREATE INDEX"),
                "{m}"
            )
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let found = client
        .find("people")
        .filter(r#"city = "Oslo" AND age > 30"#)
        .allow_filtering()
        .limit(10_000)
        .all()
        .await
        .unwrap();
    assert_eq!(
        keys_of(&found),
        brute_force(&docs, r#"city = "Oslo" AND age > 30"#, &indexed)
    );

    // A write is found at once by the index from every node, and a change moves it.
    let other = cluster.nodes[2].client().await;
    let read = client.get("people", "k0003").await.unwrap();
    client
        .put_with(
            "people",
            "k0003",
            &json!({"age": 1000}),
            &ringdb_client::WriteOptions::new().context(read.context),
        )
        .await
        .unwrap();
    let top = other
        .find("people")
        .filter("age >= 1000")
        .all()
        .await
        .unwrap();
    assert_eq!(keys_of(&top), ["k0003"]);
    let old_age = docs[3].1["age"].clone();
    let at_old = other
        .find("people")
        .filter(&format!("age = {old_age}"))
        .limit(10_000)
        .all()
        .await
        .unwrap();
    assert!(
        !keys_of(&at_old).contains(&"k0003".to_string()),
        "the old entry is gone"
    );

    // Raw gRPC, as another language calls it: no allow_filtering for an indexed path.
    let mut raw = ClientClient::connect(format!("http://{}", cluster.nodes[1].address))
        .await
        .unwrap();
    let cond = |path: &str, op: ConditionOp, operand: &str| QueryCondition {
        path: path.into(),
        op: op as i32,
        operands: vec![operand.as_bytes().to_vec().into()],
    };
    let mut stream = raw
        .find(FindRequest {
            collection: "people".into(),
            conditions: vec![cond("age", ConditionOp::Lt, "24")],
            limit: Some(10_000),
            consistency: ConsistencyLevel::Quorum as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(p) = stream.message().await.unwrap() {
        got.extend(p.documents.into_iter().map(|d| d.key));
    }
    let mut docs_now = docs.clone();
    docs_now[3].1 = json!({"age": 1000});
    assert_eq!(got, brute_force(&docs_now, "age < 24", &indexed));
    let n = raw
        .count(CountRequest {
            collection: "people".into(),
            conditions: vec![cond("tags[]", ConditionOp::Eq, "\"t0\"")],
            consistency: ConsistencyLevel::One as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(
        n as usize,
        brute_force(&docs_now, r#"tags[] = "t0""#, &indexed).len()
    );
    let e = raw
        .find(FindRequest {
            collection: "people".into(),
            conditions: vec![cond("city", ConditionOp::Eq, "\"Lima\"")],
            ..Default::default()
        })
        .await;
    let e = match e {
        Err(e) => e,
        Ok(r) => r.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("city (no index)"), "{}", e.message());

    // ringsh, with the contract's JSON.
    let host = &cluster.nodes[0].address;
    let out = ringsh_json(
        host,
        r#"FIND people WHERE age = 31 LIMIT 1000; COUNT people WHERE tags[] = "t5" CONSISTENCY ONE"#,
    );
    let keys: Vec<String> = out[0]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        brute_force(&docs_now, "age = 31", &indexed),
        "{out:?}"
    );
    assert_eq!(
        out[1]["count"],
        json!(brute_force(&docs_now, r#"tags[] = "t5""#, &indexed).len()),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_an_index_builds_queries_are_refused_or_fully_scanned_never_partial() {
    // 1,500 documents per node at 100 keys/s: each node's build takes 15 s at least.
    let cluster = Cluster::start_with(3, &["--index-build-keys-per-sec", "100"]).await;
    let client = cluster.client().await;
    let docs = load(&client, "late", 1_500).await;
    client.create_index("late", "age", false).await.unwrap();
    let conditions = "age >= 40 AND age < 45";
    let by_key = brute_force(&docs, conditions, &[]);
    let by_age = brute_force(&docs, conditions, &["age"]);
    assert_ne!(
        by_key, by_age,
        "the two orders differ, so the test tells them apart"
    );

    // While it builds: refused with the progress, and with ALLOW FILTERING complete (a
    // full scan in key order). At least the first try falls inside the build.
    let mut refusals = 0;
    loop {
        let listed = client.indexes(Some("late")).await.unwrap();
        let ready = !listed.is_empty() && listed.iter().all(|i| i.state == IndexState::Ready);
        if ready {
            break;
        }
        match client
            .find("late")
            .filter(conditions)
            .limit(10_000)
            .all()
            .await
        {
            Err(Error::InvalidArgument(m)) => {
                assert!(
                    m.contains("age (its index is still building; slowest node n")
                        && (m.contains("keys indexed") || m.contains("not heard of the index"))
                        && m.contains("ALLOW FILTERING"),
                    "{m}"
                );
                refusals += 1;
                let scanned = client
                    .find("late")
                    .filter(conditions)
                    .allow_filtering()
                    .limit(10_000)
                    .all()
                    .await
                    .unwrap();
                let got = keys_of(&scanned);
                // The index may have become ready between the two queries.
                assert!(got == by_key || got == by_age, "a complete answer: {got:?}");
                let count = client
                    .count("late")
                    .filter(conditions)
                    .allow_filtering()
                    .consistency(Consistency::One)
                    .run()
                    .await
                    .unwrap();
                assert_eq!(count.count, by_key.len() as u64);
            }
            Ok(found) => assert_eq!(keys_of(&found), by_age, "answered only once ready"),
            Err(e) => panic!("unexpected error while building: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        refusals > 0,
        "the build is paced to last 15 s: a query fell inside it"
    );

    // Ready: the index answers, completely, in its order, without ALLOW FILTERING.
    let found = client
        .find("late")
        .filter(conditions)
        .limit(10_000)
        .all()
        .await
        .unwrap();
    assert_eq!(keys_of(&found), by_age);
    let count = client
        .count("late")
        .filter(conditions)
        .consistency(Consistency::One)
        .run()
        .await
        .unwrap();
    assert_eq!(count.count, by_age.len() as u64);
}
