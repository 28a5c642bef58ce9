//! Hinted handoff: a write a replica could not take (down, refused, no answer) is kept here
//! as a hint and delivered, in order, once the replica answers again.
//!
//! Invariants kept here:
//! - a hint holds the encoded sibling set the replica missed; delivering it is a merge, so
//!   delivering twice or late is harmless;
//! - hints for one target are stored under `target ‖ 0 ‖ id` with increasing ids and
//!   replayed in that order, at most `replay_batch` per target per round;
//! - nothing is dropped silently: a hint over the per-target bound, or older than
//!   `max_age` when its turn comes, is recorded as a key that replica needs repaired.
//!
//! A hint goes out as a hint replay (`Transport::replay_hint`): a replica write on the wire,
//! its own kind of message to the transport, so a fault can single out hinted handoff.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ringdb_proto::v1::{RangeEntry, ReplicaWriteBatchRequest, ReplicaWriteRequest};

use crate::clock::Clock;
use crate::cluster::leave::HandOff;
use crate::cluster::schema::Schema;
use crate::cluster::{Membership, STATUS_LEFT};
use crate::ring::{token_for, Ring};
use crate::storage::{Space, Storage, StorageError};
use crate::transport::Transport;

/// Limits and pace of hinted handoff.
#[derive(Debug, Clone)]
pub struct HintConfig {
    /// Hints kept per target replica; beyond it, keys are recorded for repair instead.
    pub max_per_target: u64,
    /// A hint older than this is not delivered; its key is recorded for repair.
    pub max_age: Duration,
    /// Pause between replay rounds.
    pub replay_interval: Duration,
    /// Hints delivered per target per round (bounds the replay rate).
    pub replay_batch: usize,
}

impl Default for HintConfig {
    fn default() -> Self {
        HintConfig {
            max_per_target: 100_000,
            max_age: Duration::from_secs(3 * 3600),
            replay_interval: Duration::from_millis(200),
            replay_batch: 256,
        }
    }
}

/// One hint as stored: `created_ms ‖ len ‖ collection ‖ len ‖ key ‖ siblings`.
struct Hint {
    created_ms: u64,
    collection: String,
    key: String,
    siblings: Bytes,
}

impl Hint {
    fn encode(&self) -> Vec<u8> {
        let mut v =
            Vec::with_capacity(12 + self.collection.len() + self.key.len() + self.siblings.len());
        v.extend_from_slice(&self.created_ms.to_be_bytes());
        v.extend_from_slice(&(self.collection.len() as u16).to_be_bytes());
        v.extend_from_slice(self.collection.as_bytes());
        v.extend_from_slice(&(self.key.len() as u16).to_be_bytes());
        v.extend_from_slice(self.key.as_bytes());
        v.extend_from_slice(&self.siblings);
        v
    }

    fn decode(raw: Vec<u8>) -> Option<Hint> {
        let created_ms = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
        let clen = u16::from_be_bytes(raw.get(8..10)?.try_into().ok()?) as usize;
        let collection = std::str::from_utf8(raw.get(10..10 + clen)?)
            .ok()?
            .to_string();
        let at = 10 + clen;
        let klen = u16::from_be_bytes(raw.get(at..at + 2)?.try_into().ok()?) as usize;
        let key = std::str::from_utf8(raw.get(at + 2..at + 2 + klen)?)
            .ok()?
            .to_string();
        let rest = at + 2 + klen;
        let siblings = Bytes::from(raw).slice(rest..);
        Some(Hint {
            created_ms,
            collection,
            key,
            siblings,
        })
    }
}

fn prefix(target: &str) -> Vec<u8> {
    let mut p = target.as_bytes().to_vec();
    p.push(0);
    p
}

/// This node's hints for other replicas.
pub struct Hints {
    storage: Storage,
    membership: Arc<Membership>,
    config: HintConfig,
    clock: Arc<dyn Clock>,
    pending: Mutex<BTreeMap<String, u64>>,
}

