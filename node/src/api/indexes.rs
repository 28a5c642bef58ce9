//! The admin service's index requests: create, drop, list, and an operator's view of one
//! node's local entries. Definitions spread by gossip (`cluster::indexes`); each node's
//! storage builds and maintains its own entries.
//!
//! Choices users see (docs/api.md):
//! - creating an index on a collection that does not exist creates the collection with
//!   the default options, as MongoDB's `createIndex` does and as a first write would;
//! - creating an index that exists is `ALREADY_EXISTS` unless `if_not_exists` (as
//!   `CreateCollection`); dropping one that does not is `NOT_FOUND` unless `if_exists`;
//! - a path that does not parse is `INVALID_ARGUMENT` with the parser's message (column
//!   and what was expected).

use std::time::Duration;

use ringdb_proto::v1::{
    CreateIndexRequest, CreateIndexResponse, DropIndexRequest, DropIndexResponse, IndexInfo,
    ListIndexesRequest, ListIndexesResponse, LocalIndexEntry, LocalIndexScanRequest,
    LocalIndexScanResponse, NodeIndexProgress,
};
use ringdb_query::value::split_entry;
use ringdb_query::Path;
use tonic::Status;

use crate::cluster::gossip;
use crate::cluster::indexes::{report, ClusterIndex, IndexDefError, NodeIndex};
use crate::cluster::Membership;
use crate::coordinator::validate;
use crate::coordinator::Coordinator;
use crate::storage::{IndexError, IndexState};

/// Entries `LocalIndexScan` returns when the request does not say.
const DEFAULT_SCAN_LIMIT: usize = 1000;

/// How long a create or drop waits for the live peers to exchange schemas.
const AGREE: Duration = Duration::from_secs(2);

/// The path of a request, parsed, or `INVALID_ARGUMENT` with the parser's message.
fn parse_path(text: &str) -> Result<Path, Status> {
    Path::parse(text)
        .map_err(|e| Status::invalid_argument(format!("invalid index path {text:?}: {e}")))
}

fn progress(s: &NodeIndex) -> (&'static str, u64, u64) {
    match s {
        NodeIndex::Ready => ("ready", 0, 0),
        NodeIndex::Building { done, total } => ("building", *done, *total),
        NodeIndex::Unknown => ("unknown", 0, 0),
    }
}

fn info(c: ClusterIndex) -> IndexInfo {
    let (_, done, total) = progress(&c.slowest);
    IndexInfo {
        collection: c.def.collection,
        path: c.def.path,
        state: if c.ready { "ready" } else { "building" }.into(),
        done,
        total,
        created_ms: c.def.changed_ms,
        created_by: c.def.changed_by,
        nodes: c
            .nodes
            .iter()
            .map(|(id, s)| {
                let (state, done, total) = progress(s);
                NodeIndexProgress {
                    node_id: id.clone(),
                    state: state.into(),
                    done,
                    total,
                }
            })
            .collect(),
    }
}

/// The cluster-wide state of the index on `path` of `collection`, if it is live.
fn current(membership: &Membership, collection: &str, path: &Path) -> Option<IndexInfo> {
    let path = path.to_string();
    membership
        .index_states(Some(collection))
        .into_iter()
        .find(|c| c.def.path == path)
        .map(info)
}

/// Persist the schema before answering: storage saves its index catalog on its own soon
/// after a change, and a restart whose saved schema lacked a definition the catalog has
/// would drop that index here and rebuild it when gossip brings the definition back.
async fn saved(coordinator: &Coordinator, membership: &Membership) {
    membership.note_change();
    gossip::persist(membership, coordinator.storage()).await;
}

/// Freshen this node's own index states before reporting them.
fn refresh_own(coordinator: &Coordinator, membership: &Membership) {
    membership.set_own_indexes(report(&coordinator.storage().indexes().states()));
}

