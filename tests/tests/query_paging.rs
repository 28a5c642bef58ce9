//! Paging through thousands of matches with page tokens returns each document exactly once
//! while the cluster changes between pages: a node joins, another is killed.

use std::collections::BTreeSet;

use ringdb_client::{Consistency, WriteOptions};
use ringdb_tests::Cluster;
use serde_json::json;

const DOCUMENTS: usize = 2_600;
const PAGE: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_return_each_match_once_while_a_node_joins_and_another_dies() {
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let all = WriteOptions::new().consistency(Consistency::All);
    let mut expected = BTreeSet::new();
    let keys: Vec<usize> = (0..DOCUMENTS).collect();
    for chunk in keys.chunks(64) {
        let writes = chunk.iter().map(|i| {
            let (client, all) = (client.clone(), all.clone());
            async move {
                let kind = if i % 6 == 5 { "b" } else { "a" };
                let key = format!("doc{i:05}");
                client
                    .put_with("pages", &key, &json!({"kind": kind, "i": i}), &all)
                    .await
                    .unwrap();
                (key, kind)
            }
        });
        for (key, kind) in futures::future::join_all(writes).await {
            if kind == "a" {
                expected.insert(key);
            }
        }
    }
    assert!(expected.len() > 2_000);

    let query = client
        .find("pages")
        .filter(r#"kind = "a""#)
        .allow_filtering()
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
        if pages == 4 {
            cluster.add_node().await;
        }
        if pages == 9 {
            cluster.node("n2").kill9();
        }
    }
    assert!(pages >= 21, "{pages} pages");
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "a document came back twice");
    assert_eq!(distinct, expected, "every match once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "in key order across pages");
}