impl Hints {
    /// Open the hints kept by an earlier run, counting them per target; hint ages are read
    /// off `clock`.
    pub async fn open(
        storage: Storage,
        membership: Arc<Membership>,
        config: HintConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Hints>, StorageError> {
        let all = storage
            .run(|e| e.aux_scan(Space::Hints, b"", usize::MAX))
            .await?;
        let mut pending = BTreeMap::new();
        for (k, _) in all {
            let target = k.split(|b| *b == 0).next().unwrap_or_default();
            *pending
                .entry(String::from_utf8_lossy(target).into_owned())
                .or_insert(0u64) += 1;
        }
        let hints = Arc::new(Hints {
            storage,
            membership,
            config,
            clock,
            pending: Mutex::new(pending),
        });
        hints.publish();
        Ok(hints)
    }

    /// Hints waiting, over all targets.
    pub fn pending(&self) -> u64 {
        self.pending.lock().map(|p| p.values().sum()).unwrap_or(0)
    }

    /// Hints waiting for one target.
    pub fn pending_for(&self, target: &str) -> u64 {
        self.pending
            .lock()
            .ok()
            .and_then(|p| p.get(target).copied())
            .unwrap_or(0)
    }

    fn publish(&self) {
        self.membership.set_own_hints(self.pending());
    }

    fn adjust(&self, target: &str, delta: i64) {
        if let Ok(mut p) = self.pending.lock() {
            let n = p.entry(target.to_string()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                p.remove(target);
            }
        }
        self.publish();
    }

    /// Keep `siblings` for `target` until it can take them. Returns whether a hint is now
    /// stored (false when the per-target limit was hit and the key was only recorded for
    /// repair, or storage failed), so write receipts can say which replicas hold a hint.
    pub async fn store(&self, target: &str, collection: &str, key: &str, siblings: Bytes) -> bool {
        let hint = Hint {
            created_ms: self.clock.now_ms(),
            collection: collection.to_string(),
            key: key.to_string(),
            siblings,
        };
        let over_limit = self.pending_for(target) >= self.config.max_per_target;
        let result = if over_limit {
            tracing::warn!(
                target_node = target,
                collection,
                key,
                "hint limit reached; key recorded for repair"
            );
            self.record_repair(target, collection, key, hint.created_ms)
                .await
        } else {
            let mut k = prefix(target);
            let value = hint.encode();
            let r = self
                .storage
                .run(move |e| {
                    k.extend_from_slice(&e.next_id()?.to_be_bytes());
                    e.aux_put(Space::Hints, &k, &value)
                })
                .await;
            if r.is_ok() {
                self.adjust(target, 1);
            }
            r
        };
        match result {
            Ok(()) => !over_limit,
            Err(e) => {
                tracing::error!(target_node = target, collection, key, error = %e, "could not store hint");
                false
            }
        }
    }

    async fn record_repair(
        &self,
        target: &str,
        collection: &str,
        key: &str,
        created_ms: u64,
    ) -> Result<(), StorageError> {
        let mut k = prefix(target);
        k.extend_from_slice(collection.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        self.storage
            .run(move |e| e.aux_put(Space::Repairs, &k, &created_ms.to_be_bytes()))
            .await
    }

    /// Which of `keys` this node holds hints for (to any target): a purged tombstone must
    /// not meet an older version arriving later from a hint.
    pub async fn holds_hints_for(
        &self,
        collection: &str,
        keys: &[String],
    ) -> Result<Vec<bool>, StorageError> {
        if self.pending() == 0 {
            return Ok(vec![false; keys.len()]);
        }
        let all = self
            .storage
            .run(|e| e.aux_scan(Space::Hints, b"", usize::MAX))
            .await?;
        let hinted: std::collections::HashSet<String> = all
            .into_iter()
            .filter_map(|(_, v)| Hint::decode(v))
            .filter(|h| h.collection == collection)
            .map(|h| h.key)
            .collect();
        Ok(keys.iter().map(|k| hinted.contains(k)).collect())
    }

    /// Forget a key recorded for repair on `target`: anti-entropy has synced it.
    pub async fn repaired(
        &self,
        target: &str,
        collection: &str,
        key: &str,
    ) -> Result<(), StorageError> {
        let mut k = prefix(target);
        k.extend_from_slice(collection.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        self.storage
            .run(move |e| e.aux_delete(Space::Repairs, &k))
            .await
    }

    /// Keys recorded as needing repair on `target` (for anti-entropy and operators).
    pub async fn needs_repair(&self, target: &str) -> Result<Vec<(String, String)>, StorageError> {
        let p = prefix(target);
        let plen = p.len();
        let rows = self
            .storage
            .run(move |e| e.aux_scan(Space::Repairs, &p, usize::MAX))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, _)| {
                let rest = k.get(plen..)?;
                let cut = rest.iter().position(|b| *b == 0)?;
                Some((
                    String::from_utf8_lossy(&rest[..cut]).into_owned(),
                    String::from_utf8_lossy(&rest[cut + 1..]).into_owned(),
                ))
            })
            .collect())
    }

