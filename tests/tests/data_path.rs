//! The core data path through the public client, against real `ringdb` processes.

use std::time::Duration;

use ringdb_client::{Consistency, Error, ReadOptions, WriteOptions};
use ringdb_tests::{wait_until, Cluster};
use serde_json::json;

fn at(c: Consistency) -> ReadOptions {
    ReadOptions::new().consistency(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_write_then_quorum_read_from_every_coordinator() {
    let cluster = Cluster::start(3).await;
    for writer in &cluster.nodes {
        let key = format!("written-via-{}", writer.id);
        let doc = json!({"writer": writer.id, "n": 1});
        writer
            .client()
            .await
            .put("users", &key, &doc)
            .await
            .unwrap();
        for reader in &cluster.nodes {
            let r = reader
                .client()
                .await
                .get_with("users", &key, &at(Consistency::Quorum))
                .await
                .unwrap();
            assert_eq!(r.values, vec![doc.clone()], "{key} read via {}", reader.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_node_down_quorum_works_and_all_is_unavailable_without_writing() {
    let mut cluster = Cluster::start(3).await;
    cluster.node("n3").kill9();
    cluster.wait_all_up().await; // n1 and n2 now see n3 down
    let client = cluster.nodes[0].client().await;

    client
        .put("c", "q", &json!({"v": 1}))
        .await
        .expect("QUORUM write with 2 of 3 up");
    let r = client
        .get_with("c", "q", &at(Consistency::Quorum))
        .await
        .expect("QUORUM read with 2 of 3 up");
    assert_eq!(r.values, vec![json!({"v": 1})]);

    let all = WriteOptions::new().consistency(Consistency::All);
    match client
        .put_with("c", "all-write", &json!({"v": 2}), &all)
        .await
    {
        Err(Error::Unavailable(m)) => {
            assert!(m.contains("n3"), "message names the down replica: {m}")
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    match client.get_with("c", "q", &at(Consistency::All)).await {
        Err(Error::Unavailable(_)) => {}
        other => panic!("expected UNAVAILABLE for an ALL read, got {other:?}"),
    }
    // Nothing was written anywhere by the refused ALL write.
    for n in cluster.nodes.iter().filter(|n| n.is_running()) {
        assert!(
            n.local_versions("c", "all-write").await.is_empty(),
            "{} holds the refused write",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_writes_are_siblings_and_a_contextual_write_resolves_them() {
    let cluster = Cluster::start(3).await;
    let (a, b) = (
        cluster.nodes[0].client().await,
        cluster.nodes[1].client().await,
    );
    a.put("carts", "k", &json!({"items": ["apple"]}))
        .await
        .unwrap();
    b.put("carts", "k", &json!({"items": ["pear"]}))
        .await
        .unwrap();
    let read = a
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(
        read.values.len(),
        2,
        "two writes without context are both kept: {:?}",
        read.values
    );
    assert!(
        read.values.contains(&json!({"items": ["apple"]}))
            && read.values.contains(&json!({"items": ["pear"]}))
    );

    let opts = WriteOptions::new().context(read.context.clone());
    b.put_with("carts", "k", &json!({"items": ["apple", "pear"]}), &opts)
        .await
        .unwrap();
    let after = a
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(after.values, vec![json!({"items": ["apple", "pear"]})]);

    // A context from an older read does not hide a version written since.
    let stale = after.context.clone();
    a.put("carts", "k", &json!({"items": ["plum"]}))
        .await
        .unwrap();
    b.put_with(
        "carts",
        "k",
        &json!({"items": ["fig"]}),
        &WriteOptions::new().context(stale),
    )
    .await
    .unwrap();
    let last = a
        .get_with("carts", "k", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(
        last.values.len(),
        2,
        "plum was not seen by the fig write, so both remain: {:?}",
        last.values
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_at_all_repairs_a_replica_that_missed_a_write() {
    // No hints, so only the read can bring n3 up to date.
    let mut cluster = Cluster::start_with(3, &["--max-hints-per-target", "0"]).await;
    cluster.node("n3").kill9();
    cluster.wait_all_up().await;
    let client = cluster.nodes[0].client().await;
    client
        .put("c", "missed", &json!({"v": "while n3 was down"}))
        .await
        .unwrap();

    cluster.node("n3").restart().await;
    cluster.wait_all_up().await;
    let n3 = cluster.nodes[2].client().await;
    assert!(
        n3.local_get("c", "missed").await.unwrap().values.is_empty(),
        "n3 missed the write"
    );

    let read = client
        .get_with("c", "missed", &at(Consistency::All))
        .await
        .unwrap();
    assert_eq!(read.values, vec![json!({"v": "while n3 was down"})]);
    let want = read.context.clone();
    wait_until(Duration::from_secs(10), "read repair of n3", || {
        let (n3, want) = (n3.clone(), want.clone());
        async move {
            let local = n3.local_get("c", "missed").await.unwrap();
            local.values == vec![json!({"v": "while n3 was down"})] && local.context == want
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_missed_by_a_down_node_reach_it_through_hints_after_restart() {
    let mut cluster = Cluster::start(3).await;
    cluster.node("n3").kill9();
    cluster.wait_all_up().await;
    let client = cluster.client().await;
    for i in 0..50 {
        client
            .put("hinted", &format!("k{i}"), &json!({"i": i}))
            .await
            .unwrap();
    }
    // STATUS shows other nodes' counts as of their last exchange: wait for them to settle.
    let n1 = cluster.nodes[0].client().await;
    wait_until(Duration::from_secs(10), "hints for n3 in STATUS", || {
        let n1 = n1.clone();
        async move {
            n1.status()
                .await
                .map(|s| s.nodes.iter().map(|n| n.hints).sum::<u64>() >= 50)
                .unwrap_or(false)
        }
    })
    .await;

    cluster.node("n3").restart().await;
    let n3 = cluster.nodes[2].client().await;
    wait_until(Duration::from_secs(20), "hints replayed to n3", || {
        let n3 = n3.clone();
        async move {
            for i in 0..50 {
                if n3
                    .local_get("hinted", &format!("k{i}"))
                    .await
                    .map(|r| r.values.len())
                    .ok()
                    != Some(1)
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    wait_until(Duration::from_secs(10), "no hints left", || {
        let n1 = n1.clone();
        async move {
            n1.status()
                .await
                .map(|s| s.nodes.iter().all(|n| n.hints == 0))
                .unwrap_or(false)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_every_acknowledging_node() {
    // sled's own background flush is pushed out of the way: only the acknowledgement
    // path's fsync can have saved these writes.
    let mut cluster = Cluster::start_with(3, &["--background-flush-ms", "600000"]).await;
    let client = cluster.client().await;
    let mut acked = Vec::new();
    let writes = (0..100).map(|i| {
        let client = client.clone();
        async move {
            let doc = json!({"i": i, "pad": "x".repeat(200)});
            let r = client.put("durable", &format!("k{i}"), &doc).await.unwrap();
            (format!("k{i}"), doc, r.acknowledged_by)
        }
    });
    acked.extend(futures::future::join_all(writes).await);
    // Crash every node at once: nothing gets a chance to flush on the way down.
    for n in cluster.nodes.iter_mut() {
        n.kill9();
    }
    for n in cluster.nodes.iter_mut() {
        n.restart().await;
    }
    for (key, doc, by) in &acked {
        assert!(
            by.len() >= 2,
            "QUORUM means at least two acknowledgements: {by:?}"
        );
        for id in by {
            let node = cluster.nodes.iter().find(|n| &n.id == id).unwrap();
            let local = node.client().await.local_get("durable", key).await.unwrap();
            assert_eq!(
                local.values,
                vec![doc.clone()],
                "{key} acknowledged by {id} but lost after kill -9"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_makes_all_time_out_with_the_count_of_acknowledgements() {
    let mut cluster = Cluster::start(3).await;
    let client = cluster.nodes[0].client().await;
    // Frozen, not dead: the failure detector still believes it up for a moment, so the
    // coordinator sends to it and waits.
    cluster.node("n3").pause();
    let opts = WriteOptions::new()
        .consistency(Consistency::All)
        .timeout(Duration::from_millis(300));
    let r = client.put_with("c", "slow", &json!({"v": 1}), &opts).await;
    cluster.node("n3").resume();
    // The harness marks a peer down after 1 s of silence, so a 300 ms request must time out.
    match r {
        Err(Error::Timeout(m)) => assert!(
            m.contains("2 of 3 replicas acknowledged") && m.contains("n3"),
            "{m}"
        ),
        other => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_and_writes_nothing() {
    let cluster = Cluster::start_with(
        3,
        &["--max-document-bytes", "1000", "--replication-factor", "2"],
    )
    .await;
    let client = cluster.nodes[0].client().await;
    let expect_invalid =
        |r: Result<ringdb_client::WriteResult, Error>, what: &str, needle: &str| match r {
            Err(Error::InvalidArgument(m)) => assert!(
                m.contains(needle),
                "{what}: message {m:?} should mention {needle:?}"
            ),
            other => panic!("{what}: expected INVALID_ARGUMENT, got {other:?}"),
        };
    let opts = WriteOptions::new();
    expect_invalid(
        client.put("c", "", &json!({"a": 1})).await,
        "empty key",
        "empty",
    );
    expect_invalid(
        client.put("c", &"k".repeat(1025), &json!({"a": 1})).await,
        "long key",
        "1025",
    );
    expect_invalid(
        client.put("c", "k", &json!([1, 2])).await,
        "array",
        "object",
    );
    expect_invalid(
        client.put_raw("c", "k", "{\"a\":".into(), &opts).await,
        "invalid JSON",
        "JSON",
    );
    expect_invalid(
        client
            .put("c", "k", &json!({"big": "x".repeat(2000)}))
            .await,
        "too big",
        "limit",
    );
    expect_invalid(
        client
            .put_with(
                "c",
                "k",
                &json!({"a": 1}),
                &WriteOptions::new().context(ringdb_client::Context::from_token("garbage!")),
            )
            .await,
        "bad context",
        "context",
    );
    expect_invalid(
        client
            .put_with(
                "c",
                "k",
                &json!({"a": 1}),
                &WriteOptions::new().consistency(Consistency::Three),
            )
            .await,
        "level above N",
        "replication factor is 2",
    );
    expect_invalid(
        client.put("bad name", "k", &json!({"a": 1})).await,
        "bad collection",
        "collection",
    );
    match client.get_with("c", "k", &at(Consistency::Any)).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("ANY")),
        other => panic!("ANY read: {other:?}"),
    }
    // An unknown level number straight on the wire.
    let mut raw = ringdb_proto::v1::client_client::ClientClient::connect(format!(
        "http://{}",
        cluster.nodes[0].address
    ))
    .await
    .unwrap();
    let status = raw
        .get(ringdb_proto::v1::GetRequest {
            collection: "c".into(),
            key: "k".into(),
            consistency: 42,
            timeout_ms: 0,
            trace: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    for n in &cluster.nodes {
        assert!(
            n.local_versions("c", "k").await.is_empty(),
            "{} stored rejected input",
            n.id
        );
    }
    // The node is still fine.
    client.put("c", "k", &json!({"ok": true})).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_hide_the_document_and_a_later_write_with_the_context_revives_it() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    client.put("c", "d", &json!({"v": 1})).await.unwrap();
    let del = client.delete("c", "d").await.unwrap();
    let read = client
        .get_with("c", "d", &at(Consistency::All))
        .await
        .unwrap();
    assert!(
        read.values.is_empty(),
        "deleted document reads as not found"
    );
    assert!(
        !read.context.is_empty(),
        "but the tombstone's context is returned"
    );
    for n in &cluster.nodes {
        wait_until(
            Duration::from_secs(5),
            "tombstone on every replica",
            || async {
                let versions = n.local_versions("c", "d").await;
                !versions.is_empty() && versions.iter().all(Option::is_none)
            },
        )
        .await;
    }
    client
        .put_with(
            "c",
            "d",
            &json!({"v": 2}),
            &WriteOptions::new().context(del.context),
        )
        .await
        .unwrap();
    assert_eq!(
        client.get("c", "d").await.unwrap().values,
        vec![json!({"v": 2})]
    );
    // Deleting what does not exist is fine and writes nothing.
    client.delete("c", "never-existed").await.unwrap();
}
