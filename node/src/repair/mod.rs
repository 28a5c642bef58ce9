//! Active anti-entropy: replicas compare hash trees range by range, walk down only the
//! branches that differ, and swap the differing keys' sibling sets both ways, so replicas
//! converge without anybody reading the keys. It also repairs the keys hinted handoff had
//! to give up on. Paced by a key budget so foreground requests keep their latency.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringdb_proto::v1::{
    Durability as WireDurability, KeyHashesRequest, RangeEntry, RangeHashesRequest,
    ReplicaReadBatchRequest, ReplicaWriteBatchRequest, TokenRange,
};

mod gc;

use crate::clock::Clock;
use crate::cluster::Membership;
use crate::coordinator::hints::Hints;
use crate::merkle::{segment_of, split, split_evenly, FINEST};
use crate::ring::{Ring, Token};
use crate::storage::{Durability, Storage};
use crate::transport::Transport;
use crate::version::SiblingSet;

/// How hard anti-entropy works.
#[derive(Debug, Clone)]
pub struct AaeConfig {
    /// Pause between two passes over every range (0 turns background passes off).
    pub interval: Duration,
    /// Budget of keys listed or repaired per second, summed over both sides.
    pub keys_per_sec: u64,
    /// How many pieces a differing range is cut into at each level of the descent.
    pub fanout: usize,
    /// How long a key must have held only tombstones before a purge is considered (lets
    /// in-flight writes, read repairs and hint replays land first).
    pub tombstone_grace: std::time::Duration,
    /// How long one exchange with a peer may take before the range is given up for this
    /// pass: a peer that stopped answering (paused, or behind a partition that drops
    /// packets) must not hold up the pass, and every later one, indefinitely.
    pub request_timeout: Duration,
}

impl Default for AaeConfig {
    fn default() -> Self {
        AaeConfig {
            interval: Duration::from_secs(60),
            keys_per_sec: 20_000,
            fanout: 16,
            tombstone_grace: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What anti-entropy has done on this node, for status and operators.
#[derive(Debug, Default)]
pub struct AaeStats {
    /// Passes completed.
    pub passes: AtomicU64,
    /// Wall-clock milliseconds when the last pass completed (0: never).
    pub last_pass_ms: AtomicU64,
    /// Ranges (per collection and peer) found equal or made equal.
    pub ranges_verified: AtomicU64,
    /// Keys whose sibling sets were exchanged because they differed.
    pub keys_repaired: AtomicU64,
    /// Hash and key-list bytes exchanged (not counting the repaired documents).
    pub bytes_exchanged: AtomicU64,
    /// Ranges that could not be compared (peer unreachable, storage busy).
    pub ranges_failed: AtomicU64,
    /// Keys whose tombstones were purged here.
    pub tombstones_purged: AtomicU64,
}

/// When one range was last found equal (or made equal) with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeVerified {
    /// Collection.
    pub collection: String,
    /// First token of the range.
    pub first: Token,
    /// Last token of the range.
    pub last: Token,
    /// The other replica.
    pub peer: String,
    /// Wall-clock ms of the last verification.
    pub at_ms: u64,
    /// Keys repaired in that range with that peer, over all passes.
    pub keys_repaired: u64,
}

/// The outcome of one pass, as reported to `ringdb admin repair`.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    /// Ranges compared.
    pub ranges: u64,
    /// Ranges that failed.
    pub failed: u64,
    /// Keys exchanged.
    pub keys_repaired: u64,
    /// Hash and key-list bytes exchanged.
    pub bytes_exchanged: u64,
    /// Tombstoned keys purged on this node (and its fellow replicas).
    pub tombstones_purged: u64,
    /// How long the pass took.
    pub elapsed: Duration,
}

/// Runs passes in the background and on demand.
pub struct AntiEntropy {
    membership: Arc<Membership>,
    storage: Storage,
    hints: Arc<Hints>,
    transport: Arc<dyn Transport>,
    config: AaeConfig,
    clock: Arc<dyn Clock>,
    stats: AaeStats,
    /// Serialises passes: an operator's repair waits for the background one.
    running: tokio::sync::Mutex<()>,
    /// Per (collection, range, peer): when last verified, keys repaired.
    verified: std::sync::Mutex<HashMap<(String, Token, String), RangeVerified>>,
    /// Peers that let an exchange time out during the current pass: the rest of their
    /// ranges are skipped (counted as failed) instead of each waiting out the timeout.
    silent: std::sync::Mutex<HashSet<String>>,
}

/// Sweep expired documents into tombstones every `every`, a batch at a time, by the
/// storage's clock; run as a background task.
pub async fn sweep_expired(storage: Storage, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        loop {
            match storage.sweep_expired(storage.clock().now_ms(), 1024).await {
                Ok(n) if n >= 1024 => continue, // more are due: go on at once
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep failed; retrying next round");
                    break;
                }
            }
        }
    }
}

