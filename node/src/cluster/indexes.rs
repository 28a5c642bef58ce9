//! Index definitions: which (collection, path) pairs are indexed, spread by gossip with the
//! collection definitions, persisted with them, and pushed into this node's storage (its
//! [`IndexCatalog`]), which builds and maintains the local indexes. Also the cluster-wide
//! state of an index, from what each member reports of its own.
//!
//! Invariants kept here:
//! - of two definitions of one (collection, path), the one with the larger
//!   `(changed_ms, changed_by, dropped)` wins everywhere, whatever order gossip delivers
//!   them in: last writer wins, a drop over a create at the same instant and node;
//! - a drop is kept as a definition with `dropped` set (a tombstone), so a node that
//!   missed it cannot bring the index back;
//! - a create or drop made here is stamped after the definition it replaces (at least its
//!   time + 1 ms), so an operation made after another was seen wins even with clock skew;
//! - paths are stored canonically (`ringdb_query::Path`'s display), so two spellings of
//!   one path are one index;
//! - the storage catalog always holds exactly the live definitions.

use std::collections::BTreeMap;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use ringdb_proto::v1::{IndexDef, MemberState, NodeIndexState};
use ringdb_query::Path;

use super::{Membership, STATUS_NORMAL};
use crate::storage::{IndexCatalog, IndexState, IndexStatus};

/// Why an index cannot be created or dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexDefError {
    /// An index on that path of that collection exists already.
    #[error("an index on {collection} ({path}) already exists")]
    Exists {
        /// Its collection.
        collection: String,
        /// Its path, canonical.
        path: String,
    },
    /// There is no index on that path of that collection.
    #[error("there is no index on {collection} ({path})")]
    Missing {
        /// The collection asked for.
        collection: String,
        /// The path asked for, canonical.
        path: String,
    },
}

/// Whether definition `a` supersedes `b` (see the module's invariants).
fn newer(a: &IndexDef, b: &IndexDef) -> bool {
    (a.changed_ms, &a.changed_by, a.dropped) > (b.changed_ms, &b.changed_by, b.dropped)
}

/// The index definitions this node knows, tombstones included.
#[derive(Default)]
pub struct IndexDefs {
    defs: RwLock<BTreeMap<(String, String), IndexDef>>,
    catalog: OnceLock<IndexCatalog>,
}

