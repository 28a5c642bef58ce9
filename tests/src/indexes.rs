//! What index tests check on real processes: the index definitions each node lists, one
//! node's own index entries and documents, and whether replicas have settled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::Client;
use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::ListIndexesRequest;
use ringdb_query::Path;
use serde_json::Value;
use tonic::transport::Channel;

use crate::{wait_until, Cluster, NodeProc};

/// A raw admin stub connected to one node.
pub async fn admin(node: &NodeProc) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", node.address))
        .await
        .expect("admin connection")
}

/// The indexes a node lists, as `(collection, path, state)`.
pub async fn listed(node: &NodeProc) -> Vec<(String, String, String)> {
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
pub async fn wait_listed(cluster: &Cluster, want: &[(&str, &str, &str)], within: Duration) {
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

/// The live siblings of each of `keys` in one node's own replica (`LocalGet`); keys it
/// does not hold (or holds only tombstones of) are left out.
pub async fn replica_documents(
    node: &NodeProc,
    collection: &str,
    keys: &BTreeSet<String>,
) -> BTreeMap<String, Vec<Value>> {
    let client = node.client().await;
    futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let client = client.clone();
            async move {
                let r = client.local_get(collection, &k).await.expect("LocalGet");
                (k, r.values)
            }
        })
        .buffer_unordered(128)
        .filter(|(_, values)| futures::future::ready(!values.is_empty()))
        .collect()
        .await
}

/// The entries an index on `path` should hold for these documents (key to live siblings).
pub fn entries_of(path: &str, documents: &BTreeMap<String, Vec<Value>>) -> BTreeSet<Vec<u8>> {
    let path = Path::parse(path).expect("index path");
    documents
        .iter()
        .flat_map(|(k, values)| ringdb_query::index::entries(&path, k, values))
        .collect()
}

/// Assert a node's index equals what its own documents give (read with `LocalGet`),
/// printing only the difference; returns those documents.
pub async fn assert_exact(
    node: &NodeProc,
    collection: &str,
    path: &str,
    keys: &BTreeSet<String>,
) -> BTreeMap<String, Vec<Value>> {
    let held = node.local_index_entries(collection, path).await;
    let documents = replica_documents(node, collection, keys).await;
    let want = entries_of(path, &documents);
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
    documents
}

/// Wait until every node holds the same data in `collection` (equal hash-tree roots), so
/// nothing is still arriving while a test reads replicas one key at a time.
pub async fn wait_settled(cluster: &Cluster, collection: &str) {
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
