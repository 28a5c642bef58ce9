//! Secondary indexes with real processes: definitions through raw gRPC, `ringdb admin` and
//! `ringsh` spread to every node, and every node's index holds exactly the entries of the
//! documents it stores; a node killed in the middle of a build finishes it after its
//! restart; dropping removes the index everywhere. (A build on a loaded cluster under
//! write load is `index_build.rs`.)

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::IndexState;
use ringdb_proto::v1::{CreateIndexRequest, DropIndexRequest, LocalIndexScanRequest};
use ringdb_tests::indexes::{admin, assert_exact, listed, wait_listed, wait_settled};
use ringdb_tests::{binary, run_ringdb as ringdb, wait_until, Cluster};
use serde_json::{json, Value};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_definitions_spread_through_every_surface_and_drop_everywhere() {
    let cluster = Cluster::start(3).await;
    let (n1, n2, n3) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let mut a1 = admin(n1).await;
    let create = |collection: &str, path: &str, if_not_exists| CreateIndexRequest {
        collection: collection.into(),
        path: path.into(),
        if_not_exists,
    };

    // Bad input is INVALID_ARGUMENT, with the path parser's column.
    let bad = a1
        .create_index(create("users", "a..b", false))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("column 3"), "{}", bad.message());
    let bad = a1
        .create_index(create("no spaces", "a", false))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

    // Raw gRPC: an index on a collection that does not exist creates the collection.
    let r = a1
        .create_index(create("users", "\"age\"", false))
        .await
        .unwrap()
        .into_inner();
    assert!(r.created_collection);
    assert_eq!(r.index.unwrap().path, "age", "stored canonically");
    let dup = a1
        .create_index(create("users", "age", false))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists, "{dup:?}");
    let again = a1.create_index(create("users", "age", true)).await.unwrap();
    assert!(!again.into_inner().created_collection);
    for node in &cluster.nodes {
        let c = node.client().await;
        wait_until(Duration::from_secs(20), "the collection everywhere", || {
            let c = c.clone();
            async move {
                c.collections()
                    .await
                    .is_ok_and(|(l, _)| l.iter().any(|x| x.name == "users"))
            }
        })
        .await;
    }

    // The command line, through another node.
    let (ok, out, err) = ringdb(
        &n2.address,
        &["admin", "create-index", "users", "address.city"],
    );
    assert!(ok, "create-index: {out} {err}");
    assert!(out.contains("index on users (address.city)"), "{out}");
    let (ok, _, err) = ringdb(
        &n2.address,
        &["admin", "create-index", "users", "address.city"],
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = ringdb(&n2.address, &["admin", "create-index", "users", "tags[0]"]);
    assert!(!ok && err.contains("InvalidArgument"), "{err}");
    wait_listed(
        &cluster,
        &[
            ("users", "address.city", "ready"),
            ("users", "age", "ready"),
        ],
        Duration::from_secs(30),
    )
    .await;
    let (ok, out, err) = ringdb(&n3.address, &["admin", "list-indexes", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(out.trim()).expect("list-indexes --json");
    assert_eq!(
        listed["indexes"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(
        listed["indexes"][0]["nodes"].as_array().map(Vec::len),
        Some(3)
    );

    // Documents written now are indexed on every replica.
    let client = cluster.client().await;
    client
        .put(
            "users",
            "ann",
            &json!({"age": 31, "address": {"city": "Oslo"}}),
        )
        .await
        .unwrap();
    client
        .put("users", "bob", &json!({"age": 25}))
        .await
        .unwrap();
    let keys: BTreeSet<String> = ["ann", "bob"].map(String::from).into();
    wait_settled(&cluster, "users").await;
    for node in &cluster.nodes {
        assert_exact(node, "users", "age", &keys).await;
        assert_exact(node, "users", "address.city", &keys).await;
    }

    // The shell: DESCRIBE INDEXES as the contract's JSON, CREATE and DROP INDEX.
    let out = ringsh_json(&n3.address, "DESCRIBE INDEXES users");
    assert_eq!(
        out,
        [json!({"indexes": [
            {"collection": "users", "path": "address.city", "state": "ready"},
            {"collection": "users", "path": "age", "state": "ready"},
        ]})]
    );
    let out = ringsh_json(
        &n1.address,
        "CREATE INDEX ON users (tags[]); CREATE INDEX ON users (tags[]); DESCRIBE INDEXES nobody",
    );
    assert_eq!(out[0]["ok"], true, "{out:?}");
    assert_eq!(out[0]["index"]["path"], "tags[]");
    assert_eq!(out[1]["error"]["code"], "ALREADY_EXISTS", "{out:?}");
    assert_eq!(out[2], json!({"indexes": []}));
    let out = ringsh_json(
        &n2.address,
        "DROP INDEX ON users (tags[]); DROP INDEX ON users (tags[])",
    );
    assert_eq!(out[0], json!({"ok": true}));
    assert_eq!(out[1]["error"]["code"], "NOT_FOUND", "{out:?}");

    // Dropping through raw gRPC: gone from every node's list and every node's storage.
    let drop = |if_exists| DropIndexRequest {
        collection: "users".into(),
        path: "age".into(),
        if_exists,
    };
    assert!(
        a1.drop_index(drop(false))
            .await
            .unwrap()
            .into_inner()
            .dropped
    );
    let missing = a1.drop_index(drop(false)).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    assert!(
        !a1.drop_index(drop(true))
            .await
            .unwrap()
            .into_inner()
            .dropped
    );
    wait_listed(
        &cluster,
        &[("users", "address.city", "ready")],
        Duration::from_secs(30),
    )
    .await;
    for node in &cluster.nodes {
        let scan = admin(node)
            .await
            .local_index_scan(LocalIndexScanRequest {
                collection: "users".into(),
                path: "age".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(scan.code(), tonic::Code::NotFound, "{}: {scan:?}", node.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_a_build_finishes_it_after_a_restart() {
    let mut cluster = Cluster::start_with(
        1,
        &[
            "--replication-factor",
            "1",
            "--index-build-keys-per-sec",
            "400",
        ],
    )
    .await;
    let client = cluster.nodes[0].client().await;
    futures::stream::iter(0..3_000u64)
        .for_each_concurrent(32, |i| {
            let client = client.clone();
            async move {
                let v = json!({"v": i % 50, "tags": [format!("t{}", i % 3)]});
                client.put("c", &format!("k{i}"), &v).await.expect("load");
            }
        })
        .await;
    client.create_index("c", "tags[]", false).await.unwrap();
    wait_until(Duration::from_secs(60), "the build to be under way", || {
        let client = client.clone();
        async move {
            client
                .indexes(None)
                .await
                .is_ok_and(|l| matches!(l[0].state, IndexState::Building { done, .. } if done > 0))
        }
    })
    .await;
    cluster.node("n1").kill9();
    cluster.node("n1").restart().await;
    let client = cluster.nodes[0].client().await;
    client
        .put("c", "after", &json!({"tags": ["late"]}))
        .await
        .unwrap();
    wait_listed(
        &cluster,
        &[("c", "tags[]", "ready")],
        Duration::from_secs(120),
    )
    .await;
    let mut keys: BTreeSet<String> = (0..3_000).map(|i| format!("k{i}")).collect();
    keys.insert("after".into());
    assert_exact(&cluster.nodes[0], "c", "tags[]", &keys).await;

    // A clean restart keeps the index ready, with the same entries.
    cluster.node("n1").stop();
    cluster.node("n1").restart().await;
    assert_eq!(
        listed(&cluster.nodes[0]).await,
        [("c".to_string(), "tags[]".to_string(), "ready".to_string())]
    );
    assert_exact(&cluster.nodes[0], "c", "tags[]", &keys).await;
}