impl IndexDefs {
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<(String, String), IndexDef>> {
        self.defs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<(String, String), IndexDef>> {
        self.defs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Give the definitions to this node's storage: from now on it maintains exactly the
    /// live ones (pushed at once, and again after every change).
    pub fn attach(&self, catalog: IndexCatalog) {
        if self.catalog.set(catalog).is_ok() {
            self.push();
        }
    }

    fn push(&self) {
        let Some(catalog) = self.catalog.get() else {
            return;
        };
        let wanted: Vec<(String, Path)> = self
            .live()
            .into_iter()
            .filter_map(|d| Path::parse(&d.path).ok().map(|p| (d.collection, p)))
            .collect();
        catalog.define(&wanted);
    }

    /// Create the index on `path` of `collection`, made by node `by` at `now_ms`.
    pub fn create(
        &self,
        collection: &str,
        path: &Path,
        by: &str,
        now_ms: u64,
    ) -> Result<IndexDef, IndexDefError> {
        let key = (collection.to_string(), path.to_string());
        let def = {
            let mut defs = self.write();
            let after = match defs.get(&key) {
                Some(d) if !d.dropped => {
                    return Err(IndexDefError::Exists {
                        collection: key.0,
                        path: key.1,
                    })
                }
                Some(d) => d.changed_ms + 1,
                None => 0,
            };
            let def = IndexDef {
                collection: key.0.clone(),
                path: key.1.clone(),
                changed_ms: now_ms.max(after),
                changed_by: by.to_string(),
                dropped: false,
            };
            defs.insert(key, def.clone());
            def
        };
        self.push();
        Ok(def)
    }

    /// Drop the index on `path` of `collection`, by node `by` at `now_ms`: it stays as a
    /// tombstone definition.
    pub fn drop_index(
        &self,
        collection: &str,
        path: &Path,
        by: &str,
        now_ms: u64,
    ) -> Result<IndexDef, IndexDefError> {
        let key = (collection.to_string(), path.to_string());
        let def = {
            let mut defs = self.write();
            let Some(cur) = defs.get(&key).filter(|d| !d.dropped) else {
                return Err(IndexDefError::Missing {
                    collection: key.0,
                    path: key.1,
                });
            };
            let def = IndexDef {
                changed_ms: now_ms.max(cur.changed_ms + 1),
                changed_by: by.to_string(),
                dropped: true,
                ..cur.clone()
            };
            defs.insert(key, def.clone());
            def
        };
        self.push();
        Ok(def)
    }

    /// The live definition of the index on `path` of `collection`, if any.
    pub fn get(&self, collection: &str, path: &Path) -> Option<IndexDef> {
        self.read()
            .get(&(collection.to_string(), path.to_string()))
            .filter(|d| !d.dropped)
            .cloned()
    }

    /// Every live definition, by collection then path.
    pub fn live(&self) -> Vec<IndexDef> {
        self.read()
            .values()
            .filter(|d| !d.dropped)
            .cloned()
            .collect()
    }

    /// Every definition, tombstones included: what gossip sends and the node persists.
    pub fn all(&self) -> Vec<IndexDef> {
        self.read().values().cloned().collect()
    }

    /// Fold in definitions from a peer (or from disk); returns whether anything changed.
    /// A definition whose path does not parse is ignored; one spelled otherwise is stored
    /// canonically.
    pub fn merge(&self, incoming: &[IndexDef]) -> bool {
        let mut changed = false;
        {
            let mut defs = self.write();
            for d in incoming {
                let Ok(path) = Path::parse(&d.path) else {
                    tracing::warn!(collection = %d.collection, path = %d.path, "ignoring an index definition whose path does not parse");
                    continue;
                };
                if d.collection.is_empty() {
                    continue;
                }
                let d = IndexDef {
                    path: path.to_string(),
                    ..d.clone()
                };
                let key = (d.collection.clone(), d.path.clone());
                if defs.get(&key).is_none_or(|mine| newer(&d, mine)) {
                    defs.insert(key, d);
                    changed = true;
                }
            }
        }
        if changed {
            self.push();
        }
        changed
    }

    /// Feed the definitions into the schema digest (nothing when there are none, so nodes
    /// without indexes agree with nodes that predate them).
    pub(super) fn digest_into(&self, eat: &mut dyn FnMut(&[u8])) {
        for d in self.read().values() {
            eat(b"index\0");
            eat(d.collection.as_bytes());
            eat(&[0]);
            eat(d.path.as_bytes());
            eat(&[0]);
            eat(&d.changed_ms.to_be_bytes());
            eat(d.changed_by.as_bytes());
            eat(&[0, u8::from(d.dropped)]);
        }
    }
}

/// This node's index states as gossip carries them.
pub fn report(states: &[IndexStatus]) -> Vec<NodeIndexState> {
    states
        .iter()
        .map(|s| {
            let (ready, done, total) = match s.state {
                IndexState::Ready => (true, 0, 0),
                IndexState::Building(p) => (false, p.done, p.total),
            };
            NodeIndexState {
                collection: s.collection.clone(),
                path: s.path.to_string(),
                ready,
                done,
                total,
            }
        })
        .collect()
}

/// One node's state of one index, as this node last heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIndex {
    /// Every document it stores is indexed.
    Ready,
    /// Still indexing what it held: keys scanned, of about `total`.
    Building {
        /// Keys scanned.
        done: u64,
        /// Keys it stored when the build began.
        total: u64,
    },
    /// It has not reported the index (it has not learned of it yet).
    Unknown,
}

impl NodeIndex {
    /// How far along, as a fraction (for finding the slowest node).
    fn fraction(&self) -> f64 {
        match self {
            NodeIndex::Ready => 1.0,
            NodeIndex::Building { done, total } if *total > 0 => *done as f64 / *total as f64,
            _ => 0.0,
        }
    }
}

/// An index's state across the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIndex {
    /// Its definition.
    pub def: IndexDef,
    /// Every live NORMAL node reports it ready.
    pub ready: bool,
    /// The slowest live NORMAL node's state (`Ready` when all are).
    pub slowest: NodeIndex,
    /// Each live NORMAL node's state, by node id.
    pub nodes: Vec<(String, NodeIndex)>,
}

