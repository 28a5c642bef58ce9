//! Storage engines: the synchronous key-value layer under the storage pool.
//!
//! Engines are called only from storage threads, never from async workers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::StorageError;

/// Keyspaces kept beside the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Space {
    /// Writes waiting for a replica that was down (hinted handoff).
    Hints,
    /// Keys a replica is known to have missed and only repair can fix.
    Repairs,
    /// When documents with a TTL fall due: `expires_ms ‖ engine key`.
    Expiry,
    /// Keys holding only tombstones, candidates for purging: `engine key` → when noted.
    Dead,
    /// Secondary index entries: `index id (8 bytes BE) ‖ entry key` → nothing (see
    /// `indexes`).
    Index,
}

/// A list of `(key, value)` pairs read from an auxiliary keyspace.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the storage pool needs from a key-value store; sled in production, memory in simulation.
pub trait Engine: Send + Sync + 'static {
    /// Current value of a data key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replace a data key's value, returning the previous one's length.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError>;
    /// Remove a data key, returning the removed value's length.
    fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError>;
    /// Make every write so far durable (fsync).
    fn flush(&self) -> Result<(), StorageError>;
    /// Read node metadata (incarnation, tokens, members).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Write node metadata; durable on return.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Visit every data entry in key order (startup rebuild after an unclean stop).
    fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError>;
    /// Store an entry in an auxiliary keyspace.
    fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    /// Remove an entry from an auxiliary keyspace.
    fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError>;
    /// Up to `limit` entries whose keys start with `prefix`, in key order.
    fn aux_scan(&self, space: Space, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError>;
    /// Up to `limit` entries with keys in `[from, to)` (`to: None`: to the end), in key
    /// order: index scans. The default reads the common prefix of both bounds with
    /// `aux_scan` and filters, which is correct for any engine but reads more than it
    /// returns; real engines seek instead.
    fn aux_range(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StorageError> {
        let common = match to {
            Some(to) => from.iter().zip(to).take_while(|(a, b)| a == b).count(),
            None => 0,
        };
        let rows = self.aux_scan(space, &from[..common], usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter(|(k, _)| k.as_slice() >= from)
            .take_while(|(k, _)| to.is_none_or(|t| k.as_slice() < t))
            .take(limit)
            .collect())
    }
    /// A number larger than every one returned before, also across restarts.
    fn next_id(&self) -> Result<u64, StorageError>;
    /// Up to `limit` data entries with keys in `[from, to]`, in key order.
    fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError>;
}

/// The production engine: sled, with data and metadata in separate trees.
pub struct SledEngine {
    db: sled::Db,
    data: sled::Tree,
    meta: sled::Tree,
    hints: sled::Tree,
    repairs: sled::Tree,
    expiry: sled::Tree,
    dead: sled::Tree,
    index: sled::Tree,
}

impl SledEngine {
    /// Open (or create) the database under `dir`. sled also flushes on its own every
    /// `background_flush_ms`, which bounds what memory-only writes can lose.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        background_flush_ms: u64,
    ) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(background_flush_ms.max(1)))
            .open()
            .map_err(sled_err)?;
        let data = db.open_tree("data").map_err(sled_err)?;
        let meta = db.open_tree("meta").map_err(sled_err)?;
        let hints = db.open_tree("hints").map_err(sled_err)?;
        let repairs = db.open_tree("repairs").map_err(sled_err)?;
        let expiry = db.open_tree("expiry").map_err(sled_err)?;
        let dead = db.open_tree("dead").map_err(sled_err)?;
        let index = db.open_tree("index").map_err(sled_err)?;
        Ok(SledEngine {
            db,
            data,
            meta,
            hints,
            repairs,
            expiry,
            dead,
            index,
        })
    }
}

fn sled_err(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { .. } => StorageError::Corrupt(e.to_string()),
        other => StorageError::Io(other.to_string()),
    }
}

