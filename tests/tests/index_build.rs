//! An index created on a collection that already holds many documents goes from building
//! to ready while foreground writes keep succeeding; once it reports ready a FIND on the
//! indexed path (no ALLOW FILTERING) returns exactly what brute force over the stored
//! documents says matches, page by page, through the Rust client and raw gRPC; and every
//! node's index holds exactly the entries of the documents it stores.
//!
//! `RINGDB_TEST_INDEX_DOCS` sets how many documents the collection holds before the index
//! is created (default [`DEFAULT_DOCS`]; the size, 100,000, is documented in
//! docs/testing.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringdb_client::{Client, Consistency, Durability, IndexState, WriteOptions};
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::{ConditionOp, ConsistencyLevel, FindRequest, QueryCondition};
use ringdb_query::statement::parse_conditions;
use ringdb_tests::indexes::{assert_exact, wait_listed, wait_settled};
use ringdb_tests::load::put_all;
use ringdb_tests::{run_ringdb, Cluster};
use serde_json::{json, Value};

/// Documents stored before the index is created, unless `RINGDB_TEST_INDEX_DOCS` says.
const DEFAULT_DOCS: u64 = 20_000;
/// Foreground writers running for the whole build.
const WRITERS: u64 = 8;
/// The indexed condition the FIND asks: a tenth of the documents match.
const FILTER: &str = "n < 100";
const PAGE: u32 = 100;
/// Time allowed per page: rules out "never" on a machine starved for CPU, not "slow".
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

fn docs_from_env() -> u64 {
    std::env::var("RINGDB_TEST_INDEX_DOCS")
        .ok()
        .map(|v| v.parse().expect("RINGDB_TEST_INDEX_DOCS: a number"))
        .unwrap_or(DEFAULT_DOCS)
}

/// Document `i` as written in `round` (0: the preload). Small, but with the indexed number
/// and a name beside it.
fn doc(i: u64, round: u64) -> Value {
    json!({"n": (i * 7 + round) % 1000, "name": format!("d{i}")})
}

/// Every page of the FIND (served by the index: no ALLOW FILTERING) through the Rust client, each asked with the previous page's
/// token: the keys in the order returned.
async fn find_with_client(client: &Client) -> Vec<String> {
    let query = client
        .find("items")
        .filter(FILTER)
        .consistency(Consistency::Quorum)
        .timeout(PAGE_TIMEOUT)
        .page_size(PAGE);
    let (mut keys, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let q = match &token {
            Some(t) => query.clone().after(t.clone()),
            None => query.clone(),
        };
        let page = q
            .page()
            .await
            .unwrap_or_else(|e| panic!("client page {}: {e}", pages + 1));
        pages += 1;
        assert!(page.documents.len() <= PAGE as usize, "page {pages}");
        keys.extend(page.documents.into_iter().map(|d| d.key));
        match page.next {
            Some(t) => token = Some(t),
            None => return keys,
        }
    }
}

