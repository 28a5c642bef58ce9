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
//!   [`CHUNK_ROWS`] entries per storage job, and at most [`CONCURRENT_SCANS`] scans run on a
//!   node at once, so foreground reads and writes keep flowing;
//! - a stored entry that cannot be decoded fails the scan: never a silently partial answer.

use std::collections::BinaryHeap;
use std::sync::Arc;

use bytes::Bytes;
use ringdb_query::order::position_after;
use ringdb_query::{AggregateSpec, Filter, Order, Partial, Position};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::source::Source;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ring::Token;
use crate::storage::{Storage, Visited, Visitor};
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
            if first > last {
                return Err(Error::InvalidArgument(format!(
                    "token range [{first}, {last}] has first > last"
                )));
            }
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

    /// This replica's first `limit` matching documents after the resume point.
    pub async fn scan(&self, q: ScanQuery) -> Result<ScanAnswer> {
        let limit = q.limit.max(1);
        let found = match Source::for_scan(q.order) {
            Source::FullScan => {
                let visitor = FirstMatches {
                    filter: Arc::new(q.filter),
                    order: q.order,
                    after: q.after,
                    limit,
                    best: BinaryHeap::new(),
                    matched: 0,
                    decoder: Decoder::new(self.clock.now_ms()),
                };
                self.visit_all(&q.collection, &q.ranges, visitor).await?
            }
        };
        found.decoder.check()?;
        let mut candidates: Vec<Candidate> = found
            .best
            .into_sorted_vec()
            .into_iter()
            .map(|h| h.0)
            .collect();
        let mut stopped = found.matched > candidates.len() as u64;
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
            scanned: found.decoder.scanned,
        })
    }

    /// This replica's partial aggregation of its matching documents in `ranges`.
    pub async fn aggregate(
        &self,
        collection: &str,
        filter: Filter,
        ranges: &[(Token, Token)],
        spec: AggregateSpec,
    ) -> Result<AggregateAnswer> {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::storage::{Durability, MemEngine, Mint, PoolConfig};
    use crate::version::CausalContext;
    use ringdb_query::statement::parse_conditions;

    async fn replica_with(docs: &[(&str, &str)]) -> (Replica, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000));
        let storage = Storage::start_with_clock(
            Arc::new(MemEngine::default()),
            PoolConfig::default(),
            clock.clone(),
        )
        .unwrap();
        for (key, json) in docs {
            let mint = Mint {
                actor: "n1.1".into(),
                context: CausalContext::new(),
                value: Some(Bytes::from(json.to_string())),
                timestamp_ms: 1,
                expires_ms: key.starts_with("ttl").then_some(2_000),
            };
            storage
                .mint("c", key, mint, Durability::Memory)
                .await
                .unwrap();
        }
        (Replica::new(storage, clock.clone()), clock)
    }

    fn all() -> Vec<(Token, Token)> {
        vec![(Token::MIN, Token::MAX)]
    }

    fn keys(a: &ScanAnswer) -> Vec<&str> {
        a.candidates.iter().map(|c| c.key.as_str()).collect()
    }

    #[tokio::test]
    async fn a_scan_reports_the_first_matches_in_key_order_and_says_when_it_stopped() {
        let docs: Vec<(String, String)> = (0..40)
            .map(|i| {
                (
                    format!("k{i:02}"),
                    format!(r#"{{"n": {i}, "even": {}}}"#, i % 2 == 0),
                )
            })
            .collect();
        let docs: Vec<(&str, &str)> = docs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (r, _) = replica_with(&docs).await;
        let q = |after: Option<&str>, limit| ScanQuery {
            collection: "c".into(),
            filter: parse_conditions("even = true").unwrap(),
            order: Order::Key,
            ranges: all(),
            after: after.map(|k| Position::new(None, k)),
            limit,
        };
        let a = r.scan(q(None, 3)).await.unwrap();
        assert_eq!(keys(&a), ["k00", "k02", "k04"]);
        assert!(a.stopped);
        assert_eq!(a.scanned, 40);
        let a = r.scan(q(Some("k33"), 10)).await.unwrap();
        assert_eq!(keys(&a), ["k34", "k36", "k38"]);
        assert!(!a.stopped, "exactly the rest");
        let a = r.scan(q(Some("k35"), 3)).await.unwrap();
        assert_eq!(keys(&a), ["k36", "k38"]);
        assert!(!a.stopped);
    }

    #[tokio::test]
    async fn expired_and_unparsable_documents_are_handled_not_skipped_silently() {
        let (r, clock) = replica_with(&[("a", r#"{"x": 1}"#), ("ttl1", r#"{"x": 1}"#)]).await;
        let q = ScanQuery {
            collection: "c".into(),
            filter: parse_conditions("x = 1").unwrap(),
            order: Order::Key,
            ranges: all(),
            after: None,
            limit: 10,
        };
        assert_eq!(keys(&r.scan(q.clone()).await.unwrap()), ["a", "ttl1"]);
        clock.advance(std::time::Duration::from_secs(5));
        assert_eq!(
            keys(&r.scan(q.clone()).await.unwrap()),
            ["a"],
            "expired reads as deleted"
        );
        let spec = AggregateSpec::count_all();
        let agg = r
            .aggregate("c", q.filter.clone(), &all(), spec)
            .await
            .unwrap();
        assert_eq!(agg.matched, 1);
        assert_eq!(
            agg.partial.finish_count().unwrap(),
            serde_json::json!({"count": 1})
        );
        // A stored entry that is not a sibling set fails the scan.
        let bad = crate::storage::storage_key(crate::ring::token_for("c", "bad"), "c", "bad");
        r.storage
            .run(move |e| e.put(&bad, b"garbage").map(|_| ()))
            .await
            .unwrap();
        let e = r.scan(q).await.unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.contains("bad")),
            "{e:?}"
        );
    }
}
