//! The storage threads: each owns a shard of the keys and applies reads, merges and mints
//! in arrival order; the flusher makes durable writes durable in groups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::indexes::upkeep;
use super::indexes::IndexCatalog;
use super::trees::Trees;
use super::{Durability, Engine, Mint, Minted, Space, Stats, StorageError};
use ringdb_core::clock::Clock;
use ringdb_core::version::SiblingSet;

pub(super) type EngineTask = Box<dyn FnOnce(&dyn Engine) + Send>;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

pub(super) enum Job {
    /// Anything else that needs the engine, off the async threads.
    Run(EngineTask),
    Read {
        key: Vec<u8>,
        reply: Reply<Option<Bytes>>,
    },
    Merge {
        key: Vec<u8>,
        incoming: SiblingSet,
        durability: Durability,
        reply: Reply<()>,
    },
    Mint {
        key: Vec<u8>,
        mint: Mint,
        durability: Durability,
        reply: Reply<Minted>,
    },
    /// Remove the key if its entry hash is still `hash` (tombstone purge).
    Purge {
        key: Vec<u8>,
        hash: u64,
        reply: Reply<bool>,
    },
}

impl Job {
    /// After the shutdown checkpoint: answer a write with `Stopped`, pass anything else on.
    fn refuse_writes(self) -> Option<Job> {
        // A caller that went away does not need the answer.
        match self {
            Job::Merge { reply, .. } => drop(reply.send(Err(StorageError::Stopped))),
            Job::Mint { reply, .. } => drop(reply.send(Err(StorageError::Stopped))),
            Job::Purge { reply, .. } => drop(reply.send(Err(StorageError::Stopped))),
            other => return Some(other),
        }
        None
    }
}

/// A write applied in memory and waiting for the next group flush.
pub(super) enum FlushWaiter {
    Unit(Reply<()>),
    Minted(Reply<Minted>, Minted),
}

impl FlushWaiter {
    fn finish(self, result: Result<(), StorageError>) {
        match self {
            FlushWaiter::Unit(r) => {
                let _ = r.send(result);
            }
            FlushWaiter::Minted(r, m) => {
                let _ = r.send(result.map(|_| m));
            }
        }
    }
}

/// A key's sibling set and the bytes it was decoded from (`None` when absent).
fn load(engine: &dyn Engine, key: &[u8]) -> Result<(SiblingSet, Option<Bytes>), StorageError> {
    match engine.get(key)? {
        Some(v) => {
            let raw = Bytes::from(v);
            Ok((SiblingSet::decode(&raw)?, Some(raw)))
        }
        None => Ok((SiblingSet::new(), None)),
    }
}

/// A key's stored sibling set changing from `old` (its bytes and live values; `None`:
/// absent) to `new` (`None`: the key is deleted).
pub(super) struct Change<'a> {
    key: &'a [u8],
    old: Option<(&'a [u8], Vec<Bytes>)>,
    new: Option<(&'a [u8], Vec<Bytes>)>,
}

/// The one place a stored sibling set changes: the data itself and everything that must
/// follow it (key and byte counters, the hash tree, every index of its collection). Mint,
/// merge (and so every replication, repair, streaming and expiry path) and purge all come
/// here, so none of them can leave an index behind.
fn write_through(sh: &Ctx<'_>, change: Change<'_>) -> Result<(), StorageError> {
    let Change { key, old, new } = change;
    let old_bytes = old.as_ref().map(|(b, _)| *b);
    match &new {
        Some((encoded, _)) => {
            sh.engine.put(key, encoded)?;
            match old_bytes {
                None => {
                    sh.stats.keys.fetch_add(1, Ordering::Relaxed);
                }
                Some(o) => {
                    sh.stats.bytes.fetch_sub(o.len() as u64, Ordering::Relaxed);
                }
            }
            sh.stats
                .bytes
                .fetch_add(encoded.len() as u64, Ordering::Relaxed);
            sh.trees.record(key, old_bytes, encoded);
        }
        None => {
            let Some(o) = old_bytes else {
                return Ok(());
            };
            sh.engine.delete(key)?;
            sh.stats.keys.fetch_sub(1, Ordering::Relaxed);
            sh.stats.bytes.fetch_sub(o.len() as u64, Ordering::Relaxed);
            sh.trees.forget(key, o);
        }
    }
    let before = old.as_ref().map_or(&[][..], |(_, live)| live.as_slice());
    let after = new.as_ref().map_or(&[][..], |(_, live)| live.as_slice());
    upkeep::follow(sh.engine, sh.catalog, key, before, after)
}

/// A sibling set's stored live values (what its index entries are computed from).
fn live(set: &SiblingSet) -> Vec<Bytes> {
    set.live_values().cloned().collect()
}

/// The expiry index key: due time first, so the sweep reads what is due in order.
pub(super) fn expiry_key(expires_ms: u64, storage_key: &[u8]) -> Vec<u8> {
    let mut k = expires_ms.to_be_bytes().to_vec();
    k.extend_from_slice(storage_key);
    k
}

/// Note when a stored set's next TTL falls due, so the sweep finds it without scanning.
/// Stale entries (the key was rewritten) are harmless: the sweep checks the key itself.
fn schedule_expiry(
    engine: &dyn Engine,
    clock: &dyn Clock,
    key: &[u8],
    set: &SiblingSet,
) -> Result<(), StorageError> {
    if let Some(e) = set.next_expiry() {
        engine.aux_put(Space::Expiry, &expiry_key(e, key), &[])?;
    }
    // A key left with only tombstones is a purge candidate (checked again before purging).
    if set.live_values().next().is_none() {
        engine.aux_put(Space::Dead, key, &clock.now_ms().to_be_bytes())?;
    }
    Ok(())
}

/// Delete a key whose stored bytes still hash to `hash`; a write since the check keeps it.
fn purge(sh: &Ctx<'_>, key: &[u8], hash: u64) -> Result<bool, StorageError> {
    let Some(cur) = sh.engine.get(key)? else {
        sh.engine.aux_delete(Space::Dead, key)?;
        return Ok(false);
    };
    if ringdb_core::merkle::entry_hash(key, &cur) != hash {
        return Ok(false);
    }
    let old_live = live(&SiblingSet::decode(&Bytes::copy_from_slice(&cur))?);
    write_through(
        sh,
        Change {
            key,
            old: Some((&cur, old_live)),
            new: None,
        },
    )?;
    sh.engine.aux_delete(Space::Dead, key)?;
    Ok(true)
}

/// What one storage thread works with, borrowed from [`Shared`].
struct Ctx<'a> {
    engine: &'a dyn Engine,
    stats: &'a Stats,
    trees: &'a Trees,
    catalog: &'a IndexCatalog,
}

