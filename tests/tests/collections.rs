//! Collections with real processes: per-collection replication, creation through the admin
//! API and the `ringdb admin` command line, auto-creation on first write, and the schema
//! spreading to every node by gossip.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::{Client, Consistency, WriteOptions};
use ringdb_tests::{binary, wait_until, Cluster};
use serde_json::json;

/// How many of the cluster's nodes hold `key` in their own replica.
async fn copies(clients: &[Client], collection: &str, key: &str) -> usize {
    let mut n = 0;
    for c in clients {
        if !c
            .local_get(collection, key)
            .await
            .unwrap()
            .values
            .is_empty()
        {
            n += 1;
        }
    }
    n
}

/// Wait until every node lists `name` with `replication` replicas.
async fn wait_everywhere(clients: &[Client], name: &str, replication: u32) {
    for (i, c) in clients.iter().enumerate() {
        wait_until(
            Duration::from_secs(20),
            &format!("node {i} to list {name} with N={replication}"),
            || {
                let c = c.clone();
                async move {
                    c.collections().await.is_ok_and(|(list, _)| {
                        list.iter()
                            .any(|x| x.name == name && x.replication == replication)
                    })
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_collection_keeps_its_own_replication_factor() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let per_node: Vec<Client> =
        futures::future::join_all(cluster.nodes.iter().map(|n| n.client())).await;

    let created = client.create_collection("single", 1, false).await.unwrap();
    assert_eq!(created.replication, 1);
    let dup = client
        .create_collection("single", 2, false)
        .await
        .unwrap_err();
    assert_eq!(dup.code(), "ALREADY_EXISTS", "{dup}");
    let same = client.create_collection("single", 2, true).await.unwrap();
    assert_eq!(
        same.replication, 1,
        "IF NOT EXISTS keeps the first definition"
    );
    let bad = client.create_collection("x", 16, false).await.unwrap_err();
    assert_eq!(bad.code(), "INVALID_ARGUMENT", "{bad}");
    wait_everywhere(&per_node, "single", 1).await;

    // A write to an unknown collection creates it with the cluster default (3).
    client.put("auto", "k", &json!({"v": 1})).await.unwrap();
    wait_everywhere(&per_node, "auto", 3).await;
    let (_, default) = client.collections().await.unwrap();
    assert_eq!(default, 3);

    // N = 1: each document lives on exactly one node; N = 3: on all three.
    let all = WriteOptions::new().consistency(Consistency::All);
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    futures::stream::iter(&keys)
        .for_each_concurrent(16, |k| {
            let (client, all) = (client.clone(), all.clone());
            async move {
                client
                    .put_with("single", k, &json!({"k": k}), &all)
                    .await
                    .unwrap();
                client
                    .put_with("auto", k, &json!({"k": k}), &all)
                    .await
                    .unwrap();
            }
        })
        .await;
    let mut holders = [0usize; 3];
    for k in &keys {
        assert_eq!(copies(&per_node, "single", k).await, 1, "single/{k}");
        assert_eq!(copies(&per_node, "auto", k).await, 3, "auto/{k}");
        for (i, c) in per_node.iter().enumerate() {
            if !c.local_get("single", k).await.unwrap().values.is_empty() {
                holders[i] += 1;
            }
        }
    }
    assert!(
        holders.iter().all(|&h| h > 0),
        "N=1 data is spread over every node, not kept on one: {holders:?}"
    );

    // A level that N = 1 can never meet is refused as bad input, not as unavailable.
    let two = WriteOptions::new().consistency(Consistency::Two);
    let refused = client
        .put_with("single", "k0", &json!({}), &two)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "INVALID_ARGUMENT", "{refused}");
    assert!(
        refused.message().contains("replication factor is 1"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_creates_and_lists_collections_and_shows_status() {
    let cluster = Cluster::start(2).await;
    let host = cluster.nodes[1].address.clone();
    let ringdb = |args: &[&str]| {
        let out = Command::new(binary("ringdb"))
            .args(args)
            .args(["--host", &host])
            .output()
            .expect("run ringdb");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = ringdb(&["admin", "create-collection", "events", "--replication", "2"]);
    assert!(ok, "create-collection failed: {out} {err}");
    let (ok, _, err) = ringdb(&["admin", "create-collection", "events"]);
    assert!(!ok, "a second create must fail");
    assert!(err.contains("exists"), "the error says why: {err}");
    let (ok, _, err) = ringdb(&["admin", "create-collection", "events", "--if-not-exists"]);
    assert!(ok, "--if-not-exists succeeds: {err}");

    // The first node learns of it by gossip.
    let first = cluster.nodes[0].client().await;
    wait_everywhere(&[first], "events", 2).await;
    let (ok, out, err) = ringdb(&["admin", "collections"]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.contains("events") && l.contains('2')),
        "collections lists events with N=2:\n{out}"
    );

    let (ok, out, err) = ringdb(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value =
        serde_json::from_str(out.trim()).expect("status --json is JSON");
    let nodes = status["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), 2, "{status}");
    assert!(
        nodes
            .iter()
            .all(|n| n["up"] == json!(true) && n["status"] == json!("NORMAL")),
        "{status}"
    );
    let (ok, out, _) = ringdb(&["status"]);
    assert!(ok);
    assert!(
        out.lines().filter(|l| l.starts_with("UN ")).count() == 2,
        "two up-and-normal rows:\n{out}"
    );

    // Bad input: an unreachable host is a clear error and a non-zero exit, not a panic.
    let out = Command::new(binary("ringdb"))
        .args(["status", "--host", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
