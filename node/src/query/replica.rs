//! The replica side of queries: find this replica's matching documents in some token
//! ranges (in result order, after a resume position, at most a limit), or fold them into a
//! partial aggregation.
//!
//! Invariants kept here:
//! - a document is judged on this replica's live siblings after expiry at the time of the
//!   scan (a TTL that passed reads as deleted, as GET does); tombstones never match;
//! - a matching document is reported once, at its `position_after` the resume point, with
//!   its sibling set exactly as stored (the coordinator merges those);
//! - reported candidates are the first `limit` in result order; `stopped` is true exactly
//!   when more matching documents follow the last one reported (also when the answer was
//!   cut short of `limit` to stay within [`MAX_ANSWER_BYTES`]);
//! - scans are paced: documents are read and checked on the storage threads, at most
//!   [`CHUNK_ROWS`] entries per storage job, and at most [`CONCURRENT_SCANS`] full scans run
//!   on a node at once, so foreground reads and writes keep flowing;
//! - a stored entry that cannot be decoded fails the scan: never a silently partial answer;
//! - an index scan (the order condition's index, when it is ready here) reports exactly what
//!   a full scan in the same order would, for documents not written during the scan: a
//!   document is reported at the first of its entries that lies at or after its
//!   `position_after` (the entry scan meets its entries in order, so that is its position),
//!   once; when the index is not ready here the replica answers by a full scan instead;
//! - an aggregation served by an index folds each document once, at its first satisfying
//!   entry (its `position`); a document rewritten during the scan may be folded under its
//!   old and new values or neither, as with any scan that is not a snapshot.

use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use ringdb_query::order::{position, position_after};
use ringdb_query::{AggregateSpec, Filter, Order, Partial, Path, Position, ScanRange};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::source::Source;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ring::{token_for, Token};
use crate::storage::{IndexError, IndexHit, IndexState, Storage, Visited, Visitor};
use crate::version::SiblingSet;

/// Engine entries read per storage job of a scan.
pub const CHUNK_ROWS: usize = 256;

/// Scans (and aggregations) a node runs at once; more wait their turn.
pub const CONCURRENT_SCANS: usize = 2;

/// Largest total of sibling-set bytes one scan answer carries; past it the answer stops
/// early (at least one candidate is always sent, so a scan always progresses).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// What one replica scan is asked.
#[derive(Debug, Clone)]
pub struct ScanQuery {
    /// The collection.
    pub collection: String,
    /// The conditions.
    pub filter: Filter,
    /// The result order.
    pub order: Order,
    /// Token ranges to cover, each `first <= last`.
    pub ranges: Vec<(Token, Token)>,
    /// Report documents strictly after this position.
    pub after: Option<Position>,
    /// Most candidates to report.
    pub limit: usize,
}

/// One matching document as this replica holds it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The document key.
    pub key: String,
    /// Its sibling set, encoded as stored.
    pub siblings: Bytes,
    /// Its first position after the resume point, on this replica.
    pub position: Position,
}

/// A replica scan's answer.
#[derive(Debug, Clone, Default)]
pub struct ScanAnswer {
    /// The first candidates in result order.
    pub candidates: Vec<Candidate>,
    /// More matching documents follow the last candidate.
    pub stopped: bool,
    /// Documents of the collection read.
    pub scanned: u64,
    /// How this replica found them (for traces).
    pub source: String,
}

/// A replica's partial aggregation.
#[derive(Debug, Clone)]
pub struct AggregateAnswer {
    /// The partial state over this replica's matching documents.
    pub partial: Partial,
    /// Documents read, and how many matched.
    pub scanned: u64,
    /// Documents that matched.
    pub matched: u64,
    /// How this replica found them (for traces).
    pub source: String,
}

/// The documents a replica's visitor is shown, decoded: live siblings after expiry.
struct Decoder {
    now_ms: u64,
    scanned: u64,
    error: Option<String>,
}

impl Decoder {
    fn new(now_ms: u64) -> Decoder {
        Decoder {
            now_ms,
            scanned: 0,
            error: None,
        }
    }

