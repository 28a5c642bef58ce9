//! The index upkeep, a background task for the node's life: builds indexes over the
//! documents stored before they were defined, deletes the entries of dropped indexes and
//! orphaned ids, and saves the catalog when it changed.
//!
//! Both are paced ([`BuildPace`]): a bounded batch at a time, at most `keys_per_sec`, each
//! batch as one job per storage thread so foreground reads and writes queue between them.
//! A build indexes each document **on the storage thread that owns its key, from the
//! sibling set stored at that moment**: a write of the same key runs before or after it on
//! that thread, never beside it, so no stale or missing entry is left. One index builds at
//! a time, in id order. Progress is kept in memory; the shutdown checkpoint saves it, so a
//! node stopped cleanly resumes its build where it was (after a crash the build starts
//! over, see `verify.rs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringdb_core::version::SiblingSet;
use ringdb_query::Path;

use super::catalog::{Phase, Record};
use super::id_end;
use super::upkeep::index_document;
use crate::keys::collection_of;
use crate::{Space, Storage, StorageError};

/// How fast the background index work goes on a node.
#[derive(Debug, Clone)]
pub struct BuildPace {
    /// Data keys read per build batch (and index entries deleted per drop batch).
    pub batch: usize,
    /// At most this many keys per second are scanned (or entries deleted); 0: no limit
    /// beyond the storage queues.
    pub keys_per_sec: u64,
}

impl Default for BuildPace {
    fn default() -> Self {
        BuildPace {
            batch: 256,
            keys_per_sec: 20_000,
        }
    }
}

impl BuildPace {
    /// How long `n` keys of work should take at this pace.
    fn budget(&self, n: usize) -> Duration {
        if self.keys_per_sec == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(n as f64 / self.keys_per_sec as f64)
        }
    }
}

/// Past every data key: keys start with 8 token bytes then a UTF-8 collection name, which
/// never holds 0xff.
const DATA_END: [u8; 9] = [0xff; 9];

/// How long to wait before trying again when a storage queue was full.
const BACKOFF: Duration = Duration::from_millis(50);

impl Storage {
    /// Run the index upkeep until the storage stops: builds, drops, saving the catalog.
    pub async fn run_index_upkeep(self, pace: BuildPace) {
        let mut fenced = HashSet::new();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let started = Instant::now();
            let worked = match self.upkeep_step(&pace, &mut fenced).await {
                Ok(n) => n,
                Err(StorageError::Stopped) => return,
                Err(StorageError::Overloaded(_)) => {
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "index upkeep failed; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match worked {
                Some(n) => {
                    let left = pace.budget(n).saturating_sub(started.elapsed());
                    if left.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(left).await;
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.catalog.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// One bounded piece of work; returns how many keys or entries it handled (`None`:
    /// nothing to do).
    async fn upkeep_step(
        &self,
        pace: &BuildPace,
        fenced: &mut HashSet<u64>,
    ) -> Result<Option<usize>, StorageError> {
        if self.catalog.is_dirty() {
            let catalog = self.catalog.clone();
            self.run(move |e| catalog.persist(e)).await?;
        }
        if let Some(id) = self.catalog.to_delete().first().copied() {
            if fenced.insert(id) {
                self.fence().await?;
            }
            return self.delete_step(id, pace.batch.max(1)).await.map(Some);
        }
        let building = self
            .catalog
            .in_phase(|p| matches!(p, Phase::Building { .. }));
        if let Some(r) = building.into_iter().next() {
            if fenced.insert(r.id) {
                self.fence().await?;
            }
            return self.build_step(r, pace.batch.max(1)).await.map(Some);
        }
        Ok(None)
    }

    /// Delete up to `limit` entries of index `id`; forget the id once none are left.
    async fn delete_step(&self, id: u64, limit: usize) -> Result<usize, StorageError> {
        let n = self
            .run(move |e| {
                let end = id_end(id);
                let rows = e.aux_range(Space::Index, &id.to_be_bytes(), end.as_deref(), limit)?;
                for (k, _) in &rows {
                    e.aux_delete(Space::Index, k)?;
                }
                Ok(rows.len())
            })
            .await?;
        if n < limit {
            tracing::info!(id, "index entries deleted");
            self.catalog.forget(id);
        }
        Ok(n)
    }

    /// Index the documents of one batch of data keys after the build's cursor.
    async fn build_step(&self, r: Record, batch: usize) -> Result<usize, StorageError> {
        let Phase::Building { after, progress } = r.phase else {
            return Ok(0);
        };
        let mut progress = progress;
        if after.is_none() && progress.total == 0 {
            progress.total = self.stats.keys.load(Ordering::Relaxed);
        }
        let from = after.map_or_else(Vec::new, |mut a| {
            a.push(0);
            a
        });
        let rows = self
            .run(move |e| e.scan_data(&from, &DATA_END, batch))
            .await?;
        let last = rows.last().map(|(k, _)| k.clone());
        let mut by_shard: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, _) in &rows {
            if collection_of(k) == Some(r.collection.as_str()) {
                by_shard
                    .entry(self.shard_of(k))
                    .or_default()
                    .push(k.clone());
            }
        }
        let targets: Arc<[(u64, Path)]> = Arc::from(vec![(r.id, r.path.clone())]);
        for (shard, keys) in by_shard {
            let (targets, closed) = (targets.clone(), self.closed.clone());
            self.run_at(shard, move |e| {
                if closed.load(Ordering::Acquire) {
                    return Err(StorageError::Stopped);
                }
                for k in &keys {
                    let Some(raw) = e.get(k)? else {
                        continue;
                    };
                    let set = SiblingSet::decode(&Bytes::from(raw))?;
                    let live: Vec<Bytes> = set.live_values().cloned().collect();
                    index_document(e, k, &live, &targets)?;
                }
                Ok(())
            })
            .await?;
        }
        progress.done += rows.len() as u64;
        progress.total = progress.total.max(progress.done);
        if !self.catalog.advance(r.id, last, progress) {
            return Ok(rows.len());
        }
        if rows.len() < batch {
            self.catalog.finish_build(r.id);
        }
        Ok(rows.len())
    }
}
