//! Paging through 10,000 matches with page tokens, 100 at a time, returns each document
//! exactly once while the cluster changes between pages: a node joins, another is killed,
//! and later a third joins. The pages are served by a secondary index (where ScyllaDB lost
//! rows and returned short pages); `query_consistency` covers paging by full scans.

use std::collections::BTreeSet;

use ringdb_client::{Consistency, Durability, WriteOptions};
use ringdb_tests::load::put_all;
use ringdb_tests::Cluster;
use serde_json::json;

/// Documents written; every 21st does not match, so `MATCHES` do.
const DOCUMENTS: usize = 10_500;
const MATCHES: usize = 10_000;
const PAGE: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_return_each_match_once_while_a_node_joins_and_another_dies() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    // The preload is acknowledged in memory, not after fsync: no node that holds these
    // documents restarts in this test (n2 is killed and stays dead, the others run
    // throughout), so what the claim rests on is every replica holding every document
    // (ALL), not that it survives a crash. It makes the load several times cheaper.
    let all = WriteOptions::new()
        .consistency(Consistency::All)
        .durability(Durability::Memory);
    let kind = |i: usize| if i % 21 == 20 { "b" } else { "a" };
    let docs = (0..DOCUMENTS).map(|i| (format!("doc{i:05}"), json!({"kind": kind(i), "i": i})));
    client.create_index("pages", "kind", false).await.unwrap();
    let retried = put_all(&client, "pages", docs, &all, 256).await;
    cluster
        .wait_indexes_ready("pages", std::time::Duration::from_secs(120))
        .await;
    let expected: BTreeSet<String> = (0..DOCUMENTS)
        .filter(|&i| kind(i) == "a")
        .map(|i| format!("doc{i:05}"))
        .collect();
    assert_eq!(expected.len(), MATCHES);
    eprintln!(
        "loaded {DOCUMENTS} documents ({retried} refusals retried) at {:?}",
        started.elapsed()
    );

    let query = client
        .find("pages")
        .filter(r#"kind = "a""#)
        .consistency(Consistency::Quorum)
        .page_size(PAGE);
    let mut seen: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &token {
            Some(t) => query.clone().after(t.clone()),
            None => query.clone(),
        };
        let page = q
            .page()
            .await
            .unwrap_or_else(|e| panic!("page {}: {e}", pages + 1));
        pages += 1;
        assert!(page.documents.len() <= PAGE as usize);
        seen.extend(page.documents.into_iter().map(|d| d.key));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
        // A node joins, one is killed, and later another joins (while the dead one is
        // still down), each between two pages.
        match pages {
            4 | 60 => {
                cluster.add_node().await;
                eprintln!(
                    "a node joined after page {pages} at {:?}",
                    started.elapsed()
                );
            }
            30 => cluster.node("n2").kill9(),
            _ => {}
        }
    }
    eprintln!("{pages} pages read at {:?}", started.elapsed());
    assert!(pages >= MATCHES / PAGE as usize, "{pages} pages");
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "a document came back twice");
    assert_eq!(distinct, expected, "every match once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in key order across pages");
}
