//! Operators' requests about indexes: create, drop, list (with each index's state across
//! the cluster), and one node's own entries. Definitions go to one node, which spreads them
//! by gossip; every node indexes the documents it stores.

use ringdb_proto::v1 as pb;
use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};

/// An index's state across the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// Every live node indexes every document it stores.
    Ready,
    /// Some node is still indexing what it stored before the index was created (or has
    /// not heard of it yet): the slowest node's keys scanned, of about `total`.
    Building {
        /// Keys the slowest node has scanned.
        done: u64,
        /// Keys it stored when its build began (an estimate; 0: not started).
        total: u64,
    },
}

/// One node's state of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeIndexState {
    /// Complete on that node.
    Ready,
    /// Building there: keys scanned, of about `total`.
    Building {
        /// Keys scanned.
        done: u64,
        /// Keys it stored when its build began.
        total: u64,
    },
    /// The node has not reported the index (it has not learned of it yet).
    Unknown,
}

/// An index on a JSON path of a collection, as the node asked sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its collection.
    pub collection: String,
    /// The indexed path, canonical (`address.city`, `tags[]`, `"first name"`).
    pub path: String,
    /// Its state across the cluster.
    pub state: IndexState,
    /// When it was created (wall-clock ms) and through which node.
    pub created_ms: u64,
    /// The node it was created through.
    pub created_by: String,
    /// Each live NORMAL node's own state, by node id.
    pub nodes: Vec<(String, NodeIndexState)>,
}

impl From<pb::IndexInfo> for Index {
    fn from(i: pb::IndexInfo) -> Self {
        let state = if i.state == "ready" {
            IndexState::Ready
        } else {
            IndexState::Building {
                done: i.done,
                total: i.total,
            }
        };
        Index {
            collection: i.collection,
            path: i.path,
            state,
            created_ms: i.created_ms,
            created_by: i.created_by,
            nodes: i
                .nodes
                .into_iter()
                .map(|n| {
                    let s = match n.state.as_str() {
                        "ready" => NodeIndexState::Ready,
                        "building" => NodeIndexState::Building {
                            done: n.done,
                            total: n.total,
                        },
                        _ => NodeIndexState::Unknown,
                    };
                    (n.node_id, s)
                })
                .collect(),
        }
    }
}

/// A page of one node's own entries of an index ([`Client::local_index_entries`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalIndexPage {
    /// `(value, document key)` in entry order (by value in the typed order, then key).
    pub entries: Vec<(Value, String)>,
    /// Pass as `after` to read the next page; `None` when this page was the last.
    pub next: Option<Vec<u8>>,
    /// Whether the index is complete on that node.
    pub ready: bool,
}

impl Client {
    /// Create an index on `path` of `collection` (`"address.city"`, `"tags[]"`); every node
    /// indexes the documents it stores, those written before in the background. A
    /// collection that does not exist is created with the default options. Fails with
    /// `AlreadyExists` if the index exists, unless `if_not_exists`; a bad path is
    /// `InvalidArgument` saying where.
    pub async fn create_index(
        &self,
        collection: &str,
        path: &str,
        if_not_exists: bool,
    ) -> Result<Index> {
        let r = self
            .call(false, |mut n| {
                let req = pb::CreateIndexRequest {
                    collection: collection.to_string(),
                    path: path.to_string(),
                    if_not_exists,
                };
                async move { n.admin.create_index(req).await }
            })
            .await?
            .into_inner();
        r.index
            .map(Index::from)
            .ok_or_else(|| Error::Internal("empty answer to CreateIndex".into()))
    }

    /// Drop the index on `path` of `collection`; every node removes its entries in the
    /// background. Returns whether there was one; without `if_exists` a missing index is
    /// `NotFound`.
    pub async fn drop_index(&self, collection: &str, path: &str, if_exists: bool) -> Result<bool> {
        let r = self
            .call(false, |mut n| {
                let req = pb::DropIndexRequest {
                    collection: collection.to_string(),
                    path: path.to_string(),
                    if_exists,
                };
                async move { n.admin.drop_index(req).await }
            })
            .await?
            .into_inner();
        Ok(r.dropped)
    }

    /// The indexes (of `collection`, or all) with their state across the cluster, as one
    /// node sees it, sorted by collection then path.
    pub async fn indexes(&self, collection: Option<&str>) -> Result<Vec<Index>> {
        let r = self
            .call(true, |mut n| {
                let req = pb::ListIndexesRequest {
                    collection: collection.unwrap_or_default().to_string(),
                };
                async move { n.admin.list_indexes(req).await }
            })
            .await?
            .into_inner();
        Ok(r.indexes.into_iter().map(Index::from).collect())
    }

    /// The first given node's own entries of an index, whatever its state there, up to
    /// `limit` (0: 1,000; at most 10,000) after `after`: an operator's and a test's view
    /// of one replica, like [`Client::local_get`].
    pub async fn local_index_entries(
        &self,
        collection: &str,
        path: &str,
        after: Option<&[u8]>,
        limit: u32,
    ) -> Result<LocalIndexPage> {
        let (address, mut admin) = self.first_node()?;
        let r = admin
            .local_index_scan(pb::LocalIndexScanRequest {
                collection: collection.to_string(),
                path: path.to_string(),
                after: after.map(|a| a.to_vec().into()).unwrap_or_default(),
                limit,
            })
            .await
            .map_err(|s| crate::admin::unreachable_or(&address, s))?
            .into_inner();
        let asked = if limit == 0 { 1000 } else { limit.min(10_000) } as usize;
        let next = (r.entries.len() >= asked)
            .then(|| r.entries.last().map(|e| e.entry.to_vec()))
            .flatten();
        let entries = r
            .entries
            .into_iter()
            .map(|e| {
                let v = serde_json::from_str(&e.value)
                    .map_err(|err| Error::Internal(format!("index value {:?}: {err}", e.value)))?;
                Ok((v, e.key))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LocalIndexPage {
            entries,
            next,
            ready: r.state == "ready",
        })
    }
}