/// Whether queries may use an index, as this node sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every live NORMAL node reports it ready: every document is indexed everywhere.
    Ready,
    /// Defined, but not ready on some live NORMAL node: the slowest such node and its state.
    Building {
        /// The slowest node.
        node: String,
        /// How far it has come.
        state: NodeIndex,
    },
    /// No index is defined on that path.
    Absent,
}

impl std::fmt::Display for NodeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeIndex::Ready => write!(f, "ready"),
            NodeIndex::Building { done, total } => {
                write!(f, "{done} of about {total} keys indexed")
            }
            NodeIndex::Unknown => write!(f, "not started, it has not heard of the index yet"),
        }
    }
}

/// A member's state of the index on `path` of `collection`.
fn state_in(s: &MemberState, collection: &str, path: &str) -> NodeIndex {
    state_among(&s.indexes, collection, path)
}

/// The state of the index on `path` of `collection` among a member's reported states.
fn state_among(indexes: &[NodeIndexState], collection: &str, path: &str) -> NodeIndex {
    match indexes
        .iter()
        .find(|i| i.collection == collection && i.path == path)
    {
        Some(i) if i.ready => NodeIndex::Ready,
        Some(i) => NodeIndex::Building {
            done: i.done,
            total: i.total,
        },
        None => NodeIndex::Unknown,
    }
}

impl Membership {
    /// Record this node's own index states, carried by its next heartbeat.
    pub fn set_own_indexes(&self, states: Vec<NodeIndexState>) {
        self.write().own_indexes = states;
    }

    /// Whether queries may use the index on `path` of `collection` now (the same rule as
    /// [`Membership::index_states`], without copying member states: it is asked per query).
    pub fn index_readiness(&self, collection: &str, path: &Path) -> Readiness {
        if self.schema.indexes().get(collection, path).is_none() {
            return Readiness::Absent;
        }
        let path = path.to_string();
        let normal = |status: &str| status.is_empty() || status == STATUS_NORMAL;
        let mut slowest: Option<(&str, NodeIndex)> = None;
        let now = Instant::now();
        let inner = self.read();
        let mut consider = |id, indexes: &[NodeIndexState]| {
            let state = state_among(indexes, collection, &path);
            let slower = slowest
                .as_ref()
                .is_none_or(|(_, s)| state.fraction() < s.fraction());
            if state != NodeIndex::Ready && slower {
                slowest = Some((id, state));
            }
        };
        if normal(&inner.own_status) {
            consider(self.me.id.as_str(), &inner.own_indexes);
        }
        for p in inner.peers.values() {
            if p.detector.phi(now) < self.config.phi_threshold && normal(&p.state.status) {
                consider(p.state.id.as_str(), &p.state.indexes);
            }
        }
        match slowest {
            None => Readiness::Ready,
            Some((node, state)) => Readiness::Building {
                node: node.to_string(),
                state,
            },
        }
    }

