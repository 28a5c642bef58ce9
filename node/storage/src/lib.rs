//! Local replica storage: sibling sets on a synchronous engine, reached from async code
//! only through a bounded pool of storage threads.
//!
//! Invariants kept here:
//! - every operation on one key runs on the same storage thread (sharded by key hash), so a
//!   mint's read-modify-write and a concurrent replica merge never interleave;
//! - a durable write is answered only after a flush that began after the write was applied;
//!   concurrent writes share one flush (group commit) on a dedicated flusher thread;
//! - queues are bounded: a full queue is answered with `Overloaded`, never by growing.
//!
//! Keys are laid out as `token (8 bytes, order-preserving) ‖ collection ‖ 0 ‖ key`, so a
//! token range is one contiguous scan (for streaming and anti-entropy); see `keys`.
//!
//! This crate sits on `ringdb-core` only: it cannot reach the cluster, coordinator, repair
//! or API layers of the node above it, and reads time from the clock it is started with.
//! Besides the shared types and the handle in this file, its files depend one way: `keys`
//! and `engine` at the bottom, then `trees`, then `worker` (the storage threads), then the
//! handle's other operations (`expiry`, `tombstones`, `visit`); no two of them import each other.

pub mod engine;
mod expiry;
mod keys;
mod tombstones;
mod trees;
mod visit;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender, TrySendError};
use tokio::sync::oneshot;

pub use engine::{Engine, MemEngine, Pairs, SledEngine, Space};
use keys::{parse_entry, token_prefix};
pub use keys::{storage_key, Entry};
use ringdb_core::clock::{self, Clock};
use ringdb_core::ring::{token_for, Token};
use ringdb_core::version::{CausalContext, DecodeError, SiblingSet};
pub use trees::Trees;
pub use visit::{Visited, Visitor};
use worker::{flusher, worker, FlushWaiter, Job, Reply, Shared};

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The engine reported an I/O failure.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// On-disk data could not be read back.
    #[error("storage corruption: {0}")]
    Corrupt(String),
    /// The storage queue is full; the caller should shed load.
    #[error("storage overloaded: {0} operations queued")]
    Overloaded(usize),
    /// The storage threads have stopped (node shutting down).
    #[error("storage stopped")]
    Stopped,
}

impl From<DecodeError> for StorageError {
    fn from(e: DecodeError) -> Self {
        StorageError::Corrupt(e.to_string())
    }
}

/// When a write may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After fsync.
    Durable,
    /// Once applied in memory.
    Memory,
}

/// Sizing of the storage pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Storage threads; each owns a shard of the key space.
    pub threads: usize,
    /// Queued operations per thread before `Overloaded`.
    pub queue_depth: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: 4,
            queue_depth: 4096,
        }
    }
}

/// A new version to mint on this replica.
#[derive(Debug, Clone)]
pub struct Mint {
    /// This node's current incarnation.
    pub actor: String,
    /// What the writer had seen.
    pub context: CausalContext,
    /// Document bytes, or `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Wall-clock milliseconds.
    pub timestamp_ms: u64,
    /// When the new version expires (TTL), wall-clock milliseconds.
    pub expires_ms: Option<u64>,
}

/// Result of minting: the stored set (to replicate) and the new version's own context.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The full sibling set now stored here, encoded for shipping to the other replicas.
    pub stored: Bytes,
    /// Context that supersedes exactly the new version.
    pub context: CausalContext,
}

/// Live key and byte counts of this replica, reported in cluster status.
#[derive(Debug, Default)]
pub struct Stats {
    /// Keys stored (tombstones included).
    pub keys: AtomicU64,
    /// Bytes of stored sibling sets.
    pub bytes: AtomicU64,
    /// Group flushes performed.
    pub flushes: AtomicU64,
    /// Writes made durable by those flushes.
    pub flushed_writes: AtomicU64,
}

/// Async handle to the storage threads; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    shards: Arc<Vec<Sender<Job>>>,
    flush: Sender<FlushWaiter>,
    engine: Arc<dyn Engine>,
    stats: Arc<Stats>,
    queue_depth: usize,
    next_shard: Arc<std::sync::atomic::AtomicUsize>,
    trees: Arc<Trees>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    clock: Arc<dyn Clock>,
}

