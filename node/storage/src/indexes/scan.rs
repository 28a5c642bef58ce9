//! Reading indexes and collections for queries: the storage side of FIND, COUNT and
//! AGGREGATE on one replica. Every engine read runs on a storage thread in bounded jobs.
//!
//! - [`Storage::index_scan`]: the entries of a **ready** index in given entry-key ranges,
//!   each with the document's sibling set as stored when it is read.
//! - [`Storage::collection_scan`]: one collection's documents in key order (no index:
//!   `ALLOW FILTERING`).
//! - [`Storage::index_entries`]: an index's raw entries in any state (operators, tests).

use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use ringdb_core::version::SiblingSet;
use ringdb_query::value::split_entry;
use ringdb_query::{Path, ScanRange};
use serde_json::Value;

use super::{entry_engine_key, id_end, IndexState, Progress};
use crate::keys::{address_of, parse_entry, storage_key};
use crate::{Entry, Space, Storage, StorageError};
use ringdb_core::token::token_for;

/// Most hits, entries or documents one scan call returns; larger limits are cut to it.
pub const MAX_SCAN_LIMIT: usize = 10_000;

/// Data rows read per job by a collection scan.
const PAGE: usize = 1024;

/// Why an index could not be read on this replica.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// This replica maintains no index on that path of that collection (never defined
    /// here, or dropped).
    #[error("no index on {collection} ({path}) on this node")]
    NoSuchIndex {
        /// The collection asked for.
        collection: String,
        /// The path asked for, canonical.
        path: String,
    },
    /// The index is still building on this replica: a scan would miss documents stored
    /// before it was defined. Ask another replica, or wait.
    #[error("the index on {collection} ({path}) is still building on this node: {progress}")]
    IndexNotReady {
        /// The collection asked for.
        collection: String,
        /// The path asked for, canonical.
        path: String,
        /// How far its build has come here.
        progress: Progress,
    },
    /// The engine failed (or is overloaded, or stopped).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One index entry found by [`Storage::index_scan`], with its document.
#[derive(Debug, Clone)]
pub struct IndexHit {
    /// The entry key, `encode(value) ‖ document key`: results come in its order; resume
    /// a scan strictly after it.
    pub entry: Vec<u8>,
    /// The indexed value (canonical: `1.0` reads back as `1`).
    pub value: Value,
    /// The document's key.
    pub key: String,
    /// The document's encoded sibling set as stored when it was read (after the entry):
    /// a write in between may have changed it, so it may no longer yield `value`, and a
    /// version whose TTL passed may still be in it until the expiry sweep. Decode it,
    /// `expire(now)` and re-check, as a query does with every candidate.
    pub siblings: Bytes,
}

/// One bounded step of an index scan ([`Storage::index_page`]).
#[derive(Debug, Clone, Default)]
pub struct IndexPage {
    /// The entries read that the caller kept, in entry-key order, with their documents.
    pub hits: Vec<IndexHit>,
    /// Index entries read (kept or not).
    pub read: usize,
    /// The last entry key read when the scan stopped at its limit: more entries may follow,
    /// so the next step resumes strictly after it. `None`: the ranges are exhausted.
    pub resume: Option<Vec<u8>>,
}