/// What a storage thread shares with the others.
pub(super) struct Shared {
    pub engine: Arc<dyn Engine>,
    pub flush: Sender<FlushWaiter>,
    pub stats: Arc<Stats>,
    pub trees: Arc<Trees>,
    /// Where time comes from (when a key was noted as holding only tombstones).
    pub clock: Arc<dyn Clock>,
    /// Set once the trees are checkpointed for shutdown: later writes would make the
    /// checkpoint stale, so they are refused.
    pub closed: Arc<AtomicBool>,
    /// The indexes every write keeps in step.
    pub catalog: IndexCatalog,
}

pub(super) fn worker(shared: Shared, jobs: Receiver<Job>) {
    let Shared {
        engine,
        flush,
        stats,
        trees,
        clock,
        closed,
        catalog,
    } = shared;
    let (engine, clock) = (engine.as_ref(), clock.as_ref());
    let ctx = Ctx {
        engine,
        stats: &stats,
        trees: &trees,
        catalog: &catalog,
    };
    let defer = |w: FlushWaiter| {
        if let Err(e) = flush.send(w) {
            e.into_inner().finish(Err(StorageError::Stopped));
        }
    };
    for job in jobs {
        let job = if closed.load(Ordering::Acquire) {
            match job.refuse_writes() {
                Some(j) => j,
                None => continue,
            }
        } else {
            job
        };
        match job {
            Job::Run(f) => f(engine),
            Job::Read { key, reply } => {
                let _ = reply.send(engine.get(&key).map(|v| v.map(Bytes::from)));
            }
            Job::Merge {
                key,
                incoming,
                durability,
                reply,
            } => {
                let r = load(engine, &key).and_then(|(mut cur, old)| {
                    let before = live(&cur);
                    cur.merge(&incoming);
                    // The encoding is canonical: equal bytes mean the merge changed nothing.
                    let encoded = cur.encode();
                    if old.as_deref() != Some(encoded.as_slice()) {
                        write_through(
                            &ctx,
                            Change {
                                key: &key,
                                old: old.as_deref().map(|o| (o, before)),
                                new: Some((&encoded, live(&cur))),
                            },
                        )?;
                        schedule_expiry(engine, clock, &key, &cur)?;
                    }
                    Ok(())
                });
                match (r, durability) {
                    (Ok(()), Durability::Durable) => defer(FlushWaiter::Unit(reply)),
                    (r, _) => {
                        let _ = reply.send(r);
                    }
                }
            }
            Job::Purge { key, hash, reply } => {
                let r = purge(&ctx, &key, hash);
                let _ = reply.send(r);
            }
            Job::Mint {
                key,
                mint,
                durability,
                reply,
            } => {
                let r = load(engine, &key).and_then(|(mut cur, old)| {
                    let before = live(&cur);
                    let context =
                        cur.apply_write(&mint.actor, &mint.context, mint.value, mint.timestamp_ms);
                    cur.set_expiry(&context, mint.expires_ms);
                    let encoded = Bytes::from(cur.encode());
                    write_through(
                        &ctx,
                        Change {
                            key: &key,
                            old: old.as_deref().map(|o| (o, before)),
                            new: Some((&encoded, live(&cur))),
                        },
                    )?;
                    schedule_expiry(engine, clock, &key, &cur)?;
                    Ok(Minted {
                        stored: encoded,
                        context,
                    })
                });
                match (r, durability) {
                    (Ok(m), Durability::Durable) => defer(FlushWaiter::Minted(reply, m)),
                    (r, _) => {
                        let _ = reply.send(r);
                    }
                }
            }
        }
    }
}

/// Group commit: one fsync for every write that arrived while the previous one ran.
pub(super) fn flusher(engine: Arc<dyn Engine>, waiters: Receiver<FlushWaiter>, stats: Arc<Stats>) {
    while let Ok(first) = waiters.recv() {
        let mut batch = vec![first];
        batch.extend(waiters.try_iter());
        let result = engine.flush();
        if let Err(e) = &result {
            tracing::error!(error = %e, "group flush failed; failing {} writes", batch.len());
        }
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .flushed_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for w in batch {
            w.finish(result.clone());
        }
    }
}