/// Keys budget: sleeps when more keys were handled than the rate allows so far.
struct Pace {
    started: Instant,
    keys: u64,
    per_sec: u64,
}

impl Pace {
    async fn spend(&mut self, keys: u64) {
        self.keys += keys;
        if self.per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.keys as f64 / self.per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// The ranges `[first, last]` (no wrap) between consecutive ring tokens, each with the
/// token that owns it (its last).
fn ranges(ring: &Ring) -> Vec<(Token, Token, Token)> {
    let tokens: Vec<Token> = ring.tokens().map(|(t, _)| t).collect();
    let Some(&last) = tokens.last() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(tokens.len() + 1);
    // The wrapping range (last, first] is cut in two at the end of the token space.
    if last < Token::MAX {
        out.push((last + 1, Token::MAX, tokens[0]));
    }
    out.push((Token::MIN, tokens[0], tokens[0]));
    for w in tokens.windows(2) {
        out.push((w[0] + 1, w[1], w[1]));
    }
    out
}

fn wire(first: Token, last: Token) -> TokenRange {
    TokenRange { first, last }
}

impl AntiEntropy {
    /// Anti-entropy for this node, dating its passes and tombstone grace by `clock`.
    pub fn new(
        membership: Arc<Membership>,
        storage: Storage,
        hints: Arc<Hints>,
        transport: Arc<dyn Transport>,
        config: AaeConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        AntiEntropy {
            membership,
            storage,
            hints,
            transport,
            config,
            clock,
            stats: AaeStats::default(),
            running: tokio::sync::Mutex::new(()),
            verified: Default::default(),
            silent: Default::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &AaeStats {
        &self.stats
    }

    /// Every range this node compared since it started, oldest verification first.
    pub fn verified_ranges(&self) -> Vec<RangeVerified> {
        let mut v: Vec<RangeVerified> = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|r| (r.at_ms, r.first));
        v
    }

    fn note_verified(&self, collection: &str, first: Token, last: Token, peer: &str, keys: u64) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let e = map
            .entry((collection.to_string(), first, peer.to_string()))
            .or_insert_with(|| RangeVerified {
                collection: collection.to_string(),
                first,
                last,
                peer: peer.to_string(),
                at_ms: 0,
                keys_repaired: 0,
            });
        e.last = last;
        e.at_ms = self.clock.now_ms();
        e.keys_repaired += keys;
    }

    /// Whether the peer at `addr` let an exchange time out during this pass.
    fn is_silent(&self, addr: &str) -> bool {
        self.silent.lock().is_ok_and(|s| s.contains(addr))
    }

    /// One exchange with `peer`, given up after the request timeout.
    async fn ask<T, E: std::fmt::Display>(
        &self,
        peer: &str,
        what: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => {
                if let Ok(mut s) = self.silent.lock() {
                    s.insert(peer.to_string());
                }
                Err(format!(
                    "{peer}: no answer to {what} in {}ms",
                    self.config.request_timeout.as_millis()
                ))
            }
        }
    }

    /// Passes forever, `interval` apart; run as a background task.
    pub async fn run(self: Arc<Self>) {
        if self.config.interval.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.config.interval).await;
            let r = self.pass(None).await;
            if r.keys_repaired > 0 || r.failed > 0 || r.tombstones_purged > 0 {
                tracing::info!(
                    ranges = r.ranges,
                    failed = r.failed,
                    keys_repaired = r.keys_repaired,
                    tombstones_purged = r.tombstones_purged,
                    bytes = r.bytes_exchanged,
                    seconds = r.elapsed.as_secs_f64(),
                    "anti-entropy pass"
                );
            }
        }
    }

    /// Compare every range this node replicates (of one collection, or all) with each
    /// other live replica, repairing what differs; then the keys recorded for repair.
    pub async fn pass(&self, only: Option<&str>) -> PassReport {
        let _one_at_a_time = self.running.lock().await;
        if let Ok(mut s) = self.silent.lock() {
            s.clear();
        }
        let started = Instant::now();
        let mut report = PassReport::default();
        let mut pace = Pace {
            started,
            keys: 0,
            per_sec: self.config.keys_per_sec,
        };
        let me = self.membership.node_id().to_string();
        let ring = self.membership.ring();
        let schema = self.membership.schema();
        let mut collections: Vec<String> = schema.all().into_iter().map(|d| d.name).collect();
        for c in self.storage.trees().collections() {
            if !collections.contains(&c) {
                collections.push(c);
            }
        }
        collections.retain(|c| only.is_none_or(|o| o == c));
        for c in &collections {
            let n = schema.replication(c);
            for (first, last, owner) in ranges(&ring) {
                let replicas = ring.preference_list(owner, n);
                if !replicas.contains(&me.as_str()) {
                    continue;
                }
                // Each pair of replicas is compared once, by the one with the smaller id.
                for peer in replicas.iter().filter(|p| me.as_str() < **p) {
                    if !self.membership.is_up(peer) {
                        continue;
                    }
                    let Some(addr) = self.membership.address(peer) else {
                        continue;
                    };
                    report.ranges += 1;
                    if self.is_silent(&addr) {
                        report.failed += 1;
                        self.stats.ranges_failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    match self.sync_range(&addr, c, first, last, &mut pace).await {
                        Ok((keys, bytes)) => {
                            report.keys_repaired += keys;
                            report.bytes_exchanged += bytes;
                            self.stats.ranges_verified.fetch_add(1, Ordering::Relaxed);
                            self.note_verified(c, first, last, peer, keys);
                        }
                        Err(e) => {
                            report.failed += 1;
                            self.stats.ranges_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(peer = %peer, collection = %c, error = %e, "range not compared");
                        }
                    }
                }
            }
        }
        report.keys_repaired += self.recorded(only, &mut pace).await;
        report.tombstones_purged = self.collect_tombstones(only).await;
        report.elapsed = started.elapsed();
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_pass_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        self.stats
            .bytes_exchanged
            .fetch_add(report.bytes_exchanged, Ordering::Relaxed);
        report
    }

    /// Walk down the differing branches of `[first, last]` against `peer`; returns keys
    /// repaired and bytes exchanged.
    async fn sync_range(
        &self,
        peer: &str,
        collection: &str,
        first: Token,
        last: Token,
        pace: &mut Pace,
    ) -> Result<(u64, u64), String> {
        let (mut keys, mut bytes) = (0u64, 0u64);
        let mut pending = vec![(first, last)];
        while !pending.is_empty() {
            let batch: Vec<(Token, Token)> = pending.drain(..pending.len().min(256)).collect();
            let mut local = Vec::with_capacity(batch.len());
            for (a, b) in &batch {
                local.push(
                    self.storage
                        .range_hash(collection, *a, *b)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let req = RangeHashesRequest {
                collection: collection.to_string(),
                ranges: batch.iter().map(|(a, b)| wire(*a, *b)).collect(),
            };
            let remote = self
                .ask(peer, "RangeHashes", self.transport.range_hashes(peer, req))
                .await?;
            bytes += batch.len() as u64 * 24;
            if remote.len() != batch.len() {
                return Err(format!(
                    "{peer} answered {} hashes for {} ranges",
                    remote.len(),
                    batch.len()
                ));
            }
            for (((a, b), l), r) in batch.iter().zip(&local).zip(&remote) {
                if l == r {
                    continue;
                }
                if segment_of(*a) != segment_of(*b) {
                    pending.extend(split(*a, *b, self.config.fanout));
                } else if (*b as i128 - *a as i128) as u64 >= FINEST {
                    pending.extend(split_evenly(*a, *b, self.config.fanout));
                } else {
                    let (k, by) = self.sync_leaf(peer, collection, *a, *b, pace).await?;
                    keys += k;
                    bytes += by;
                }
            }
        }
        Ok((keys, bytes))
    }

    /// Compare one leaf key by key and exchange what differs.
    async fn sync_leaf(
        &self,
        peer: &str,
        collection: &str,
        first: Token,
        last: Token,
        pace: &mut Pace,
    ) -> Result<(u64, u64), String> {
        let local: HashMap<String, u64> = self
            .storage
            .key_hashes(collection, first, last)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let req = KeyHashesRequest {
            collection: collection.to_string(),
            range: Some(wire(first, last)),
        };
        let remote = self
            .ask(peer, "KeyHashes", self.transport.key_hashes(peer, req))
            .await?;
        // Only the peer's listing crosses the network (key, hash and framing).
        let bytes: u64 = remote.iter().map(|k| k.key.len() as u64 + 12).sum::<u64>() + 24;
        let mut differing: Vec<String> = Vec::new();
        let mut remote_keys: HashMap<&str, u64> = HashMap::with_capacity(remote.len());
        for k in &remote {
            remote_keys.insert(&k.key, k.hash);
            if local.get(&k.key) != Some(&k.hash) {
                differing.push(k.key.clone());
            }
        }
        for k in local.keys() {
            if !remote_keys.contains_key(k.as_str()) {
                differing.push(k.clone());
            }
        }
        pace.spend((local.len() + remote.len()) as u64).await;
        if differing.is_empty() {
            return Ok((0, bytes));
        }
        let n = self.sync_keys(peer, collection, &differing).await?;
        pace.spend(n).await;
        Ok((n, bytes))
    }

    /// Make `keys` equal on this node and `peer`: pull the peer's sibling sets, merge them
    /// here, and push the merged sets back. Returns how many keys were exchanged.
    async fn sync_keys(
        &self,
        peer: &str,
        collection: &str,
        keys: &[String],
    ) -> Result<u64, String> {
        for chunk in keys.chunks(256) {
            let req = ReplicaReadBatchRequest {
                collection: collection.to_string(),
                keys: chunk.to_vec(),
            };
            let theirs = self
                .ask(
                    peer,
                    "ReplicaReadBatch",
                    self.transport.replica_read_batch(peer, req),
                )
                .await?;
            let mut entries = Vec::with_capacity(chunk.len());
            for (key, raw) in chunk.iter().zip(theirs) {
                if !raw.is_empty() {
                    let set =
                        SiblingSet::decode(&raw).map_err(|e| format!("{peer} sent {key}: {e}"))?;
                    self.storage
                        .merge(collection, key, set, Durability::Memory)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if let Some(mine) = self
                    .storage
                    .read_raw(collection, key)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    entries.push(RangeEntry {
                        collection: collection.to_string(),
                        key: key.clone(),
                        siblings: mine,
                    });
                }
            }
            self.storage.sync().await.map_err(|e| e.to_string())?;
            if !entries.is_empty() {
                let req = ReplicaWriteBatchRequest {
                    entries,
                    durability: WireDurability::Durable as i32,
                    hint_for: String::new(),
                };
                self.ask(
                    peer,
                    "ReplicaWriteBatch",
                    self.transport.replica_write_batch(peer, req),
                )
                .await?;
            }
        }
        self.stats
            .keys_repaired
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        Ok(keys.len() as u64)
    }

    /// Keys hinted handoff gave up on (too many hints, or too old): sync each with its
    /// target once the target is up, then forget it.
    async fn recorded(&self, only: Option<&str>, pace: &mut Pace) -> u64 {
        let mut repaired = 0;
        for (id, addr, up) in self.membership.peers() {
            if !up || self.is_silent(&addr) {
                continue;
            }
            let Ok(keys) = self.hints.needs_repair(&id).await else {
                continue;
            };
            for (collection, key) in keys {
                if only.is_some_and(|o| o != collection) {
                    continue;
                }
                if self
                    .sync_keys(&addr, &collection, std::slice::from_ref(&key))
                    .await
                    .is_ok()
                    && self.hints.repaired(&id, &collection, &key).await.is_ok()
                {
                    repaired += 1;
                    pace.spend(1).await;
                }
            }
        }
        repaired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_whole_token_space() {
        let ring = Ring::new([("a", vec![-100i64, 5, 900]), ("b", vec![-7i64, 40])]);
        let r = ranges(&ring);
        assert_eq!(r.first().map(|x| (x.0, x.1)), Some((901, Token::MAX)));
        assert_eq!(r[1], (Token::MIN, -100, -100));
        let mut covered: Vec<(Token, Token)> = r.iter().map(|x| (x.0, x.1)).collect();
        covered.sort();
        assert_eq!(covered[0].0, Token::MIN);
        assert_eq!(covered.last().map(|x| x.1), Some(Token::MAX));
        for w in covered.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        // Each range's owner token is the ring token that ends it (or the first one).
        assert!(r
            .iter()
            .all(|(_, last, owner)| last == owner || *owner == -100));
    }
}
