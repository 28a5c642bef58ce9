//! The catalog: which indexes this replica maintains, under which local ids, and how far
//! each has come. The layer above says what it wants ([`IndexCatalog::define`]); the
//! storage threads read it on every write; the background upkeep moves builds and drops
//! along and persists it (node metadata `indexes/catalog`, JSON).
//!
//! Invariants kept here: an id belongs to at most one record; `next_id` is above every id
//! in a record, in `orphans` and (after `adopt`) on disk; the per-collection list the
//! writers read holds exactly the building and ready records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ringdb_query::Path;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{IndexState, IndexStatus, Progress};
use crate::{Engine, StorageError};

/// Metadata key of the persisted catalog.
const META_CATALOG: &str = "indexes/catalog";

/// Where one index is in its life on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Writes maintain it; the build has indexed every data key up to `after`.
    Building {
        /// Last engine key the build passed (`None`: not started).
        after: Option<Vec<u8>>,
        /// Keys scanned and the estimate of all.
        progress: Progress,
    },
    /// Complete.
    Ready,
    /// No longer maintained; its entries are being deleted.
    Dropping,
}

/// One index this replica knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub id: u64,
    pub collection: String,
    pub path: Path,
    pub phase: Phase,
}

/// An index a write must keep in step.
#[derive(Debug, Clone)]
pub(crate) struct Maintained {
    pub id: u64,
    pub path: Path,
}

#[derive(Default)]
struct Table {
    records: BTreeMap<u64, Record>,
    /// Ids with entries on disk that no record owns (a crash before the catalog was saved,
    /// or a build restarted under a new id): their entries are deleted.
    orphans: BTreeSet<u64>,
    next_id: u64,
    by_collection: HashMap<String, Arc<[Maintained]>>,
    /// Changed since it was last persisted.
    dirty: bool,
}

impl Table {
    fn reindex(&mut self) {
        let mut by: HashMap<String, Vec<Maintained>> = HashMap::new();
        for r in self.records.values() {
            if r.phase != Phase::Dropping {
                by.entry(r.collection.clone())
                    .or_default()
                    .push(Maintained {
                        id: r.id,
                        path: r.path.clone(),
                    });
            }
        }
        self.by_collection = by.into_iter().map(|(c, v)| (c, v.into())).collect();
        self.dirty = true;
    }

    fn live(&self, collection: &str, path: &Path) -> Option<&Record> {
        self.records
            .values()
            .find(|r| r.phase != Phase::Dropping && r.collection == collection && r.path == *path)
    }