    /// Deliver up to one batch of hints to every target that is up. Returns how many
    /// were delivered.
    pub async fn replay_once(&self, transport: &dyn Transport) -> usize {
        let targets: Vec<String> = self
            .pending
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut delivered = 0;
        for target in targets {
            if self.membership.status_of(&target).as_deref() == Some(STATUS_LEFT) {
                delivered += self.reroute_all(&target, transport).await;
                continue;
            }
            if !self.membership.is_up(&target) {
                continue;
            }
            let Some(addr) = self.membership.address(&target) else {
                continue;
            };
            let p = prefix(&target);
            let limit = self.config.replay_batch;
            let batch = match self
                .storage
                .run(move |e| e.aux_scan(Space::Hints, &p, limit))
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read hints");
                    continue;
                }
            };
            for (k, v) in batch {
                let Some(hint) = Hint::decode(v) else {
                    tracing::error!(target_node = %target, "undecodable hint dropped");
                    self.remove(&target, k).await;
                    continue;
                };
                if self.clock.now_ms().saturating_sub(hint.created_ms)
                    > self.config.max_age.as_millis() as u64
                {
                    tracing::warn!(target_node = %target, collection = %hint.collection, key = %hint.key, "hint expired; key recorded for repair");
                    if self
                        .record_repair(&target, &hint.collection, &hint.key, hint.created_ms)
                        .await
                        .is_ok()
                    {
                        self.remove(&target, k).await;
                    }
                    continue;
                }
                let req = ReplicaWriteRequest {
                    collection: hint.collection,
                    key: hint.key,
                    siblings: hint.siblings,
                    durability: ringdb_proto::v1::Durability::Durable as i32,
                };
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    transport.replay_hint(&addr, req),
                )
                .await
                {
                    Ok(Ok(())) => {
                        self.remove(&target, k).await;
                        delivered += 1;
                    }
                    _ => break, // the target is not taking writes; keep order, try next round
                }
            }
        }
        delivered
    }

    /// The hints for a target that left the cluster go to the keys' current replicas.
    async fn reroute_all(&self, target: &str, transport: &dyn Transport) -> usize {
        let ring = self.membership.ring();
        let schema = self.membership.schema();
        let mut delivered = 0;
        let p = prefix(target);
        let limit = self.config.replay_batch;
        let Ok(batch) = self
            .storage
            .run(move |e| e.aux_scan(Space::Hints, &p, limit))
            .await
        else {
            return 0;
        };
        for (k, v) in batch {
            let Some(hint) = Hint::decode(v) else {
                self.remove(target, k).await;
                continue;
            };
            let n = schema.replication(&hint.collection);
            match self.to_replicas(transport, &ring, n, hint).await {
                Ok(()) => {
                    self.remove(target, k).await;
                    delivered += 1;
                }
                Err(e) => {
                    tracing::debug!(target_node = target, error = %e, "cannot reroute hint");
                    break;
                }
            }
        }
        delivered
    }

    /// Merge a hint into the live replicas of its key in `ring` (other than this node);
    /// at least one must take it.
    async fn to_replicas(
        &self,
        transport: &dyn Transport,
        ring: &Ring,
        n: usize,
        hint: Hint,
    ) -> Result<(), String> {
        let me = self.membership.node_id();
        let token = token_for(&hint.collection, &hint.key);
        let mut taken = 0;
        for node in ring.preference_list(token, n) {
            if node == me || !self.membership.is_up(node) {
                continue;
            }
            let Some(addr) = self.membership.address(node) else {
                continue;
            };
            let req = ReplicaWriteRequest {
                collection: hint.collection.clone(),
                key: hint.key.clone(),
                siblings: hint.siblings.clone(),
                durability: ringdb_proto::v1::Durability::Durable as i32,
            };
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_secs(5), transport.replay_hint(&addr, req))
                    .await
            {
                taken += 1;
            }
        }
        if taken == 0 {
            return Err(format!(
                "no live replica of {}/{} took the hint",
                hint.collection, hint.key
            ));
        }
        Ok(())
    }

    /// Keep entries a leaving node handed over as hints for `target`.
    pub async fn adopt(&self, target: &str, entries: Vec<RangeEntry>) {
        for e in entries {
            self.store(target, &e.collection, &e.key, e.siblings).await;
        }
    }

    async fn remove(&self, target: &str, key: Vec<u8>) {
        if self
            .storage
            .run(move |e| e.aux_delete(Space::Hints, &key))
            .await
            .is_ok()
        {
            self.adjust(target, -1);
        }
    }

    /// Replay hints forever; run as a background task.
    pub async fn run(self: Arc<Self>, transport: Arc<dyn Transport>) {
        loop {
            let delivered = self.replay_once(transport.as_ref()).await;
            if delivered > 0 {
                tracing::info!(delivered, remaining = self.pending(), "hints delivered");
            }
            tokio::time::sleep(self.config.replay_interval).await;
        }
    }
}