    /// The live siblings of a stored set; `None` (and the first error kept) when it cannot
    /// be decoded.
    fn live(&mut self, key: &str, raw: &Bytes) -> Option<Vec<Value>> {
        self.scanned += 1;
        if self.error.is_some() {
            return None;
        }
        let decoded = SiblingSet::decode(raw).map_err(|e| e.to_string());
        let parsed = decoded.and_then(|mut set| {
            set.expire(self.now_ms);
            set.live_values()
                .map(|v| serde_json::from_slice::<Value>(v).map_err(|e| e.to_string()))
                .collect::<std::result::Result<Vec<Value>, String>>()
        });
        match parsed {
            Ok(live) => Some(live),
            Err(e) => {
                self.error = Some(format!("stored document {key} cannot be read: {e}"));
                None
            }
        }
    }

    fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(Error::Internal(e.clone())),
            None => Ok(()),
        }
    }
}

/// A candidate ordered by position, for the bounded heap.
struct Held(Candidate);

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.0.position == other.0.position
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.position.cmp(&other.0.position)
    }
}

/// Keeps the first `limit` matching documents in result order.
struct FirstMatches {
    filter: Arc<Filter>,
    order: Order,
    after: Option<Position>,
    limit: usize,
    best: BinaryHeap<Held>,
    matched: u64,
    decoder: Decoder,
}

impl Visitor for FirstMatches {
    fn visit(&mut self, key: &str, siblings: Bytes) {
        let Some(live) = self.decoder.live(key, &siblings) else {
            return;
        };
        let Some(position) =
            position_after(&self.filter, self.order, key, &live, self.after.as_ref())
        else {
            return;
        };
        self.matched += 1;
        if self.best.len() == self.limit
            && self
                .best
                .peek()
                .is_some_and(|worst| worst.0.position < position)
        {
            return;
        }
        self.best.push(Held(Candidate {
            key: key.to_string(),
            siblings,
            position,
        }));
        if self.best.len() > self.limit {
            self.best.pop();
        }
    }
}

/// Folds matching documents into a partial aggregation.
struct Fold {
    filter: Arc<Filter>,
    partial: Partial,
    matched: u64,
    decoder: Decoder,
}

impl Visitor for Fold {
    fn visit(&mut self, key: &str, siblings: Bytes) {
        if let Some(live) = self.decoder.live(key, &siblings) {
            if self.partial.add_document(&live, &self.filter) {
                self.matched += 1;
            }
        }
    }
}

/// A node's replica side of queries: its storage, its clock, and the pacing of its scans;
/// clones share the pacing.
#[derive(Clone)]
pub struct Replica {
    storage: Storage,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
}

impl Replica {
    /// The replica side over this node's storage, dating expiry by `clock`.
    pub fn new(storage: Storage, clock: Arc<dyn Clock>) -> Replica {
        Replica {
            storage,
            clock,
            permits: Arc::new(Semaphore::new(CONCURRENT_SCANS)),
        }
    }