    fn allocate(&mut self) -> u64 {
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// The shared handle to this replica's index catalog; cheap to clone. The layer above
/// (the cluster's schema) pushes the wanted definitions into it; storage does the rest.
#[derive(Clone, Default)]
pub struct IndexCatalog {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    table: RwLock<Table>,
    wake: Notify,
}

fn state_of(phase: &Phase) -> Option<IndexState> {
    match phase {
        Phase::Building { progress, .. } => Some(IndexState::Building(*progress)),
        Phase::Ready => Some(IndexState::Ready),
        Phase::Dropping => None,
    }
}

impl IndexCatalog {
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.inner.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the indexes this replica maintains exactly `wanted` (collection, path pairs):
    /// new ones start building at once (every write from now on maintains them), ones no
    /// longer wanted stop being maintained and are deleted in the background. Cheap and
    /// non-blocking: the background upkeep does the work.
    pub fn define(&self, wanted: &[(String, Path)]) {
        let mut t = self.write();
        let mut changed = false;
        for r in t.records.values_mut() {
            let keep = wanted
                .iter()
                .any(|(c, p)| *c == r.collection && *p == r.path);
            if r.phase != Phase::Dropping && !keep {
                tracing::info!(collection = %r.collection, path = %r.path, id = r.id, "index dropped here");
                r.phase = Phase::Dropping;
                changed = true;
            }
        }
        for (c, p) in wanted {
            if t.live(c, p).is_none() {
                let id = t.allocate();
                tracing::info!(collection = %c, path = %p, id, "index defined here; building");
                t.records.insert(
                    id,
                    Record {
                        id,
                        collection: c.clone(),
                        path: p.clone(),
                        phase: Phase::Building {
                            after: None,
                            progress: Progress::default(),
                        },
                    },
                );
                changed = true;
            }
        }
        if changed {
            t.reindex();
            drop(t);
            self.inner.wake.notify_one();
        }
    }

    /// Every index this replica maintains with its state here, by collection then path.
    pub fn states(&self) -> Vec<IndexStatus> {
        let mut out: Vec<IndexStatus> = self
            .read()
            .records
            .values()
            .filter_map(|r| {
                state_of(&r.phase).map(|state| IndexStatus {
                    collection: r.collection.clone(),
                    path: r.path.clone(),
                    state,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.collection, &a.path).cmp(&(&b.collection, &b.path)));
        out
    }

    /// The state here of the index on `path` in `collection`; `None`: not maintained here.
    pub fn state_of(&self, collection: &str, path: &Path) -> Option<IndexState> {
        self.lookup(collection, path).map(|(_, s)| s)
    }

    /// The local id and state of a maintained index.
    pub(crate) fn lookup(&self, collection: &str, path: &Path) -> Option<(u64, IndexState)> {
        let t = self.read();
        let r = t.live(collection, path)?;
        state_of(&r.phase).map(|s| (r.id, s))
    }

    /// The indexes a write to `collection` must keep in step (`None`: none).
    pub(crate) fn maintained(&self, collection: &str) -> Option<Arc<[Maintained]>> {
        self.read().by_collection.get(collection).cloned()
    }

    /// Every record in `phase`'s kind (building, ready or dropping), by id.
    pub(crate) fn in_phase(&self, pick: fn(&Phase) -> bool) -> Vec<Record> {
        self.read()
            .records
            .values()
            .filter(|r| pick(&r.phase))
            .cloned()
            .collect()
    }

    /// Record a build's progress; false if the index is no longer building (dropped).
    pub(crate) fn advance(&self, id: u64, after: Option<Vec<u8>>, progress: Progress) -> bool {
        let mut t = self.write();
        match t.records.get_mut(&id) {
            Some(r) if matches!(r.phase, Phase::Building { .. }) => {
                r.phase = Phase::Building { after, progress };
                true
            }
            _ => false,
        }
    }

    /// The build of `id` passed every key: it is ready (if still building).
    pub(crate) fn finish_build(&self, id: u64) {
        let mut t = self.write();
        if let Some(r) = t.records.get_mut(&id) {
            if matches!(r.phase, Phase::Building { .. }) {
                tracing::info!(collection = %r.collection, path = %r.path, id, "index ready here");
                r.phase = Phase::Ready;
                t.reindex();
            }
        }
    }

    /// Rebuild index `id` from the start under a new id (its entries may be wrong); the
    /// old id's entries become orphans.
    pub(crate) fn restart(&self, id: u64) {
        let mut t = self.write();
        let Some(mut r) = t.records.remove(&id) else {
            return;
        };
        t.orphans.insert(id);
        r.id = t.allocate();
        r.phase = Phase::Building {
            after: None,
            progress: Progress::default(),
        };
        tracing::info!(collection = %r.collection, path = %r.path, old = id, new = r.id, "index rebuilt from the start here");
        t.records.insert(r.id, r);
        t.reindex();
    }

    /// Ids whose entries are to be deleted: dropped indexes and orphans.
    pub(crate) fn to_delete(&self) -> Vec<u64> {
        let t = self.read();
        let mut ids: Vec<u64> = t
            .records
            .values()
            .filter(|r| r.phase == Phase::Dropping)
            .map(|r| r.id)
            .collect();
        ids.extend(t.orphans.iter().copied());
        ids.sort_unstable();
        ids
    }

    /// Index `id`'s entries are all deleted: forget it.
    pub(crate) fn forget(&self, id: u64) {
        let mut t = self.write();
        let dropped = t
            .records
            .get(&id)
            .is_some_and(|r| r.phase == Phase::Dropping);
        if dropped {
            t.records.remove(&id);
        }
        if t.orphans.remove(&id) || dropped {
            t.dirty = true;
        }
    }

    /// Take ids found with entries on disk: those no record owns become orphans, and new
    /// ids are allocated above all of them.
    pub(crate) fn adopt(&self, on_disk: &[u64]) {
        let mut t = self.write();
        for id in on_disk {
            if !t.records.contains_key(id) && t.orphans.insert(*id) {
                tracing::info!(
                    id,
                    "index entries on disk that no index owns; deleting them"
                );
                t.dirty = true;
            }
            t.next_id = t.next_id.max(id.saturating_add(1));
        }
    }

    /// Wait until the catalog changes (or a permit left by an earlier change).
    pub(crate) async fn changed(&self) {
        self.inner.wake.notified().await;
    }

    /// Save the catalog in node metadata (on a storage thread: it flushes).
    pub(crate) fn persist(&self, engine: &dyn Engine) -> Result<(), StorageError> {
        let bytes = {
            let mut t = self.write();
            t.dirty = false;
            encode(&t)
        };
        let r = engine.put_meta(META_CATALOG, &bytes);
        if r.is_err() {
            self.write().dirty = true;
        }
        r
    }

    /// Whether the catalog changed since it was last saved.
    pub(crate) fn is_dirty(&self) -> bool {
        self.read().dirty
    }

    /// The catalog saved in `engine`'s metadata (empty if none). A record that cannot be
    /// read back has its id treated as an orphan: the layer above defines it again and it
    /// is rebuilt.
    pub(crate) fn load(engine: &dyn Engine) -> Result<IndexCatalog, StorageError> {
        let catalog = IndexCatalog::default();
        if let Some(bytes) = engine.get_meta(META_CATALOG)? {
            let mut t = catalog.write();
            decode(&bytes, &mut t);
            t.reindex();
            t.dirty = false;
        }
        Ok(catalog)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode(t: &Table) -> Vec<u8> {
    let records: Vec<Value> = t
        .records
        .values()
        .map(|r| {
            let mut v = json!({"id": r.id, "collection": r.collection, "path": r.path.to_string()});
            match &r.phase {
                Phase::Building { after, progress } => {
                    v["phase"] = json!("building");
                    v["after"] = after.as_deref().map_or(Value::Null, |a| json!(hex(a)));
                    v["done"] = json!(progress.done);
                    v["total"] = json!(progress.total);
                }
                Phase::Ready => v["phase"] = json!("ready"),
                Phase::Dropping => v["phase"] = json!("dropping"),
            }
            v
        })
        .collect();
    json!({"next_id": t.next_id, "records": records, "orphans": t.orphans})
        .to_string()
        .into_bytes()
}

fn decode_record(v: &Value) -> Option<Record> {
    let id = v["id"].as_u64()?;
    let collection = v["collection"].as_str()?.to_string();
    let path = Path::parse(v["path"].as_str()?).ok()?;
    let phase = match v["phase"].as_str()? {
        "building" => Phase::Building {
            after: match &v["after"] {
                Value::Null => None,
                a => Some(unhex(a.as_str()?)?),
            },
            progress: Progress {
                done: v["done"].as_u64()?,
                total: v["total"].as_u64()?,
            },
        },
        "ready" => Phase::Ready,
        "dropping" => Phase::Dropping,
        _ => return None,
    };
    Some(Record {
        id,
        collection,
        path,
        phase,
    })
}

fn decode(bytes: &[u8], t: &mut Table) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        tracing::error!("the saved index catalog is unreadable; indexes are rebuilt");
        return;
    };
    t.next_id = v["next_id"].as_u64().unwrap_or(0);
    for r in v["records"].as_array().into_iter().flatten() {
        match decode_record(r) {
            Some(r) => {
                t.next_id = t.next_id.max(r.id + 1);
                t.records.insert(r.id, r);
            }
            None => {
                tracing::error!(record = %r, "an unreadable index record; its index is rebuilt");
                if let Some(id) = r["id"].as_u64() {
                    t.orphans.insert(id);
                    t.next_id = t.next_id.max(id + 1);
                }
            }
        }
    }
    for id in v["orphans"].as_array().into_iter().flatten() {
        if let Some(id) = id.as_u64() {
            t.orphans.insert(id);
            t.next_id = t.next_id.max(id + 1);
        }
    }
}