impl Storage {
    /// Scan the index on `path` of `collection`: up to `limit` (at most
    /// [`MAX_SCAN_LIMIT`]) entries lying in `ranges` (sorted and disjoint, as
    /// [`ringdb_query::Condition::ranges`] gives them) and strictly after entry key
    /// `after` when given (a resume point), in entry-key order, each with the document's
    /// current sibling set. A document appears once per distinct value it has at `path`.
    /// Entries whose document is gone by the time it is read are skipped.
    ///
    /// Fails with [`IndexError::IndexNotReady`] while the index is building on this
    /// replica (also if it stopped being ready during the scan) and
    /// [`IndexError::NoSuchIndex`] when this replica does not maintain it.
    pub async fn index_scan(
        &self,
        collection: &str,
        path: &Path,
        ranges: &[ScanRange],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<IndexHit>, IndexError> {
        let page = self
            .index_page(collection, path, ranges, after, limit, &|_| true)
            .await?;
        Ok(page.hits)
    }

    /// One step of an index scan, as [`Storage::index_scan`], that also says where to
    /// resume: reads up to `limit` entries and keeps those whose document key passes
    /// `keep` (a query keeps the keys in its token ranges), reading only their documents.
    pub async fn index_page(
        &self,
        collection: &str,
        path: &Path,
        ranges: &[ScanRange],
        after: Option<&[u8]>,
        limit: usize,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<IndexPage, IndexError> {
        let id = self.ready_index(collection, path)?;
        let limit = limit.clamp(1, MAX_SCAN_LIMIT);
        let mut ranges: Vec<ScanRange> = match after {
            Some(a) => ranges.iter().filter_map(|r| r.after(a)).collect(),
            None => ranges.to_vec(),
        };
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        let mut entries: Vec<Vec<u8>> = Vec::new();
        for r in ranges {
            let want = limit - entries.len();
            if want == 0 {
                break;
            }
            let from = entry_engine_key(id, &r.start);
            let to = match &r.end {
                Some(end) => Some(entry_engine_key(id, end)),
                None => id_end(id),
            };
            let rows = self
                .run(move |e| e.aux_range(Space::Index, &from, to.as_deref(), want))
                .await?;
            entries.extend(
                rows.into_iter()
                    .map(|(k, _)| k.get(8..).unwrap_or_default().to_vec()),
            );
        }
        // Dropped or restarted meanwhile: what was read may be partial.
        if self.ready_index(collection, path)? != id {
            return Err(self.not_ready(collection, path));
        }
        let read = entries.len();
        let resume = (read == limit).then(|| entries[read - 1].clone());
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries {
            match split_entry(&entry) {
                Ok((value, key)) if keep(key) => {
                    let key = key.to_string();
                    parsed.push((entry, value, key));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, collection, %path, "unreadable index entry skipped")
                }
            }
        }
        let keys = parsed
            .iter()
            .map(|(_, _, key)| storage_key(token_for(collection, key), collection, key))
            .collect();
        let sets = self.read_many(keys).await?;
        let hits = parsed
            .into_iter()
            .zip(sets)
            .filter_map(|((entry, value, key), set)| {
                set.map(|siblings| IndexHit {
                    entry,
                    value,
                    key,
                    siblings,
                })
            })
            .collect();
        Ok(IndexPage { hits, read, resume })
    }

    /// The raw entry keys of the index on `path` of `collection` on this replica, whatever
    /// its state (an operator's and a test's view), up to `limit` (at most
    /// [`MAX_SCAN_LIMIT`]) strictly after `after`, with the index's state here.
    pub async fn index_entries(
        &self,
        collection: &str,
        path: &Path,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, IndexState), IndexError> {
        let Some((id, state)) = self.catalog.lookup(collection, path) else {
            return Err(IndexError::NoSuchIndex {
                collection: collection.to_string(),
                path: path.to_string(),
            });
        };
        let limit = limit.min(MAX_SCAN_LIMIT);
        let from = match after {
            Some(a) => {
                let mut k = entry_engine_key(id, a);
                k.push(0);
                k
            }
            None => id.to_be_bytes().to_vec(),
        };
        let to = id_end(id);
        let rows = self
            .run(move |e| e.aux_range(Space::Index, &from, to.as_deref(), limit))
            .await?;
        Ok((
            rows.into_iter()
                .map(|(k, _)| k.get(8..).unwrap_or_default().to_vec())
                .collect(),
            state,
        ))
    }

    /// Up to `limit` (at most [`MAX_SCAN_LIMIT`]) documents of `collection` with keys
    /// strictly after `after`, in key order (UTF-8 bytes), each with its sibling set as
    /// read. Keys holding only tombstones are left out: they match no filter.
    ///
    /// Documents are stored in token order, so this reads every document of this replica
    /// (page by page, each page one storage job) and keeps the `limit` smallest keys: a
    /// call costs a scan of the replica whatever the limit; page with large limits.
    pub async fn collection_scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let limit = limit.min(MAX_SCAN_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A max-heap of the smallest keys seen: its top is the one to drop first.
        let mut best: BinaryHeap<(String, Vec<u8>, Vec<u8>)> = BinaryHeap::new();
        let mut from = Vec::new();
        loop {
            let start = from.clone();
            let rows = self
                .run(move |e| e.scan_data(&start, &[0xff; 9], PAGE))
                .await?;
            for (k, v) in &rows {
                let Some((c, key)) = address_of(k) else {
                    continue;
                };
                let wanted = c == collection
                    && after.is_none_or(|a| key > a)
                    && (best.len() < limit
                        || best.peek().is_some_and(|(top, _, _)| key < top.as_str()));
                if wanted && has_live(v) {
                    best.push((key.to_string(), k.clone(), v.clone()));
                    if best.len() > limit {
                        best.pop();
                    }
                }
            }
            match rows.last() {
                Some((k, _)) if rows.len() == PAGE => {
                    from = k.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(best
            .into_sorted_vec()
            .into_iter()
            .filter_map(|(_, k, v)| parse_entry(k, v))
            .collect())
    }

    /// The id of a ready index, or why there is none.
    fn ready_index(&self, collection: &str, path: &Path) -> Result<u64, IndexError> {
        match self.catalog.lookup(collection, path) {
            Some((id, IndexState::Ready)) => Ok(id),
            Some((_, IndexState::Building(progress))) => Err(IndexError::IndexNotReady {
                collection: collection.to_string(),
                path: path.to_string(),
                progress,
            }),
            None => Err(IndexError::NoSuchIndex {
                collection: collection.to_string(),
                path: path.to_string(),
            }),
        }
    }

    fn not_ready(&self, collection: &str, path: &Path) -> IndexError {
        match self.ready_index(collection, path) {
            Err(e) => e,
            Ok(_) => IndexError::IndexNotReady {
                collection: collection.to_string(),
                path: path.to_string(),
                progress: Progress::default(),
            },
        }
    }

    /// Several documents' stored bytes, each read on the storage thread owning its key
    /// (one job per thread), in the order asked.
    async fn read_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Bytes>>, StorageError> {
        let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
        let mut by_shard: BTreeMap<usize, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        for (i, k) in keys.into_iter().enumerate() {
            by_shard.entry(self.shard_of(&k)).or_default().push((i, k));
        }
        for (shard, keys) in by_shard {
            let found = self
                .run_at(shard, move |e| {
                    keys.into_iter()
                        .map(|(i, k)| Ok((i, e.get(&k)?.map(Bytes::from))))
                        .collect::<Result<Vec<_>, StorageError>>()
                })
                .await?;
            for (i, v) in found {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// Whether stored sibling-set bytes hold at least one version with a value.
fn has_live(raw: &[u8]) -> bool {
    SiblingSet::decode(&Bytes::copy_from_slice(raw)).is_ok_and(|s| s.live_values().next().is_some())
}