/// The FIND as a stranger sends it with the generated stubs: one call streaming every
/// page (its limit is `at_most`, more than can match), then a second call resuming from
/// the third page's token. Returns the keys of the first call and checks the second gives
/// the same tail.
async fn find_with_grpc(address: &str, at_most: u64) -> Vec<String> {
    let c = ClientClient::connect(format!("http://{address}"))
        .await
        .expect("client connection");
    let request = FindRequest {
        collection: "items".into(),
        conditions: vec![QueryCondition {
            path: "n".into(),
            op: ConditionOp::Lt as i32,
            operands: vec![b"100".to_vec().into()],
        }],
        allow_filtering: false,
        limit: Some(at_most),
        page_size: PAGE,
        consistency: ConsistencyLevel::Quorum as i32,
        timeout_ms: PAGE_TIMEOUT.as_millis() as u32,
        ..Default::default()
    };
    let pages = |req: FindRequest| {
        let mut c = c.clone();
        async move {
            let mut stream = c.find(req).await.expect("raw FIND").into_inner();
            let mut pages: Vec<(Vec<String>, String)> = Vec::new();
            while let Some(p) = stream.message().await.expect("raw FIND page") {
                assert!(p.documents.len() <= PAGE as usize);
                pages.push((
                    p.documents.into_iter().map(|d| d.key).collect(),
                    p.next_page_token,
                ));
            }
            pages
        }
    };
    let all = pages(request.clone()).await;
    assert!(all.len() > 3, "{} raw pages", all.len());
    let (last, rest) = all.split_last().expect("pages");
    assert!(last.1.is_empty(), "the last page has no token");
    assert!(rest.iter().all(|(_, t)| !t.is_empty()), "a token per page");
    let resumed = pages(FindRequest {
        page_token: all[2].1.clone(),
        ..request
    })
    .await;
    assert_eq!(
        resumed,
        all[3..],
        "resuming from a token gives the same pages"
    );
    all.into_iter().flat_map(|(keys, _)| keys).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_built_under_write_load_answers_completely_and_is_exact_on_every_node() {
    let docs = docs_from_env();
    let keyspace = docs + docs / 20; // the writers add a twentieth more keys
    let started = Instant::now();
    // The build is paced to take several seconds whatever the size, so writes overlap it.
    // A generous request timeout: the machine running the tests may be starved for CPU,
    // and a write timing out then says nothing about the build.
    let pace = (docs / 6).max(1_000).to_string();
    let cluster = Cluster::start_with(
        3,
        &[
            "--index-build-keys-per-sec",
            &pace,
            "--request-timeout-ms",
            "10000",
        ],
    )
    .await;
    let client = cluster.client().await;
    // The preload is acknowledged in memory, not after fsync: no node restarts in this
    // test, so fsync has no part in what it checks; at ALL every replica holds every
    // document before the index is created. The foreground writes below are durable.
    let preload = WriteOptions::new()
        .consistency(Consistency::All)
        .durability(Durability::Memory);
    let retried = put_all(
        &client,
        "items",
        (0..docs).map(|i| (format!("k{i}"), doc(i, 0))),
        &preload,
        256,
    )
    .await;
    eprintln!(
        "loaded {docs} documents ({retried} refusals retried) at {:?}",
        started.elapsed()
    );

    // Foreground writes (updates and new keys) run for the whole build; each writer notes
    // the keys it wrote and when.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, stop, ok, failed, acked) = (
                client.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                acked.clone(),
            );
            tokio::spawn(async move {
                let mut round = 1;
                while !stop.load(Ordering::Relaxed) {
                    let i = (w * 2_503 + round * 7_919) % keyspace;
                    let key = format!("k{i}");
                    match client.put("items", &key, &doc(i, round)).await {
                        Ok(_) => {
                            acked.lock().unwrap().push((key, Instant::now()));
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("write {key} failed: {e}");
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300 + docs / 200);
    let ready_at = loop {
        let list = client.indexes(Some("items")).await.unwrap();
        match list[0].state {
            IndexState::Ready => break Instant::now(),
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
    };
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    eprintln!(
        "index ready at {:?}; {} foreground writes, {ok_while_building} while building",
        started.elapsed(),
        ok.load(Ordering::Relaxed)
    );
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

    // Once ready, the index answers: the FIND pages through the client and raw gRPC. The
    // node asked above said ready; each coordinator plans by its own view, which gossip
    // brings up to date a moment later, so first every node must say so too.
    cluster
        .wait_indexes_ready("items", Duration::from_secs(60))
        .await;
    let by_client = find_with_client(&client).await;
    let by_grpc = find_with_grpc(&cluster.nodes[1].address, keyspace).await;
    eprintln!("found {} at {:?}", by_client.len(), started.elapsed());

    // Every node's index is exact; brute force over the (settled, so equal) replicas says
    // what the FIND should have returned.
    wait_settled(&cluster, "items").await;
    let keys: BTreeSet<String> = (0..keyspace).map(|i| format!("k{i}")).collect();
    let mut stored: Option<BTreeMap<String, Vec<Value>>> = None;
    for node in &cluster.nodes {
        stored = Some(assert_exact(node, "items", "n", &keys).await);
    }
    let stored = stored.expect("three nodes");
    let filter = parse_conditions(FILTER).unwrap();
    let expected: BTreeSet<String> = stored
        .iter()
        .filter(|(_, siblings)| filter.matches(siblings))
        .map(|(k, _)| k.clone())
        .collect();
    // The indexed condition orders the results: by the smallest n among the matching
    // siblings, then by key.
    let mut in_order: Vec<(u64, &String)> = stored
        .iter()
        .filter(|(k, _)| expected.contains(*k))
        .map(|(k, siblings)| {
            let n = siblings
                .iter()
                .filter_map(|s| s["n"].as_u64())
                .filter(|n| *n < 100)
                .min()
                .expect("a matching sibling");
            (n, k)
        })
        .collect();
    in_order.sort();
    let in_order: Vec<String> = in_order.into_iter().map(|(_, k)| k.clone()).collect();
    let written_before_ready: BTreeSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < ready_at)
        .map(|(k, _)| k.clone())
        .collect();
    let written_and_matching = written_before_ready.intersection(&expected).count();
    assert!(
        written_and_matching > 0,
        "some documents the writers wrote during the build match"
    );
    for (how, found) in [("client", &by_client), ("raw gRPC", &by_grpc)] {
        let distinct: BTreeSet<String> = found.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            found.len(),
            "{how}: a document came back twice"
        );
        let missing: Vec<_> = expected.difference(&distinct).take(5).collect();
        let extra: Vec<_> = distinct.difference(&expected).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{how}: found {}, {} match; missing (first) {missing:?}, not matching {extra:?}",
            distinct.len(),
            expected.len()
        );
        assert!(
            found == &in_order,
            "{how}: not in the order of n (the smallest matching sibling's), then key"
        );
    }
    assert!(
        by_client.len() >= (docs / 10) as usize * 9 / 10,
        "{} found",
        by_client.len()
    );
    eprintln!(
        "{} matches ({written_and_matching} written during the build); checked at {:?}",
        expected.len(),
        started.elapsed()
    );

    let (ok, out, err) = run_ringdb(
        &cluster.nodes[2].address,
        &["admin", "drop-index", "items", "n"],
    );
    assert!(ok && out.contains("dropped"), "{out} {err}");
    wait_listed(&cluster, &[], Duration::from_secs(30)).await;
}
