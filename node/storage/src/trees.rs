//! This replica's hash trees (one per collection), kept current by the storage threads and
//! queried by anti-entropy. They are checkpointed at a clean shutdown; after a crash they
//! are rebuilt by the startup scan, which then also recounts keys and bytes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use crate::keys::{collection_of, parse_entry, token_of, token_prefix};
use crate::{Engine, Storage, StorageError};
use ringdb_core::merkle::{cover, entry_hash, segment_of, Leaves};
use ringdb_core::ring::Token;

/// Meta key set while a checkpoint on disk matches the data; cleared as soon as a node
/// starts writing again.
const META_CLEAN: &str = "merkle/clean";
/// Meta key listing the checkpointed collections.
const META_LIST: &str = "merkle/collections";

/// Every collection's leaves on this replica.
#[derive(Default)]
pub struct Trees {
    by_collection: RwLock<HashMap<String, Arc<Leaves>>>,
}

impl Trees {
    /// One collection's tree, if it holds anything here.
    pub fn get(&self, collection: &str) -> Option<Arc<Leaves>> {
        self.by_collection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .cloned()
    }

    fn get_or_create(&self, collection: &str) -> Arc<Leaves> {
        if let Some(l) = self.get(collection) {
            return l;
        }
        self.by_collection
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(collection.to_string())
            .or_default()
            .clone()
    }

    /// Account for a key's stored bytes changing from `old` to `new`.
    pub(super) fn record(&self, storage_key: &[u8], old: Option<&[u8]>, new: &[u8]) {
        let (Some(c), Some(t)) = (collection_of(storage_key), token_of(storage_key)) else {
            return;
        };
        let mut h = entry_hash(storage_key, new);
        if let Some(o) = old {
            h ^= entry_hash(storage_key, o);
        }
        self.get_or_create(c).toggle(segment_of(t), h);
    }

    /// Account for a key's entry disappearing (tombstone purge).
    pub(super) fn forget(&self, storage_key: &[u8], old: &[u8]) {
        let (Some(c), Some(t)) = (collection_of(storage_key), token_of(storage_key)) else {
            return;
        };
        self.get_or_create(c)
            .toggle(segment_of(t), entry_hash(storage_key, old));
    }

    /// The collections that hold anything on this replica.
    pub fn collections(&self) -> Vec<String> {
        self.by_collection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Each collection's root hash, sorted by name (equal on replicas holding equal data
    /// when they replicate the same ranges).
    pub fn roots(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .by_collection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(c, l)| (c.clone(), l.root()))
            .collect();
        v.sort();
        v
    }

    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        self.by_collection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(c, l)| (c.clone(), l.to_bytes()))
            .collect()
    }
}

/// What [`open`] found.
pub(super) struct Opened {
    pub trees: Trees,
    pub keys: u64,
    pub bytes: u64,
    /// The last stop was not clean: the data was scanned (and shown to the visitor).
    pub scanned: bool,
}

