//! `TRACING ON` in `ringsh --format json` against a real 3-node cluster: the trace names
//! the coordinator and the replicas that answered, the hint written for a node killed with
//! kill -9, and the replica a read at ALL repaired after it missed a write.

use std::process::Command;
use std::time::Duration;

use ringdb_client::{ReadOptions, WriteOptions};
use ringdb_tests::{binary, wait_until, Cluster};
use serde_json::{json, Value};

/// Run `ringsh --host HOST --format json -e SCRIPT`; returns its exit code and lines.
fn ringsh(host: &str, script: &str) -> (i32, Vec<Value>) {
    let out = Command::new(binary("ringsh"))
        .args(["--host", host, "--format", "json", "-e", script])
        .env("RINGSH_HISTORY", "")
        .output()
        .expect("run ringsh");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// The event of `node` as a primary replica (not the forwarding hop).
fn event<'a>(trace: &'a Value, node: &str) -> &'a Value {
    trace["events"]
        .as_array()
        .and_then(|es| {
            es.iter()
                .find(|e| e["node"] == node && e["role"] != "forwarded")
        })
        .unwrap_or_else(|| panic!("no event for {node} in {trace:#}"))
}

fn sorted(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_name_the_coordinator_the_replicas_that_answered_and_hints_for_a_killed_node() {
    let mut cluster = Cluster::start_with(3, &["--aae-interval-secs", "0"]).await;
    let host = cluster.nodes[0].address.clone();
    let (code, out) = ringsh(
        &host,
        "TRACING ON; PUT docs k {\"v\": 1} CONSISTENCY ALL; GET docs k CONSISTENCY ALL; TRACING; TRACING OFF; GET docs k",
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0], json!({"ok": true, "tracing": true}));

    let put = &out[1]["trace"];
    assert_eq!(out[1]["ok"], true);
    assert_eq!(put["operation"], "write");
    let coordinator = put["coordinator"].as_str().expect("a coordinator");
    assert!(["n1", "n2", "n3"].contains(&coordinator), "{put:#}");
    assert_eq!(
        put["replicas"][0]["node"], coordinator,
        "token-aware routing sends the write to the key's first replica: {put:#}"
    );
    assert_eq!(event(put, coordinator)["role"], "local");
    assert_eq!(sorted(&put["answered"]), ["n1", "n2", "n3"], "ALL: {put:#}");
    assert_eq!(put["consistency"], "ALL");
    assert_eq!(put["required"], 3);
    assert_eq!(put["hinted_for"], json!([]));

    let get = &out[2]["trace"];
    assert_eq!(out[2]["values"], json!([{"v": 1}]));
    assert_eq!(get["operation"], "read");
    assert_eq!(sorted(&get["answered"]), ["n1", "n2", "n3"], "{get:#}");
    assert_eq!(get["replies_differed"], false);
    assert_eq!(get["read_repaired"], json!([]));
    let digests: Vec<&Value> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| &event(get, n)["digest"])
        .collect();
    assert!(digests[0].is_string(), "{get:#}");
    assert!(digests.iter().all(|d| *d == digests[0]), "{get:#}");
    for n in ["n1", "n2", "n3"] {
        assert!(event(get, n)["ms"].as_f64().is_some(), "{get:#}");
    }

    assert_eq!(out[3], json!({"tracing": true}));
    assert_eq!(out[4], json!({"ok": true, "tracing": false}));
    assert!(
        out[5].get("trace").is_none(),
        "no trace once tracing is off: {}",
        out[5]
    );
    assert_eq!(
        out[5].as_object().map(|o| o.len()),
        Some(3),
        "the contract shape: {}",
        out[5]
    );

    // From Rust: a trace only when asked for.
    let client = cluster.client().await;
    let plain = client.get("docs", "k").await.unwrap();
    assert!(plain.trace.is_none(), "untraced reads carry no trace");
    let traced = client
        .get_with("docs", "k", &ReadOptions::new().trace(true))
        .await
        .unwrap();
    let t = traced.trace.expect("a trace when asked");
    assert_eq!(Some(t.coordinator.as_str()), traced.coordinator.as_deref());
    assert_eq!(t.replicas.len(), 3);
    assert!(t.answered().len() >= 2, "{t:#?}");
    let w = client
        .put_with("docs", "w", &json!({}), &WriteOptions::new().trace(true))
        .await
        .unwrap();
    assert_eq!(w.trace.map(|t| t.operation), Some("write".to_string()));

    // kill -9 one node: a traced write names it as down and hinted.
    cluster.node("n3").kill9();
    cluster.wait_all_up().await;
    let (code, out) = ringsh(&host, "TRACING ON; PUT docs k2 {\"v\": 2}; GET docs k2");
    assert_eq!(code, 0, "{out:?}");
    let put = &out[1]["trace"];
    assert_eq!(put["hinted_for"], json!(["n3"]), "{put:#}");
    let n3 = event(put, "n3");
    assert_eq!(n3["outcome"], "not-asked");
    assert_eq!(n3["detail"], "down; hint stored");
    let down: Vec<&Value> = put["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["up"] == false)
        .collect();
    assert_eq!(down, vec![&json!({"node": "n3", "up": false})]);
    assert!(!sorted(&put["answered"]).contains(&"n3".to_string()));

    let get = &out[2]["trace"];
    assert_eq!(
        sorted(&get["answered"]).len(),
        2,
        "QUORUM of the two live: {get:#}"
    );
    assert_eq!(event(get, "n3")["detail"], "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_at_all_names_the_replica_that_missed_a_write_as_read_repaired() {
    let mut cluster = Cluster::start_with(
        3,
        &["--max-hints-per-target", "0", "--aae-interval-secs", "0"],
    )
    .await;
    let host = cluster.nodes[0].address.clone();
    cluster.node("n3").kill9();
    cluster.wait_all_up().await;
    let (code, out) = ringsh(&host, "TRACING ON; PUT docs r {\"v\": 1}");
    assert_eq!(code, 0, "{out:?}");
    let put = &out[1]["trace"];
    assert_eq!(put["hinted_for"], json!([]), "hints are off: {put:#}");
    assert!(
        event(put, "n3")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("down; no hint stored")),
        "{put:#}"
    );

    cluster.node("n3").restart().await;
    cluster.wait_all_up().await;
    let n3 = cluster.node("n3").address.clone();
    let (_, local) = ringsh(&n3, "GET docs r LOCAL");
    assert_eq!(local[0]["values"], json!([]), "n3 missed the write");

    let (code, out) = ringsh(&host, "TRACING ON; GET docs r CONSISTENCY ALL");
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[1]["values"], json!([{"v": 1}]));
    let get = &out[1]["trace"];
    assert_eq!(get["replies_differed"], true, "{get:#}");
    assert_eq!(get["read_repaired"], json!(["n3"]), "{get:#}");
    assert_eq!(event(get, "n3")["digest"], Value::Null, "n3 held nothing");
    assert_eq!(event(get, "n1")["digest"], event(get, "n2")["digest"]);

    wait_until(Duration::from_secs(10), "n3 repaired by the read", || {
        let n3 = n3.clone();
        async move {
            let (_, local) = ringsh(&n3, "GET docs r LOCAL");
            local[0]["values"] == json!([{"v": 1}])
        }
    })
    .await;
}