impl Storage {
    /// Start the storage threads and the flusher over an engine, on the system clock.
    pub fn start(engine: Arc<dyn Engine>, config: PoolConfig) -> Result<Storage, StorageError> {
        Storage::start_with_clock(engine, config, clock::system())
    }

    /// Start the storage threads and the flusher over an engine, reading time from `clock`
    /// (the node's clock, so a simulation can move it).
    pub fn start_with_clock(
        engine: Arc<dyn Engine>,
        config: PoolConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Storage, StorageError> {
        let stats = Arc::new(Stats::default());
        let (trees, keys, bytes) = trees::open(engine.as_ref())?;
        let trees = Arc::new(trees);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        stats.keys.store(keys, Ordering::Relaxed);
        stats.bytes.store(bytes, Ordering::Relaxed);
        let (flush_tx, flush_rx) =
            bounded::<FlushWaiter>(config.queue_depth * config.threads.max(1));
        {
            let engine = engine.clone();
            let stats = stats.clone();
            thread::Builder::new()
                .name("ringdb-flush".into())
                .spawn(move || flusher(engine, flush_rx, stats))
                .map_err(|e| StorageError::Io(e.to_string()))?;
        }
        let mut shards = Vec::new();
        for i in 0..config.threads.max(1) {
            let (tx, rx) = bounded::<Job>(config.queue_depth);
            let shared = Shared {
                engine: engine.clone(),
                flush: flush_tx.clone(),
                stats: stats.clone(),
                trees: trees.clone(),
                clock: clock.clone(),
                closed: closed.clone(),
            };
            thread::Builder::new()
                .name(format!("ringdb-storage-{i}"))
                .spawn(move || worker(shared, rx))
                .map_err(|e| StorageError::Io(e.to_string()))?;
            shards.push(tx);
        }
        Ok(Storage {
            shards: Arc::new(shards),
            flush: flush_tx,
            engine,
            stats,
            queue_depth: config.queue_depth,
            next_shard: Default::default(),
            trees,
            closed,
            clock,
        })
    }

    /// A full queue is overload; a closed one means the storage threads stopped.
    fn queue_error<T>(&self, e: TrySendError<T>) -> StorageError {
        match e {
            TrySendError::Full(_) => StorageError::Overloaded(self.queue_depth),
            TrySendError::Disconnected(_) => StorageError::Stopped,
        }
    }

    /// Counters for status reporting.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The clock this storage reads time from (the node's).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    async fn call<T>(
        &self,
        key: Vec<u8>,
        make: impl FnOnce(Vec<u8>, Reply<T>) -> Job,
    ) -> Result<T, StorageError> {
        // The key starts with the token, already a uniform hash: use it to pick the shard.
        let h = u64::from_be_bytes(key[..8].try_into().unwrap_or([0; 8]));
        let shard = &self.shards[(h % self.shards.len() as u64) as usize];
        let (tx, rx) = oneshot::channel();
        shard
            .try_send(make(key, tx))
            .map_err(|e| self.queue_error(e))?;
        rx.await.map_err(|_| StorageError::Stopped)?
    }

    /// This replica's encoded sibling set for a document, exactly as stored.
    pub async fn read_raw(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Bytes>, StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        self.call(k, |key, reply| Job::Read { key, reply }).await
    }

    /// This replica's sibling set for a document (empty when absent).
    pub async fn read(&self, collection: &str, key: &str) -> Result<SiblingSet, StorageError> {
        match self.read_raw(collection, key).await? {
            Some(b) => Ok(SiblingSet::decode(&b)?),
            None => Ok(SiblingSet::new()),
        }
    }

    /// Join another replica's sibling set into ours (replication and repair).
    pub async fn merge(
        &self,
        collection: &str,
        key: &str,
        incoming: SiblingSet,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        self.call(k, |key, reply| Job::Merge {
            key,
            incoming,
            durability,
            reply,
        })
        .await
    }

