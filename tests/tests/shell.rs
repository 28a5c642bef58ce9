//! `ringsh` against a real cluster: the JSON output contract scripts rely on.

use std::process::Command;

use ringdb_tests::{binary, Cluster};
use serde_json::{json, Value};

fn ringsh(host: &str, args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(binary("ringsh"))
        .args(["--host", host, "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_follows_the_contract() {
    let cluster = Cluster::start(3).await;
    let host = cluster.nodes[1].address.clone();
    let (code, out) = ringsh(
        &host,
        &["-e", "PUT users alice {\"name\": \"Alice\"}; PUT users alice {\"name\": \"Al\"}; GET users alice CONSISTENCY ALL; GET users nobody; STATUS; CONSISTENCY ONE; CONSISTENCY"],
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0]["ok"], true);
    assert!(out[0]["context"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(out[2]["key"], "alice");
    let values = out[2]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "two blind PUTs are siblings: {values:?}");
    assert_eq!(
        out[3],
        json!({"key": "nobody", "values": [], "context": ""})
    );
    let nodes = out[4]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        for field in [
            "id",
            "address",
            "up",
            "status",
            "ownership",
            "keys",
            "bytes",
            "hints",
        ] {
            assert!(n.get(field).is_some(), "STATUS node lacks {field}: {n}");
        }
        assert_eq!(n["up"], true);
        assert_eq!(n["status"], "NORMAL");
    }
    let owned: f64 = nodes.iter().map(|n| n["ownership"].as_f64().unwrap()).sum();
    assert!((owned - 1.0).abs() < 1e-6, "ownership sums to 1: {owned}");
    assert_eq!(out[6]["consistency"], "ONE");

    // Resolve the siblings with the context the GET printed.
    let ctx = out[2]["context"].as_str().unwrap().to_string();
    let script = format!("PUT users alice {{\"name\": \"Alice\"}} CONTEXT {ctx}\nGET users alice CONSISTENCY ALL\nGET users alice LOCAL");
    let (code, out) = ringsh(&host, &["-e", &script]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[1]["values"], json!([{"name": "Alice"}]));
    assert!(
        out[2]["values"].is_array(),
        "GET LOCAL has the GET shape: {}",
        out[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_hold_multi_line_documents_and_failures_set_the_exit_status() {
    let cluster = Cluster::start(3).await;
    let host = cluster.nodes[0].address.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.rsh");
    std::fs::write(
        &file,
        "-- a comment\nPUT docs d1 {\n  \"title\": \"multi; line\",\n  \"tags\": [\"a\", \"b\"]\n}\nGET docs d1\nPUT docs d2 [1]\nGET docs d1 CONSISTENCY QUORUM\n",
    )
    .unwrap();
    let (code, out) = ringsh(&host, &["-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "one statement failed: {out:?}");
    assert_eq!(out.len(), 4);
    assert_eq!(
        out[1]["values"],
        json!([{"title": "multi; line", "tags": ["a", "b"]}])
    );
    assert_eq!(out[2]["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(out[3]["values"][0]["title"], "multi; line");
}
