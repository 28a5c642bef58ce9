//! Purging tombstones without resurrections. A key holding only tombstones is removed
//! only when, after a grace period, every node of the cluster is up, no topology change is
//! under way, every replica of the key holds exactly the same tombstones (equal entry
//! hashes), and no node holds a hint for the key (a hint could carry an older version
//! that the tombstone superseded). Then each replica deletes the key only if it still
//! holds those bytes, so a write that lands meanwhile is kept. No fixed timer decides: a
//! replica that was down for a month still holds the old version, so the others keep the
//! tombstone until anti-entropy has given it to that replica too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use ringdb_proto::v1::TombstonesRequest;

use super::AntiEntropy;
use crate::ring::token_for;

impl AntiEntropy {
    /// Purge the tombstones this node is primary replica for and that every replica agrees
    /// on. Returns how many keys were purged here.
    pub(super) async fn collect_tombstones(&self, only: Option<&str>) -> u64 {
        let membership = &self.membership;
        let peers = membership.peers();
        if peers.iter().any(|(_, _, up)| !up) || membership.pending_ring().is_some() {
            return 0; // a node that is away may hold old versions or hints
        }
        let cutoff = self
            .clock
            .now_ms()
            .saturating_sub(self.config.tombstone_grace.as_millis() as u64);
        let Ok(dead) = self.storage.dead_keys(cutoff, 4096).await else {
            return 0;
        };
        let me = membership.node_id().to_string();
        let ring = membership.ring();
        let schema = membership.schema();
        // Candidates per collection, with this node's entry hash and the other replicas.
        let mut batches: HashMap<String, Vec<(String, u64, Vec<String>)>> = HashMap::new();
        for (collection, key) in dead {
            if only.is_some_and(|o| o != collection) {
                continue;
            }
            let replicas: Vec<String> = ring
                .preference_list(
                    token_for(&collection, &key),
                    schema.replication(&collection),
                )
                .into_iter()
                .map(String::from)
                .collect();
            if replicas.first() != Some(&me) {
                continue; // the key's primary replica decides
            }
            let Ok(set) = self.storage.read(&collection, &key).await else {
                continue;
            };
            if set.is_empty() || set.live_values().next().is_some() {
                let _ = self.storage.forget_dead(&collection, &key).await;
                continue;
            }
            let Ok(Some(hash)) = self.storage.entry_hash_of(&collection, &key).await else {
                continue;
            };
            let others = replicas.into_iter().filter(|r| *r != me).collect();
            batches
                .entry(collection)
                .or_default()
                .push((key, hash, others));
        }
        let mut purged = 0;
        for (collection, candidates) in batches {
            purged += self.purge_batch(&collection, candidates, &peers).await;
        }
        self.stats
            .tombstones_purged
            .fetch_add(purged, Ordering::Relaxed);
        purged
    }

    /// Check a batch of candidates with every node, then purge the agreed ones on every
    /// replica, this node last.
    async fn purge_batch(
        &self,
        collection: &str,
        candidates: Vec<(String, u64, Vec<String>)>,
        peers: &[(String, String, bool)],
    ) -> u64 {
        let keys: Vec<String> = candidates.iter().map(|c| c.0.clone()).collect();
        let Ok(mine) = self.hints.holds_hints_for(collection, &keys).await else {
            return 0;
        };
        let mut agreed: Vec<bool> = mine.iter().map(|h| !h).collect();
        for (id, addr, _) in peers {
            let req = TombstonesRequest {
                collection: collection.to_string(),
                keys: keys.clone(),
                purge_if: Vec::new(),
            };
            let Ok(r) = self.transport.tombstones(addr, req).await else {
                return 0; // cannot vouch for anything without every node
            };
            if r.hashes.len() != keys.len() || r.hinted.len() != keys.len() {
                return 0;
            }
            for (i, (_, hash, others)) in candidates.iter().enumerate() {
                let replica_differs = others.contains(id) && r.hashes[i] != *hash;
                if r.hinted[i] || replica_differs {
                    agreed[i] = false;
                }
            }
        }
        // Purge on the other replicas first: if this node failed halfway, it still holds
        // the tombstone and tries again; the reverse order could leave a replica that a
        // later anti-entropy pass would hand the tombstone back to, harmlessly but uselessly.
        let mut by_replica: HashMap<&str, (Vec<String>, Vec<u64>)> = HashMap::new();
        for (i, (key, hash, others)) in candidates.iter().enumerate() {
            if agreed[i] {
                for o in others {
                    let e = by_replica.entry(o.as_str()).or_default();
                    e.0.push(key.clone());
                    e.1.push(*hash);
                }
            }
        }
        for (id, (keys, hashes)) in by_replica {
            let Some(addr) = self.membership.address(id) else {
                return 0;
            };
            let req = TombstonesRequest {
                collection: collection.to_string(),
                keys,
                purge_if: hashes,
            };
            if self.transport.tombstones(&addr, req).await.is_err() {
                return 0;
            }
        }
        let mut purged = 0;
        for (i, (key, hash, _)) in candidates.iter().enumerate() {
            if agreed[i]
                && matches!(
                    self.storage.purge_if(collection, key, *hash).await,
                    Ok(true)
                )
            {
                purged += 1;
            }
        }
        purged
    }
}