    /// Mint a new version here, as the key's coordinating replica.
    pub async fn mint(
        &self,
        collection: &str,
        key: &str,
        mint: Mint,
        durability: Durability,
    ) -> Result<Minted, StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        self.call(k, |key, reply| Job::Mint {
            key,
            mint,
            durability,
            reply,
        })
        .await
    }

    /// Run `f` on a storage thread: for engine work other than document reads and writes.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Engine) -> Result<T, StorageError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |e: &dyn Engine| {
            let _ = tx.send(f(e));
        }));
        let shard =
            &self.shards[self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len()];
        shard.try_send(job).map_err(|e| self.queue_error(e))?;
        rx.await.map_err(|_| StorageError::Stopped)?
    }

    /// Run `f` on a blocking thread while every storage thread waits between two jobs, so no
    /// job runs at the same time as `f`; the threads go on once `f` returns.
    async fn while_idle<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    {
        let parties = self.shards.len() + 1;
        let (idle, release) = (
            Arc::new(Barrier::new(parties)),
            Arc::new(Barrier::new(parties)),
        );
        let shards = self.shards.clone();
        tokio::task::spawn_blocking(move || {
            for shard in shards.iter() {
                let (idle, release) = (idle.clone(), release.clone());
                // A blocking send: the queue drains as the thread works through it.
                shard
                    .send(Job::Run(Box::new(move |_| {
                        idle.wait();
                        release.wait();
                    })))
                    .map_err(|_| StorageError::Stopped)?;
            }
            idle.wait();
            let result = f();
            release.wait();
            result
        })
        .await
        .map_err(|_| StorageError::Stopped)?
    }

    /// Up to `limit` documents whose tokens lie in `[first, last]` (no wrap-around), in
    /// token order, starting after engine key `after` when given.
    pub async fn scan_tokens(
        &self,
        first: Token,
        last: Token,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match after {
            Some(mut a) => {
                a.push(0);
                a
            }
            None => token_prefix(first).to_vec(),
        };
        let mut to = token_prefix(last).to_vec();
        to.extend_from_slice(&[0xff; 8]);
        let rows = self.run(move |e| e.scan_data(&from, &to, limit)).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| parse_entry(k, v))
            .collect())
    }

    /// Wait until everything applied so far is durable, sharing the next group flush.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.flush
            .try_send(FlushWaiter::Unit(tx))
            .map_err(|e| self.queue_error(e))?;
        rx.await.map_err(|_| StorageError::Stopped)?
    }

    /// Read node metadata off the async threads.
    pub async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let engine = self.engine.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || engine.get_meta(&key))
            .await
            .map_err(|_| StorageError::Stopped)?
    }

    /// Write node metadata durably, off the async threads.
    pub async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        let engine = self.engine.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || engine.put_meta(&key, &value))
            .await
            .map_err(|_| StorageError::Stopped)?
    }

    /// Flush everything, for a clean shutdown.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.flush())
            .await
            .map_err(|_| StorageError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mint(v: &'static str) -> Mint {
        Mint {
            actor: "n1.1".into(),
            context: CausalContext::new(),
            value: Some(Bytes::from_static(v.as_bytes())),
            timestamp_ms: 1,
            expires_ms: None,
        }
    }

    #[tokio::test]
    async fn minted_writes_survive_reopen_of_sled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Arc::new(SledEngine::open(dir.path(), 1 << 20, 1000).unwrap());
            let s = Storage::start(engine, PoolConfig::default()).unwrap();
            s.mint("c", "k", mint("{\"a\":1}"), Durability::Durable)
                .await
                .unwrap();
            s.mint("c", "k", mint("{\"a\":2}"), Durability::Durable)
                .await
                .unwrap();
            assert_eq!(s.stats().keys.load(Ordering::Relaxed), 1);
        }
        // The old storage threads release sled's lock as they wind down after the drop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let engine = loop {
            match SledEngine::open(dir.path(), 1 << 20, 1000) {
                Ok(e) => break Arc::new(e),
                Err(e) if std::time::Instant::now() > deadline => panic!("reopen: {e}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let s = Storage::start(engine, PoolConfig::default()).unwrap();
        let set = s.read("c", "k").await.unwrap();
        assert_eq!(
            set.live_values().count(),
            2,
            "two blind writes are siblings"
        );
        assert_eq!(s.stats().keys.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn hash_trees_survive_a_clean_stop_and_are_rebuilt_after_a_crash() {
        let engine = Arc::new(MemEngine::default());
        let s = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
        for i in 0..300 {
            s.mint("c", &i.to_string(), mint("{}"), Durability::Memory)
                .await
                .unwrap();
        }
        s.mint("d", "x", mint("{}"), Durability::Memory)
            .await
            .unwrap();
        let roots = s.trees().roots();
        assert_eq!(roots.len(), 2);
        assert!(roots.iter().all(|(_, r)| *r != 0));
        // Crash: no checkpoint; the restart rebuilds the same trees from the data.
        let crashed = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
        assert_eq!(crashed.trees().roots(), roots);
        assert_eq!(crashed.stats().keys.load(Ordering::Relaxed), 301);
        // Clean stop: the checkpoint is loaded, and writes after it are refused.
        crashed.checkpoint().await.unwrap();
        let refused = crashed
            .mint("c", "late", mint("{}"), Durability::Memory)
            .await;
        assert!(matches!(refused, Err(StorageError::Stopped)), "{refused:?}");
        engine
            .put(
                &storage_key(token_for("c", "0"), "c", "0"),
                b"not a sibling set",
            )
            .unwrap();
        let restored = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
        assert_eq!(
            restored.trees().roots(),
            roots,
            "the checkpoint, not a rescan (which would see the overwritten key), was used"
        );
        assert_eq!(restored.stats().keys.load(Ordering::Relaxed), 301);
        // The range hash over everything equals the root; a sub-range matches its keys.
        let all = restored.range_hash("c", i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(all, roots[0].1);
        let t = token_for("c", "7");
        let keys = restored.key_hashes("c", t, t).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(restored.range_hash("c", t, t).await.unwrap(), keys[0].1);
    }

    /// An engine whose fsync takes 5 ms, like a real disk.
    #[derive(Default)]
    struct SlowFlush(MemEngine);

    impl Engine for SlowFlush {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(key)
        }
        fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError> {
            self.0.put(key, value)
        }
        fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError> {
            self.0.delete(key)
        }
        fn flush(&self) -> Result<(), StorageError> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        }
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get_meta(key)
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
            self.0.put_meta(key, value)
        }
        fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
            self.0.for_each_data(visit)
        }
        fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
            self.0.aux_put(space, key, value)
        }
        fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
            self.0.aux_delete(space, key)
        }
        fn aux_scan(
            &self,
            space: Space,
            prefix: &[u8],
            limit: usize,
        ) -> Result<Pairs, StorageError> {
            self.0.aux_scan(space, prefix, limit)
        }
        fn next_id(&self) -> Result<u64, StorageError> {
            self.0.next_id()
        }
        fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError> {
            self.0.scan_data(from, to, limit)
        }
    }

    #[tokio::test]
    async fn concurrent_durable_writes_share_flushes() {
        let s = Storage::start(Arc::new(SlowFlush::default()), PoolConfig::default()).unwrap();
        let futs = (0..200).map(|i| {
            let s = s.clone();
            async move {
                s.mint("c", &i.to_string(), mint("{}"), Durability::Durable)
                    .await
            }
        });
        for r in futures::future::join_all(futs).await {
            r.unwrap();
        }
        assert_eq!(s.stats().flushed_writes.load(Ordering::Relaxed), 200);
        let flushes = s.stats().flushes.load(Ordering::Relaxed);
        assert!(
            flushes <= 20,
            "200 concurrent writes took {flushes} flushes: group commit is not grouping"
        );
    }

    #[tokio::test]
    async fn full_queue_is_overload_not_growth() {
        let s = Storage::start(
            Arc::new(MemEngine::default()),
            PoolConfig {
                threads: 1,
                queue_depth: 1,
            },
        )
        .unwrap();
        let futs = (0..500).map(|i| {
            let s = s.clone();
            async move {
                s.mint("c", &i.to_string(), mint("{}"), Durability::Memory)
                    .await
            }
        });
        let results = futures::future::join_all(futs).await;
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(StorageError::Overloaded(1)))));
        assert!(results.iter().any(|r| r.is_ok()));
    }
}