/// Load the checkpoint if the last shutdown was clean, else rebuild trees and counts with
/// one scan, showing every data entry to `also` too (the index check); then mark the
/// checkpoint stale.
pub(super) fn open(
    engine: &dyn Engine,
    also: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<Opened, StorageError> {
    let trees = Trees::default();
    let restored = match engine.get_meta(META_CLEAN)? {
        Some(stats) if stats.len() == 16 => restore(engine, &trees)?.then(|| {
            let keys = u64::from_le_bytes(stats[..8].try_into().unwrap_or([0; 8]));
            let bytes = u64::from_le_bytes(stats[8..].try_into().unwrap_or([0; 8]));
            (keys, bytes)
        }),
        _ => None,
    };
    let scanned = restored.is_none();
    let (keys, bytes) = match restored {
        Some(counts) => counts,
        None => {
            let trees_ref = &trees;
            let (mut keys, mut bytes) = (0u64, 0u64);
            let started = std::time::Instant::now();
            engine.for_each_data(&mut |k, v| {
                keys += 1;
                bytes += v.len() as u64;
                trees_ref.record(k, None, v);
                also(k, v);
            })?;
            tracing::info!(
                keys,
                seconds = started.elapsed().as_secs_f64(),
                "hash trees rebuilt by a full scan (no clean-shutdown checkpoint)"
            );
            (keys, bytes)
        }
    };
    engine.put_meta(META_CLEAN, &[])?;
    Ok(Opened {
        trees,
        keys,
        bytes,
        scanned,
    })
}

/// Fill `trees` from the checkpoint; false if any part is missing or malformed.
fn restore(engine: &dyn Engine, trees: &Trees) -> Result<bool, StorageError> {
    let Some(list) = engine.get_meta(META_LIST)? else {
        return Ok(false);
    };
    let Ok(list) = String::from_utf8(list) else {
        return Ok(false);
    };
    let mut map = trees
        .by_collection
        .write()
        .unwrap_or_else(|p| p.into_inner());
    for c in list.split('\n').filter(|c| !c.is_empty()) {
        match engine
            .get_meta(&format!("merkle/tree/{c}"))?
            .and_then(|b| Leaves::from_bytes(&b))
        {
            Some(l) => {
                map.insert(c.to_string(), Arc::new(l));
            }
            None => return Ok(false),
        }
    }
    Ok(true)
}

impl Storage {
    /// This replica's hash trees.
    pub fn trees(&self) -> &Trees {
        &self.trees
    }

    /// Hash of a collection's entries with tokens in `[first, last]` (first <= last): whole
    /// segments from the tree, partial ones by scanning their keys.
    pub async fn range_hash(
        &self,
        collection: &str,
        first: Token,
        last: Token,
    ) -> Result<u64, StorageError> {
        let c = cover(first, last);
        let mut h = match (c.whole, self.trees.get(collection)) {
            (Some((a, b)), Some(l)) => l.run(a, b),
            _ => 0,
        };
        for (a, b) in c.partial {
            for (_, kh) in self.key_hashes(collection, a, b).await? {
                h ^= kh;
            }
        }
        Ok(h)
    }

    /// Every key of a collection with its token in `[first, last]`, with its entry hash.
    pub async fn key_hashes(
        &self,
        collection: &str,
        first: Token,
        last: Token,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let from = token_prefix(first).to_vec();
        let mut to = token_prefix(last).to_vec();
        to.extend_from_slice(&[0xff; 8]);
        let collection = collection.to_string();
        self.run(move |e| {
            let mut out = Vec::new();
            let mut from = from;
            loop {
                let rows = e.scan_data(&from, &to, 1024)?;
                let done = rows.len() < 1024;
                if let Some((k, _)) = rows.last() {
                    from = k.clone();
                    from.push(0);
                }
                for (k, v) in rows {
                    let h = entry_hash(&k, &v);
                    if let Some(entry) = parse_entry(k, v) {
                        if entry.collection == collection {
                            out.push((entry.key, h));
                        }
                    }
                }
                if done {
                    return Ok(out);
                }
            }
        })
        .await
    }

    /// Save the trees and counts for the next start and refuse writes from now on: the
    /// last step of a clean shutdown. Waits for every storage thread to be idle so no
    /// write lands between the snapshot and the refusal.
    pub async fn checkpoint(&self) -> Result<(), StorageError> {
        let (engine, trees, stats, closed, catalog) = (
            self.engine.clone(),
            self.trees.clone(),
            self.stats.clone(),
            self.closed.clone(),
            self.indexes().clone(),
        );
        self.while_idle(move || {
            closed.store(true, Ordering::Release);
            // Index builds resume where they stopped.
            catalog.persist(engine.as_ref())?;
            let snapshot = trees.snapshot();
            let mut names = String::new();
            for (c, bytes) in &snapshot {
                engine.put_meta(&format!("merkle/tree/{c}"), bytes)?;
                names.push_str(c);
                names.push('\n');
            }
            engine.put_meta(META_LIST, names.as_bytes())?;
            engine.flush()?;
            let mut counts = stats.keys.load(Ordering::Relaxed).to_le_bytes().to_vec();
            counts.extend_from_slice(&stats.bytes.load(Ordering::Relaxed).to_le_bytes());
            engine.put_meta(META_CLEAN, &counts)
        })
        .await
    }
}