/// `CreateIndex`.
pub(super) async fn create(
    coordinator: &Coordinator,
    membership: &Membership,
    r: CreateIndexRequest,
) -> Result<CreateIndexResponse, Status> {
    validate::collection(&r.collection)?;
    let path = parse_path(&r.path)?;
    let transport = coordinator.transport();
    // Learn what the live peers know first, so a create made through another node is seen.
    gossip::round_with_all(membership, transport.as_ref(), AGREE).await;
    let (me, now) = (membership.node_id(), coordinator.clock().now_ms());
    let created_collection = membership.schema().ensure(&r.collection, me, now);
    if created_collection {
        tracing::info!(collection = %r.collection, "collection created by an index on it");
    }
    let defs = membership.schema().indexes();
    match defs.create(&r.collection, &path, me, now) {
        Ok(_) => {
            tracing::info!(collection = %r.collection, %path, "index created");
            saved(coordinator, membership).await;
            gossip::round_with_all(membership, transport.as_ref(), AGREE).await;
        }
        Err(IndexDefError::Exists { .. }) if r.if_not_exists => {
            if created_collection {
                saved(coordinator, membership).await;
            }
        }
        Err(e @ IndexDefError::Exists { .. }) => return Err(Status::already_exists(e.to_string())),
        Err(e) => return Err(Status::internal(e.to_string())),
    }
    refresh_own(coordinator, membership);
    let index = current(membership, &r.collection, &path).ok_or_else(|| {
        Status::aborted(format!(
            "the index on {} ({path}) was dropped concurrently through another node",
            r.collection
        ))
    })?;
    Ok(CreateIndexResponse {
        index: Some(index),
        created_collection,
    })
}

/// `DropIndex`.
pub(super) async fn drop_index(
    coordinator: &Coordinator,
    membership: &Membership,
    r: DropIndexRequest,
) -> Result<DropIndexResponse, Status> {
    validate::collection(&r.collection)?;
    let path = parse_path(&r.path)?;
    let transport = coordinator.transport();
    gossip::round_with_all(membership, transport.as_ref(), AGREE).await;
    let (me, now) = (membership.node_id(), coordinator.clock().now_ms());
    match membership
        .schema()
        .indexes()
        .drop_index(&r.collection, &path, me, now)
    {
        Ok(_) => {
            tracing::info!(collection = %r.collection, %path, "index dropped");
            saved(coordinator, membership).await;
            gossip::round_with_all(membership, transport.as_ref(), AGREE).await;
            Ok(DropIndexResponse { dropped: true })
        }
        Err(IndexDefError::Missing { .. }) if r.if_exists => {
            Ok(DropIndexResponse { dropped: false })
        }
        Err(e @ IndexDefError::Missing { .. }) => Err(Status::not_found(e.to_string())),
        Err(e) => Err(Status::internal(e.to_string())),
    }
}

/// `ListIndexes`.
pub(super) fn list(
    coordinator: &Coordinator,
    membership: &Membership,
    r: ListIndexesRequest,
) -> Result<ListIndexesResponse, Status> {
    let only = (!r.collection.is_empty()).then_some(r.collection);
    if let Some(c) = &only {
        validate::collection(c)?;
    }
    refresh_own(coordinator, membership);
    Ok(ListIndexesResponse {
        indexes: membership
            .index_states(only.as_deref())
            .into_iter()
            .map(info)
            .collect(),
    })
}

/// `LocalIndexScan`.
pub(super) async fn local_scan(
    coordinator: &Coordinator,
    r: LocalIndexScanRequest,
) -> Result<LocalIndexScanResponse, Status> {
    validate::collection(&r.collection)?;
    let path = parse_path(&r.path)?;
    let limit = match r.limit {
        0 => DEFAULT_SCAN_LIMIT,
        n => n as usize,
    };
    let after = (!r.after.is_empty()).then_some(r.after.as_ref());
    let (entries, state) = coordinator
        .storage()
        .index_entries(&r.collection, &path, after, limit)
        .await
        .map_err(|e| match e {
            IndexError::Storage(e) => Status::from(crate::error::Error::from(e)),
            other => Status::not_found(other.to_string()),
        })?;
    let (state, done, total) = match state {
        IndexState::Ready => ("ready", 0, 0),
        IndexState::Building(p) => ("building", p.done, p.total),
    };
    let entries = entries
        .into_iter()
        .map(|entry| {
            let (value, key) = split_entry(&entry)
                .map_err(|e| Status::internal(format!("unreadable index entry: {e}")))?;
            Ok(LocalIndexEntry {
                value: value.to_string(),
                key: key.to_string(),
                entry: entry.into(),
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(LocalIndexScanResponse {
        entries,
        state: state.into(),
        done,
        total,
    })
}
