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
    assert_eq!(out[3]["key"], "nobody");
    assert_eq!(out[3]["values"], json!([]));
    assert!(
        out[3]["context"].as_str().is_some_and(|c| !c.is_empty()),
        "a not-found read gives a context that covers nothing: {}",
        out[3]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_statements_print_the_contracts_json() {
    let cluster = Cluster::start(3).await;
    let host = cluster.nodes[2].address.clone();
    let (code, out) = ringsh(
        &host,
        &[
            "-e",
            r#"PUT people a {"age": 30, "city": "Oslo"}
PUT people b {"age": 17, "city": "Oslo"}
PUT people c {"age": 45, "city": "Bergen", "tags": ["x"]}
FIND people WHERE age >= 18 ALLOW FILTERING CONSISTENCY ALL
FIND people FIELDS city LIMIT 2
COUNT people WHERE age >= 18 ALLOW FILTERING
AGGREGATE people count(*), avg(age) GROUP BY city
FIND people WHERE age >= 18
COUNT people WHERE age >"#,
        ],
    );
    assert_eq!(code, 1, "the last two statements fail: {out:?}");
    let found = &out[3];
    let keys: Vec<&str> = found["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "c"], "{found}");
    assert_eq!(
        found["documents"][1]["values"],
        json!([{"age": 45, "city": "Bergen", "tags": ["x"]}])
    );
    assert!(found["documents"][0]["context"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(found["next"], Value::Null);
    assert_eq!(
        found.as_object().unwrap().len(),
        2,
        "documents and next only: {found}"
    );
    let first = &out[4];
    assert_eq!(first["documents"][0]["values"], json!([{"city": "Oslo"}]));
    assert_eq!(first["documents"].as_array().unwrap().len(), 2);
    let token = first["next"]
        .as_str()
        .expect("a third document follows")
        .to_string();
    assert_eq!(out[5], json!({"count": 2}));
    assert_eq!(
        out[6],
        json!({"groups": [
            {"group": "Bergen", "values": {"count(*)": 1, "avg(age)": 45.0}},
            {"group": "Oslo", "values": {"count(*)": 2, "avg(age)": 23.5}},
        ]})
    );
    assert_eq!(out[7]["error"]["code"], "INVALID_ARGUMENT");
    let m = out[7]["error"]["message"].as_str().unwrap();
    assert!(m.contains("age") && m.contains("ALLOW FILTERING"), "{m}");
    assert_eq!(out[8]["error"]["code"], "INVALID_ARGUMENT");

    // The token continues the page; tracing adds the query's trace.
    let script = format!(
        "FIND people FIELDS city LIMIT 2 PAGE {token}\nTRACING ON\nCOUNT people CONSISTENCY QUORUM"
    );
    let (code, out) = ringsh(&host, &["-e", &script]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(
        out[0],
        json!({"documents": [{"key": "c", "values": [{"city": "Bergen"}], "context": out[0]["documents"][0]["context"]}], "next": null})
    );
    assert_eq!(out[2]["count"], 3);
    let trace = &out[2]["trace"];
    assert_eq!(trace["operation"], "count");
    assert_eq!(trace["consistency"], "QUORUM");
    assert_eq!(trace["required"], 2);
    assert!(!trace["scans"].as_array().unwrap().is_empty(), "{trace}");
}