    /// Show every document of `collection` in `ranges` to `visitor`, chunk by chunk on the
    /// storage threads: the full scan (see [`Source::FullScan`]).
    async fn visit_all<V: Visitor>(
        &self,
        collection: &str,
        ranges: &[(Token, Token)],
        mut visitor: V,
    ) -> Result<V> {
        let _turn = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("query scans are shut down".into()))?;
        for &(first, last) in ranges {
            let mut after = None;
            loop {
                let (v, next) = self
                    .storage
                    .visit_collection(collection, (first, last), after, CHUNK_ROWS, visitor)
                    .await?;
                visitor = v;
                match next {
                    Visited::More(at) => after = Some(at),
                    Visited::Done => break,
                }
                // Let the tasks waiting on this thread run between chunks.
                tokio::task::yield_now().await;
            }
        }
        Ok(visitor)
    }

    /// This replica's first `limit` matching documents after the resume point: from the
    /// order condition's index when it is ready here, else by a full scan.
    pub async fn scan(&self, q: ScanQuery) -> Result<ScanAnswer> {
        check_ranges(&q.ranges)?;
        let limit = q.limit.max(1);
        let mut fallback = None;
        let mut found = None;
        if let Source::Index(path) = Source::for_scan(&q.filter, q.order) {
            match self.index_first(&q, &path, limit).await? {
                Ok(f) => found = Some((f, format!("index on {path}"))),
                Err(why) => fallback = Some(why),
            }
        }
        let (found, source) = match found {
            Some(f) => f,
            None => {
                let f = self.full_first(q, limit).await?;
                let source = match fallback {
                    Some(why) => format!("full scan ({why})"),
                    None => "full scan".to_string(),
                };
                (f, source)
            }
        };
        let (mut candidates, mut stopped, scanned) = found;
        let mut bytes = 0usize;
        if let Some(cut) = candidates.iter().position(|c| {
            bytes += c.siblings.len();
            bytes > MAX_ANSWER_BYTES
        }) {
            candidates.truncate(cut.max(1));
            stopped = true;
        }
        Ok(ScanAnswer {
            candidates,
            stopped,
            scanned,
            source,
        })
    }

    /// The first `limit` matches by a full scan: (candidates in order, more follow, read).
    async fn full_first(&self, q: ScanQuery, limit: usize) -> Result<(Vec<Candidate>, bool, u64)> {
        let visitor = FirstMatches {
            filter: Arc::new(q.filter),
            order: q.order,
            after: q.after,
            limit,
            best: BinaryHeap::new(),
            matched: 0,
            decoder: Decoder::new(self.clock.now_ms()),
        };
        let found = self.visit_all(&q.collection, &q.ranges, visitor).await?;
        found.decoder.check()?;
        let candidates: Vec<Candidate> = found
            .best
            .into_sorted_vec()
            .into_iter()
            .map(|h| h.0)
            .collect();
        let stopped = found.matched > candidates.len() as u64;
        Ok((candidates, stopped, found.decoder.scanned))
    }

    /// The first `limit` matches from the order condition's index on `path`, or why the
    /// index cannot serve here (not defined or still building on this replica).
    async fn index_first(
        &self,
        q: &ScanQuery,
        path: &Path,
        limit: usize,
    ) -> Result<std::result::Result<(Vec<Candidate>, bool, u64), String>> {
        let Some(condition) = q.order.condition(&q.filter) else {
            return Ok(Err("no order condition".into()));
        };
        let mut decoder = Decoder::new(self.clock.now_ms());
        let mut out: Vec<Candidate> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let cursor = q.after.as_ref().and_then(Position::entry_key);
        let walked = self
            .walk_index(
                &q.collection,
                path,
                &condition.ranges(),
                &q.ranges,
                cursor,
                limit + 1,
                |hit| {
                    let Some(live) = decoder.live(&hit.key, &hit.siblings) else {
                        return true;
                    };
                    let Some(p) =
                        position_after(&q.filter, q.order, &hit.key, &live, q.after.as_ref())
                    else {
                        return true;
                    };
                    // Its position lies at or before this entry (else a later entry of it
                    // gives it), and it is reported once.
                    let due = p.entry_key().is_some_and(|e| e <= hit.entry);
                    if due && seen.insert(hit.key.clone()) {
                        out.push(Candidate {
                            key: hit.key,
                            siblings: hit.siblings,
                            position: p,
                        });
                    }
                    out.len() <= limit
                },
            )
            .await?;
        if let Err(why) = walked {
            return Ok(Err(why));
        }
        decoder.check()?;
        out.sort_by(|a, b| a.position.cmp(&b.position));
        let stopped = out.len() > limit;
        out.truncate(limit);
        Ok(Ok((out, stopped, decoder.scanned)))
    }

    /// Show `visit` the entries of the index on `path` of `collection` in `entry_ranges`
    /// after `cursor`, for documents whose token lies in `tokens`, in entry order, chunk by
    /// chunk, until it returns false or the entries run out. The first chunk reads about
    /// `expect` entries, later ones more. `Err(why)` when the index cannot serve here.
    #[allow(clippy::too_many_arguments)]
    async fn walk_index(
        &self,
        collection: &str,
        path: &Path,
        entry_ranges: &[ScanRange],
        tokens: &[(Token, Token)],
        mut cursor: Option<Vec<u8>>,
        expect: usize,
        mut visit: impl FnMut(IndexHit) -> bool,
    ) -> Result<std::result::Result<(), String>> {
        let keep = |key: &str| {
            let t = token_for(collection, key);
            tokens.iter().any(|&(first, last)| first <= t && t <= last)
        };
        let mut chunk = expect.clamp(16, CHUNK_ROWS);
        loop {
            let page = match self
                .storage
                .index_page(
                    collection,
                    path,
                    entry_ranges,
                    cursor.as_deref(),
                    chunk,
                    &keep,
                )
                .await
            {
                Ok(page) => page,
                Err(IndexError::Storage(e)) => return Err(e.into()),
                Err(e) => return Ok(Err(e.to_string())),
            };
            for hit in page.hits {
                if !visit(hit) {
                    return Ok(Ok(()));
                }
            }
            match page.resume {
                Some(r) => cursor = Some(r),
                None => return Ok(Ok(())),
            }
            chunk = (chunk * 2).min(CHUNK_ROWS * 4);
            tokio::task::yield_now().await;
        }
    }

    /// This replica's partial aggregation of its matching documents in `ranges`: from the
    /// first condition whose index is ready here, else by a full scan.
    pub async fn aggregate(
        &self,
        collection: &str,
        filter: Filter,
        ranges: &[(Token, Token)],
        spec: AggregateSpec,
    ) -> Result<AggregateAnswer> {
        check_ranges(ranges)?;
        let indexed = filter.conditions().iter().position(|c| {
            matches!(
                self.storage.indexes().state_of(collection, c.path()),
                Some(IndexState::Ready)
            )
        });
        let mut fallback = None;
        if let Some(i) = indexed {
            match self
                .index_fold(collection, &filter, Order::Condition(i), ranges, &spec)
                .await?
            {
                Ok(answer) => return Ok(answer),
                Err(why) => fallback = Some(why),
            }
        }
        let visitor = Fold {
            filter: Arc::new(filter),
            partial: Partial::new(spec),
            matched: 0,
            decoder: Decoder::new(self.clock.now_ms()),
        };
        let folded = self.visit_all(collection, ranges, visitor).await?;
        folded.decoder.check()?;
        Ok(AggregateAnswer {
            partial: folded.partial,
            scanned: folded.decoder.scanned,
            matched: folded.matched,
            source: match fallback {
                Some(why) => format!("full scan ({why})"),
                None => "full scan".to_string(),
            },
        })
    }

    /// Fold the matching documents met in the index of `order`'s condition, each at its
    /// position's entry (so once), or why that index cannot serve here.
    async fn index_fold(
        &self,
        collection: &str,
        filter: &Filter,
        order: Order,
        ranges: &[(Token, Token)],
        spec: &AggregateSpec,
    ) -> Result<std::result::Result<AggregateAnswer, String>> {
        let Some(condition) = order.condition(filter) else {
            return Ok(Err("no order condition".into()));
        };
        let mut decoder = Decoder::new(self.clock.now_ms());
        let mut partial = Partial::new(spec.clone());
        let mut matched = 0u64;
        let walked = self
            .walk_index(
                collection,
                condition.path(),
                &condition.ranges(),
                ranges,
                None,
                CHUNK_ROWS,
                |hit| {
                    let Some(live) = decoder.live(&hit.key, &hit.siblings) else {
                        return true;
                    };
                    let at_entry = position(filter, order, &hit.key, &live)
                        .and_then(|p| p.entry_key())
                        .is_some_and(|e| e == hit.entry);
                    if at_entry && partial.add_document(&live, filter) {
                        matched += 1;
                    }
                    true
                },
            )
            .await?;
        if let Err(why) = walked {
            return Ok(Err(why));
        }
        decoder.check()?;
        Ok(Ok(AggregateAnswer {
            partial,
            scanned: decoder.scanned,
            matched,
            source: format!("index on {}", condition.path()),
        }))
    }
}

/// Token ranges must each have `first <= last`.
fn check_ranges(ranges: &[(Token, Token)]) -> Result<()> {
    match ranges.iter().find(|(first, last)| first > last) {
        Some((first, last)) => Err(Error::InvalidArgument(format!(
            "token range [{first}, {last}] has first > last"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
