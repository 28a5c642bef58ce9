//! `ringdb-bench queryload` and `query` against a real 3-node cluster: the load leaves the
//! indexes ready, every query kind answers right, and a wrong answer is counted as an error.

use std::process::Command;

use ringdb_tests::Cluster;
use serde_json::Value;

/// Runs `ringdb-bench <args>`; its last stdout line as JSON.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringdb-bench"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ringdb-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_data_answers_every_kind_right_and_a_wrong_count_is_an_error() {
    let cluster = Cluster::start(3).await;
    let hosts = cluster
        .nodes
        .iter()
        .map(|n| n.address.clone())
        .collect::<Vec<_>>()
        .join(",");
    let load = bench(&["queryload", "--hosts", &hosts, "--records", "300"]);
    assert_eq!(load["records"], 300);
    assert_eq!(load["indexes"].as_array().unwrap().len(), 4, "{load}");
    let run = |kind: &str, records: &str, level: &str| {
        bench(&[
            "query",
            "--hosts",
            &hosts,
            "--records",
            records,
            "--kind",
            kind,
            "--duration",
            "1",
            "--concurrency",
            "2",
            "--read-consistency",
            level,
            "--allow-filtering",
        ])
    };
    for (kind, level) in [
        ("eq10", "QUORUM"),
        ("eq100", "QUORUM"),
        ("range", "QUORUM"),
        ("count", "ONE"),
    ] {
        let r = run(kind, "300", level);
        assert_eq!(r["errors"], 0, "{kind}: {r}");
        assert!(r["ops"].as_u64().unwrap() > 0, "{kind}: {r}");
    }
    // Told the data set has 400 documents, COUNT expects another number: every answer is
    // wrong, and each is an error, not a latency.
    let wrong = run("count", "400", "ONE");
    assert_eq!(wrong["ops"], 0, "{wrong}");
    assert!(
        wrong["errors_by_code"]["WRONG_ROWS"].as_u64().unwrap() > 0,
        "{wrong}"
    );
    assert!(
        wrong["wrong_answers"][0]
            .as_str()
            .unwrap()
            .contains("60 count, expected 80"),
        "{wrong}"
    );
}
