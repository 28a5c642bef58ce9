//! Secondary indexes with real processes: definitions through raw gRPC, `ringdb admin` and
//! `ringsh` spread to every node; an index created on a loaded cluster goes from building to
//! ready while writes keep succeeding, and then every node's index holds exactly the
//! entries of the documents it stores; a node killed in the middle of a build finishes it
//! after its restart; dropping removes the index everywhere.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::{Client, IndexState};
use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::{
    CreateIndexRequest, DropIndexRequest, ListIndexesRequest, LocalIndexScanRequest,
};
use ringdb_query::Path;
use ringdb_tests::{binary, wait_until, Cluster, NodeProc};
use serde_json::{json, Value};
use tonic::transport::Channel;

async fn admin(node: &NodeProc) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", node.address))
        .await
        .expect("admin connection")
}

/// The indexes a node lists, as `(collection, path, state)`.
async fn listed(node: &NodeProc) -> Vec<(String, String, String)> {
    admin(node)
        .await
        .list_indexes(ListIndexesRequest::default())
        .await
        .map(|r| {
            r.into_inner()
                .indexes
                .into_iter()
                .map(|i| (i.collection, i.path, i.state))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until every running node lists exactly `want` (collection, path, state).
async fn wait_listed(cluster: &Cluster, want: &[(&str, &str, &str)], within: Duration) {
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(c, p, s)| (c.to_string(), p.to_string(), s.to_string()))
        .collect();
    for node in cluster.nodes.iter().filter(|n| n.is_running()) {
        wait_until(within, &format!("{} to list {want:?}", node.id), || {
            let want = want.clone();
            async move { listed(node).await == want }
        })
        .await;
    }
}

/// Every entry key of an index on one node (its own replica), paging through it.
async fn local_entries(node: &NodeProc, collection: &str, path: &str) -> BTreeSet<Vec<u8>> {
    let mut admin = admin(node).await;
    let mut out = BTreeSet::new();
    let mut after = Vec::new();
    loop {
        let page = admin
            .local_index_scan(LocalIndexScanRequest {
                collection: collection.into(),
                path: path.into(),
                after: after.clone().into(),
                limit: 10_000,
            })
            .await
            .expect("LocalIndexScan")
            .into_inner();
        let done = page.entries.len() < 10_000;
        if let Some(last) = page.entries.last() {
            after = last.entry.to_vec();
        }
        out.extend(page.entries.into_iter().map(|e| e.entry.to_vec()));
        if done {
            return out;
        }
    }
}

/// The entries an index on `path` should hold on one node: computed from the live values
/// of each key in that node's own replica.
async fn expected_entries(
    node: &NodeProc,
    collection: &str,
    path: &str,
    keys: &BTreeSet<String>,
) -> BTreeSet<Vec<u8>> {
    let client = node.client().await;
    let path = Path::parse(path).unwrap();
    let per_key: Vec<Vec<Vec<u8>>> = futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let (client, path) = (client.clone(), path.clone());
            async move {
                let r = client.local_get(collection, &k).await.expect("LocalGet");
                ringdb_query::index::entries(&path, &k, &r.values)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    per_key.into_iter().flatten().collect()
}

/// Assert a node's index equals what its documents give, printing only the difference.
async fn assert_exact(node: &NodeProc, collection: &str, path: &str, keys: &BTreeSet<String>) {
    let held = local_entries(node, collection, path).await;
    let want = expected_entries(node, collection, path, keys).await;
    let stale: Vec<_> = held.difference(&want).take(3).collect();
    let missing: Vec<_> = want.difference(&held).take(3).collect();
    assert!(
        stale.is_empty() && missing.is_empty(),
        "{}: {} entries, {} expected; {} stale (first {stale:?}), {} missing (first {missing:?})",
        node.id,
        held.len(),
        want.len(),
        held.difference(&want).count(),
        want.difference(&held).count()
    );
    assert!(!want.is_empty(), "{}: the documents give entries", node.id);
}

/// Wait until every node holds the same data in `collection` (equal hash-tree roots), so
/// nothing is still arriving while a test reads replicas one key at a time.
async fn wait_settled(cluster: &Cluster, collection: &str) {
    let clients: Vec<Client> =
        futures::future::join_all(cluster.nodes.iter().map(|n| n.client())).await;
    wait_until(
        Duration::from_secs(120),
        "every replica to hold the same documents",
        || {
            let clients = clients.clone();
            async move {
                let mut roots = Vec::new();
                for c in &clients {
                    let Ok(s) = c.repair_status().await else {
                        return false;
                    };
                    roots.push(s.roots.into_iter().find(|(c, _)| c == collection));
                }
                roots.windows(2).all(|w| w[0] == w[1])
            }
        },
    )
    .await;
}

fn ringdb(host: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("ringdb"))
        .args(args)
        .args(["--host", host])
        .output()
        .expect("run ringdb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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
async fn an_index_built_under_write_load_is_exact_on_every_node() {
    // A generous request timeout: the machine running the tests may be starved for CPU,
    // and a write timing out then says nothing about the build.
    let cluster = Cluster::start_with(
        3,
        &[
            "--index-build-keys-per-sec",
            "3000",
            "--request-timeout-ms",
            "10000",
        ],
    )
    .await;
    let client = cluster.client().await;
    let doc = |i: u64, round: u64| json!({"n": (i * 7 + round) % 1000, "name": format!("d{i}")});
    futures::stream::iter(0..20_000u64)
        .for_each_concurrent(64, |i| {
            let client = client.clone();
            async move {
                client
                    .put("items", &format!("k{i}"), &doc(i, 0))
                    .await
                    .expect("load");
            }
        })
        .await;

    // Foreground writes (updates and new keys) run for the whole build.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let (client, stop, ok, failed) =
                (client.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut round = 1;
                while !stop.load(Ordering::Relaxed) {
                    let i = (w * 2_503 + round * 7_919) % 21_000;
                    match client.put("items", &format!("k{i}"), &doc(i, round)).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("write k{i} failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    round += 1;
                }
            })
        })
        .collect();

    let i = client.create_index("items", "n", false).await.unwrap();
    assert!(matches!(i.state, IndexState::Building { .. }), "{i:?}");
    let (mut saw_progress, mut ok_while_building) = (false, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let list = client.indexes(Some("items")).await.unwrap();
        match list[0].state {
            IndexState::Ready => break,
            IndexState::Building { done, .. } => {
                saw_progress |= done > 0;
                ok_while_building = ok.load(Ordering::Relaxed);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still building: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(saw_progress, "the build showed its progress");
    assert!(
        ok_while_building > 100,
        "writes went on during the build: {ok_while_building}"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no write failed during the build"
    );

    wait_settled(&cluster, "items").await;
    let keys: BTreeSet<String> = (0..21_000).map(|i| format!("k{i}")).collect();
    for node in &cluster.nodes {
        assert_exact(node, "items", "n", &keys).await;
    }

    let (ok, out, err) = ringdb(
        &cluster.nodes[2].address,
        &["admin", "drop-index", "items", "n"],
    );
    assert!(ok && out.contains("dropped"), "{out} {err}");
    wait_listed(&cluster, &[], Duration::from_secs(30)).await;
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