    /// Every live index (of `collection`, or all) with its state across the cluster: ready
    /// when every live NORMAL node (as this node sees them) reports it ready.
    pub fn index_states(&self, collection: Option<&str>) -> Vec<ClusterIndex> {
        let mut members = vec![self.own_state()];
        {
            let now = Instant::now();
            let inner = self.read();
            members.extend(
                inner
                    .peers
                    .values()
                    .filter(|p| p.detector.phi(now) < self.config.phi_threshold)
                    .map(|p| p.state.clone()),
            );
        }
        members.retain(|s| s.status.is_empty() || s.status == STATUS_NORMAL);
        members.sort_by(|a, b| a.id.cmp(&b.id));
        self.schema
            .indexes()
            .live()
            .into_iter()
            .filter(|d| collection.is_none_or(|c| c == d.collection))
            .map(|def| {
                let nodes: Vec<(String, NodeIndex)> = members
                    .iter()
                    .map(|m| (m.id.clone(), state_in(m, &def.collection, &def.path)))
                    .collect();
                let ready = nodes.iter().all(|(_, s)| *s == NodeIndex::Ready);
                let slowest = nodes
                    .iter()
                    .map(|(_, s)| s.clone())
                    .min_by(|a, b| a.fraction().total_cmp(&b.fraction()))
                    .unwrap_or(NodeIndex::Ready);
                ClusterIndex {
                    def,
                    ready,
                    slowest,
                    nodes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn concurrent_create_and_drop_converge_on_the_last_writer() {
        let (a, b) = (IndexDefs::default(), IndexDefs::default());
        a.create("users", &p("age"), "n1", 100).unwrap();
        assert!(b.merge(&a.all()));
        // n2 drops it at 150; n3 also drops it at 150 (winning that tie on its id), then
        // creates it again, stamped after its own drop.
        let dropped = b.drop_index("users", &p("age"), "n2", 150).unwrap();
        assert!(dropped.dropped);
        let c = IndexDefs::default();
        c.merge(&a.all());
        c.drop_index("users", &p("age"), "n3", 150).unwrap();
        let c_recreated = c.create("users", &p("age"), "n3", 150).unwrap();
        assert_eq!(c_recreated.changed_ms, 151, "after the drop it saw");
        for order in [[&a, &b, &c], [&c, &b, &a], [&b, &c, &a]] {
            let x = IndexDefs::default();
            for d in order {
                x.merge(&d.all());
            }
            assert_eq!(x.live().len(), 1, "n3's later create wins");
            assert_eq!(x.live()[0].changed_by, "n3");
        }
        // A drop and a create at the same instant by the same node: the drop wins.
        let same = IndexDefs::default();
        let mut create = c_recreated.clone();
        let mut drop = c_recreated;
        create.changed_ms = 500;
        drop.changed_ms = 500;
        drop.dropped = true;
        same.merge(&[create.clone()]);
        same.merge(&[drop.clone()]);
        assert!(same.live().is_empty());
        let other = IndexDefs::default();
        other.merge(&[drop, create]);
        assert!(other.live().is_empty());
    }

    #[test]
    fn create_and_drop_refuse_what_is_not_there_to_change() {
        let d = IndexDefs::default();
        d.create("c", &p("\"a\".b"), "n1", 1).unwrap();
        assert_eq!(d.live()[0].path, "a.b", "stored canonically");
        assert!(matches!(
            d.create("c", &p("a.b"), "n1", 2),
            Err(IndexDefError::Exists { .. })
        ));
        assert!(matches!(
            d.drop_index("c", &p("x"), "n1", 2),
            Err(IndexDefError::Missing { .. })
        ));
        d.drop_index("c", &p("a.b"), "n1", 3).unwrap();
        assert!(d.get("c", &p("a.b")).is_none());
        assert!(matches!(
            d.drop_index("c", &p("a.b"), "n1", 4),
            Err(IndexDefError::Missing { .. })
        ));
        assert_eq!(d.all().len(), 1, "the tombstone stays");
        // Bad paths from a peer are ignored.
        let bad = IndexDef {
            collection: "c".into(),
            path: "a..b".into(),
            changed_ms: 9,
            changed_by: "n9".into(),
            dropped: false,
        };
        assert!(!d.merge(&[bad]));
    }

    #[test]
    fn the_storage_catalog_holds_exactly_the_live_definitions() {
        let d = IndexDefs::default();
        d.create("c", &p("a"), "n1", 1).unwrap();
        let catalog = IndexCatalog::default();
        d.attach(catalog.clone());
        assert!(catalog.state_of("c", &p("a")).is_some(), "pushed on attach");
        d.create("c", &p("b"), "n1", 2).unwrap();
        d.drop_index("c", &p("a"), "n1", 3).unwrap();
        let held: Vec<String> = catalog
            .states()
            .iter()
            .map(|s| s.path.to_string())
            .collect();
        assert_eq!(held, ["b"]);
    }
}