#[async_trait::async_trait]
impl HandOff for Hints {
    /// Every hint goes to its target if it is up; otherwise to a live node that stays,
    /// which keeps it as a hint for the same target.
    async fn hand_off(
        &self,
        transport: &dyn Transport,
        ring: &Ring,
        _schema: &Schema,
    ) -> Result<(), String> {
        loop {
            self.replay_once(transport).await;
            let targets: Vec<String> = self
                .pending
                .lock()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            if targets.is_empty() {
                return Ok(());
            }
            let me = self.membership.node_id();
            let heir = ring
                .nodes()
                .iter()
                .find(|n| *n != me && self.membership.is_up(n))
                .and_then(|n| self.membership.address(n))
                .ok_or("no live node to hand hints to")?;
            for target in targets {
                let p = prefix(&target);
                let limit = self.config.replay_batch;
                let batch = self
                    .storage
                    .run(move |e| e.aux_scan(Space::Hints, &p, limit))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut keys = Vec::with_capacity(batch.len());
                let mut entries = Vec::with_capacity(batch.len());
                for (k, v) in batch {
                    if let Some(h) = Hint::decode(v) {
                        entries.push(RangeEntry {
                            collection: h.collection,
                            key: h.key,
                            siblings: h.siblings,
                        });
                    }
                    keys.push(k);
                }
                let req = ReplicaWriteBatchRequest {
                    entries,
                    durability: ringdb_proto::v1::Durability::Durable as i32,
                    hint_for: target.clone(),
                };
                tokio::time::timeout(
                    Duration::from_secs(30),
                    transport.replica_write_batch(&heir, req),
                )
                .await
                .map_err(|_| format!("{heir}: no answer"))?
                .map_err(|e| format!("{heir}: {e}"))?;
                for k in keys {
                    self.remove(&target, k).await;
                }
            }
        }
    }
}
