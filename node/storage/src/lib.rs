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
//! This crate sits on `ringdb-core` and the pure query core `ringdb-query` only: it cannot
//! reach the cluster, coordinator, repair or API layers of the node above it, and reads
//! time from the clock it is started with. The indexes it keeps are defined by the layer
//! above through the [`IndexCatalog`] handle. Besides the shared types and the handle in
//! this file, its files depend one way: `keys` and `engine` at the bottom, then the index
//! catalog and upkeep and `trees`, then `worker` (the storage threads), then the handle's
//! other operations (`expiry`, `tombstones`, `visit`, the index build, check and scans); no
//! two of them import each other.

pub mod engine;
mod expiry;
pub mod indexes;
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
pub use indexes::{
    BuildPace, IndexCatalog, IndexError, IndexHit, IndexPage, IndexState, IndexStatus, Progress,
};
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
    catalog: IndexCatalog,
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
        let catalog = IndexCatalog::load(engine.as_ref())?;
        let mut check = indexes::verify::Check::new(&catalog);
        let opened = trees::open(engine.as_ref(), &mut |k, v| check.observe(k, v))?;
        if opened.scanned {
            check.finish(engine.as_ref(), &catalog)?;
        }
        indexes::verify::adopt_ids_on_disk(engine.as_ref(), &catalog)?;
        let (keys, bytes) = (opened.keys, opened.bytes);
        let trees = Arc::new(opened.trees);
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
                catalog: catalog.clone(),
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
            catalog,
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

    /// The indexes this replica maintains: the layer above defines them through this
    /// handle ([`IndexCatalog::define`]) and reads their states from it.
    pub fn indexes(&self) -> &IndexCatalog {
        &self.catalog
    }

    /// The storage thread that owns an engine key: everything touching one key runs there.
    fn shard_of(&self, key: &[u8]) -> usize {
        // The key starts with the token, already a uniform hash: use it to pick the shard.
        let h = u64::from_be_bytes(
            key.get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        );
        (h % self.shards.len() as u64) as usize
    }

    async fn call<T>(
        &self,
        key: Vec<u8>,
        make: impl FnOnce(Vec<u8>, Reply<T>) -> Job,
    ) -> Result<T, StorageError> {
        let shard = &self.shards[self.shard_of(&key)];
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
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.run_at(shard, f).await
    }

    /// Run `f` on storage thread `shard`, in order with that thread's other jobs (work on
    /// the keys it owns, or a fence).
    async fn run_at<T, F>(&self, shard: usize, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Engine) -> Result<T, StorageError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |e: &dyn Engine| {
            let _ = tx.send(f(e));
        }));
        self.shards[shard % self.shards.len()]
            .try_send(job)
            .map_err(|e| self.queue_error(e))?;
        rx.await.map_err(|_| StorageError::Stopped)?
    }

    /// Wait until every job queued on any storage thread before this call has finished:
    /// one no-op job through each thread (writes that ran under an older index catalog are
    /// then over).
    async fn fence(&self) -> Result<(), StorageError> {
        for shard in 0..self.shards.len() {
            self.run_at(shard, |_| Ok(())).await?;
        }
        Ok(())
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
mod tests;