impl SledEngine {
    fn space(&self, space: Space) -> &sled::Tree {
        match space {
            Space::Hints => &self.hints,
            Space::Repairs => &self.repairs,
            Space::Expiry => &self.expiry,
            Space::Dead => &self.dead,
            Space::Index => &self.index,
        }
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.data.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError> {
        Ok(self
            .data
            .insert(key, value)
            .map_err(sled_err)?
            .map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError> {
        Ok(self.data.remove(key).map_err(sled_err)?.map(|v| v.len()))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(sled_err).map(|_| ())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.meta.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.meta.insert(key, value).map_err(sled_err)?;
        self.flush()
    }

    fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        for kv in self.data.iter() {
            let (k, v) = kv.map_err(sled_err)?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.space(space)
            .insert(key, value)
            .map_err(sled_err)
            .map(|_| ())
    }

    fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
        self.space(space).remove(key).map_err(sled_err).map(|_| ())
    }

    fn aux_scan(&self, space: Space, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let mut out = Vec::new();
        for kv in self.space(space).scan_prefix(prefix).take(limit) {
            let (k, v) = kv.map_err(sled_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn aux_range(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StorageError> {
        let tree = self.space(space);
        let iter = match to {
            Some(to) if to <= from => return Ok(Vec::new()),
            Some(to) => tree.range(from..to),
            None => tree.range(from..),
        };
        let mut out = Vec::new();
        for kv in iter.take(limit) {
            let (k, v) = kv.map_err(sled_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn next_id(&self) -> Result<u64, StorageError> {
        self.db.generate_id().map_err(sled_err)
    }

    fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let mut out = Vec::new();
        for kv in self.data.range(from..=to).take(limit) {
            let (k, v) = kv.map_err(sled_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

type AuxMap = BTreeMap<(Space, Vec<u8>), Vec<u8>>;

/// An engine that lives in memory, for simulation tests; `flush` is a no-op.
#[derive(Default)]
pub struct MemEngine {
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    meta: Mutex<BTreeMap<String, Vec<u8>>>,
    aux: Mutex<AuxMap>,
    ids: std::sync::atomic::AtomicU64,
}

fn poisoned<T>(_: T) -> StorageError {
    StorageError::Io("in-memory engine lock poisoned".into())
}

impl Engine for MemEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.data.lock().map_err(poisoned)?.get(key).cloned())
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError> {
        Ok(self
            .data
            .lock()
            .map_err(poisoned)?
            .insert(key.to_vec(), value.to_vec())
            .map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError> {
        Ok(self
            .data
            .lock()
            .map_err(poisoned)?
            .remove(key)
            .map(|v| v.len()))
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.meta.lock().map_err(poisoned)?.get(key).cloned())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.meta
            .lock()
            .map_err(poisoned)?
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        for (k, v) in self.data.lock().map_err(poisoned)?.iter() {
            visit(k, v);
        }
        Ok(())
    }

    fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.aux
            .lock()
            .map_err(poisoned)?
            .insert((space, key.to_vec()), value.to_vec());
        Ok(())
    }

    fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
        self.aux
            .lock()
            .map_err(poisoned)?
            .remove(&(space, key.to_vec()));
        Ok(())
    }

    fn aux_scan(&self, space: Space, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let aux = self.aux.lock().map_err(poisoned)?;
        Ok(aux
            .range((space, prefix.to_vec())..)
            .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn aux_range(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StorageError> {
        use std::ops::Bound;
        if to.is_some_and(|t| t <= from) {
            return Ok(Vec::new());
        }
        let aux = self.aux.lock().map_err(poisoned)?;
        let end = match to {
            Some(t) => Bound::Excluded((space, t.to_vec())),
            None => Bound::Unbounded,
        };
        Ok(aux
            .range((Bound::Included((space, from.to_vec())), end))
            .take_while(|((s, _), _)| *s == space)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn next_id(&self) -> Result<u64, StorageError> {
        Ok(self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let d = self.data.lock().map_err(poisoned)?;
        Ok(d.range(from.to_vec()..=to.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
