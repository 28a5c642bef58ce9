//! FIND: one page of matching documents, merged from the replicas of every token range (see
//! the module docs of `query` for the steps and their invariants).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use ringdb_proto::v1::{QueryScanRequest, QueryTrace, TokenRange};
use ringdb_query::page::{self, QueryShape, ScanEnd};
use ringdb_query::{order, Filter, Order, Path, Position, Projection};
use ringdb_wire::query::{
    conditions_to_proto, order_to_wire, position_from_proto, position_to_proto,
};
use serde_json::Value;
use tokio::time::Instant;

use super::fanout::{Answered, Failure, Round};
use super::plan::Coverage;
use super::replica::{Candidate, ScanAnswer, ScanQuery};
use super::source::Plan;
use super::trace::{Recorder, Tracer};
use super::{QueryEngine, MAX_PAGE_SIZE};
use crate::coordinator::Level;
use crate::error::{Error, Result};
use crate::ring::token_for;
use crate::version::{CausalContext, SiblingSet};

/// A FIND as the coordinator takes it (conditions and paths already parsed).
#[derive(Debug, Clone)]
pub struct FindQuery {
    /// The collection.
    pub collection: String,
    /// The conditions.
    pub filter: Filter,
    /// `FIELDS`; empty: whole documents.
    pub fields: Vec<Path>,
    /// `ALLOW FILTERING` was given.
    pub allow_filtering: bool,
    /// Replicas per token range.
    pub level: Level,
    /// Time allowed for the page.
    pub timeout: Duration,
    /// Most documents in the page (1 to [`MAX_PAGE_SIZE`]).
    pub page_size: usize,
    /// Record a trace.
    pub trace: bool,
}

/// One matching document as merged from its replicas.
#[derive(Debug, Clone)]
pub struct Document {
    /// The key.
    pub key: String,
    /// Every live sibling's JSON bytes (projected when the query has `FIELDS`).
    pub values: Vec<Bytes>,
    /// The merged context (supersedes exactly these siblings).
    pub context: CausalContext,
}

/// One page of a FIND.
#[derive(Debug, Clone)]
pub struct FoundPage {
    /// The documents, in result order.
    pub documents: Vec<Document>,
    /// The token continuing after this page; `None` when nothing more matches.
    pub next: Option<String>,
    /// What happened, when the query asked.
    pub trace: Option<QueryTrace>,
}

/// A merged, re-checked document with its parsed siblings.
pub(super) struct Merged {
    pub(super) key: String,
    pub(super) set: SiblingSet,
    pub(super) live: Vec<Value>,
}

/// What one page's merge needs to know about the query.
pub(super) struct Ctx<'a> {
    pub(super) collection: &'a str,
    pub(super) filter: &'a Arc<Filter>,
    pub(super) order: Order,
}

/// One key's copies from the asked replicas of its range.
struct Copies {
    range: usize,
    copies: Vec<(String, SiblingSet)>,
}

impl QueryEngine {
    /// One page of a FIND continuing after `page_token` (none: from the start).
    pub async fn find(&self, q: &FindQuery, page_token: Option<&str>) -> Result<FoundPage> {
        let rec = q.trace.then(|| Recorder::new("find", self.me()));
        let result = self.find_page(q, page_token, rec.as_ref()).await;
        let mut page = result?;
        page.trace = rec.map(|r| r.snapshot());
        Ok(page)
    }

    async fn find_page(
        &self,
        q: &FindQuery,
        page_token: Option<&str>,
        tracer: Tracer<'_>,
    ) -> Result<FoundPage> {
        let plan: Plan = self.plan("FIND", &q.collection, &q.filter, q.allow_filtering)?;
        let shape = QueryShape {
            collection: &q.collection,
            filter: &q.filter,
            fields: &q.fields,
        };
        let after = match page_token.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                page::decode_token(t, shape, plan.order)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
            ),
            None => None,
        };
        let mut coverage = self.coverage(&q.collection, q.level)?;
        if let Some(rec) = tracer {
            rec.plan(
                q.level,
                coverage.required,
                coverage.ranges.len(),
                &plan.source.describe(&q.filter),
                &plan.order.describe(&q.filter),
            );
        }
        let size = q.page_size.clamp(1, MAX_PAGE_SIZE);
        let deadline = Instant::now() + q.timeout;
        let filter = Arc::new(q.filter.clone());
        let ctx = Ctx {
            collection: &q.collection,
            filter: &filter,
            order: plan.order,
        };
        let mut items = tokio::time::timeout_at(
            deadline,
            self.collect(&ctx, &mut coverage, after, size + 1, deadline, tracer),
        )
        .await
        .map_err(|_| {
            Error::Timeout(format!(
                "{} FIND on {} not answered in {} ms",
                q.level,
                q.collection,
                q.timeout.as_millis()
            ))
        })??;
        let next = (items.len() > size).then(|| {
            items.truncate(size);
            let last = &items[size - 1].0;
            page::encode_token(shape, plan.order, last)
        });
        let projection = Projection::new(&q.fields);
        let documents = items
            .into_iter()
            .map(|(_, m)| Document {
                values: if projection.is_whole() {
                    m.set.live_values().cloned().collect()
                } else {
                    m.live
                        .iter()
                        .map(|v| Bytes::from(projection.apply(v).to_string()))
                        .collect()
                },
                context: m.set.context().clone(),
                key: m.key,
            })
            .collect();
        Ok(FoundPage {
            documents,
            next,
            trace: None,
        })
    }

    /// The first `want` matching documents strictly after `after`, merged, re-checked and
    /// in result order: scan rounds cut at the horizon until `want` are in or every replica
    /// is exhausted.
    pub(super) async fn collect(
        &self,
        ctx: &Ctx<'_>,
        coverage: &mut Coverage,
        after: Option<Position>,
        want: usize,
        deadline: Instant,
        tracer: Tracer<'_>,
    ) -> Result<Vec<(Position, Merged)>> {
        let mut out: BTreeMap<Position, Merged> = BTreeMap::new();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        let mut resume = after;
        let mut round = 0;
        loop {
            round += 1;
            if let Some(rec) = tracer {
                rec.with(|t| t.rounds = round);
            }
            let at = Round {
                deadline,
                number: round,
                tracer,
            };
            let answers = self
                .scan_round(ctx, coverage, &mut excluded, resume.clone(), want, at)
                .await?;
            let ends: Vec<ScanEnd> = answers
                .iter()
                .map(|a| match (a.answer.stopped, a.answer.candidates.last()) {
                    (true, Some(last)) => ScanEnd::Stopped(last.position.clone()),
                    _ => ScanEnd::Exhausted,
                })
                .collect();
            let horizon = page::horizon(&ends).cloned();
            for (position, merged) in self.merge_round(ctx, coverage, answers, tracer).await? {
                // At or before the resume point: an earlier page or round had it.
                let fresh = resume.as_ref().is_none_or(|r| position > *r);
                let complete = horizon.as_ref().is_none_or(|h| position <= *h);
                if fresh && complete && keys.insert(merged.key.clone()) {
                    out.insert(position, merged);
                }
            }
            while out.len() > want {
                out.pop_last();
            }
            match horizon {
                Some(h) if out.len() < want => resume = Some(h),
                _ => break,
            }
        }
        Ok(out.into_iter().collect())
    }

    /// One round: every range's asked replicas report up to `want` candidates after
    /// `resume`.
    async fn scan_round(
        &self,
        ctx: &Ctx<'_>,
        coverage: &mut Coverage,
        excluded: &mut BTreeSet<String>,
        resume: Option<Position>,
        want: usize,
        at: Round<'_>,
    ) -> Result<Vec<Answered<ScanAnswer>>> {
        let conditions = conditions_to_proto(ctx.filter);
        let me = self.me().to_string();
        let order = ctx.order;
        self.fan_out(
            coverage,
            excluded,
            at,
            |a: &ScanAnswer| {
                (
                    a.scanned,
                    a.candidates.len() as u64,
                    a.stopped,
                    a.source.clone(),
                )
            },
            |node, ranges| {
                if node == me {
                    let q = ScanQuery {
                        collection: ctx.collection.to_string(),
                        filter: Filter::clone(ctx.filter),
                        order,
                        ranges,
                        after: resume.clone(),
                        limit: want,
                    };
                    let replica = self.replica.clone();
                    return async move { replica.scan(q).await.map_err(Failure::from) }.boxed();
                }
                let req = QueryScanRequest {
                    collection: ctx.collection.to_string(),
                    conditions: conditions.clone(),
                    order: order_to_wire(order),
                    ranges: ranges
                        .into_iter()
                        .map(|(first, last)| TokenRange { first, last })
                        .collect(),
                    after: resume.as_ref().map(position_to_proto),
                    limit: want as u32,
                };
                let transport = self.coordinator.transport().clone();
                let addr = self.membership.address(node);
                let node = node.to_string();
                async move {
                    let addr = addr
                        .ok_or_else(|| Failure::Failed(format!("no address known for {node}")))?;
                    let r = transport.query_scan(&addr, req).await?;
                    answer_from_proto(r, order)
                }
                .boxed()
            },
        )
        .await
    }

    /// Merge one round's answers by key, re-read candidates from asked replicas that did
    /// not report them, re-check the merged documents and queue repairs. Returns the
    /// matching documents with their merged positions.
    async fn merge_round(
        &self,
        ctx: &Ctx<'_>,
        coverage: &Coverage,
        answers: Vec<Answered<ScanAnswer>>,
        tracer: Tracer<'_>,
    ) -> Result<Vec<(Position, Merged)>> {
        let mut docs: BTreeMap<String, Copies> = BTreeMap::new();
        for a in answers {
            for c in a.answer.candidates {
                let set = SiblingSet::decode(&c.siblings).map_err(|e| {
                    Error::Internal(format!(
                        "{} sent an unreadable sibling set for {}: {e}",
                        a.node, c.key
                    ))
                })?;
                let range = coverage.range_of(token_for(ctx.collection, &c.key));
                docs.entry(c.key)
                    .or_insert_with(|| Copies {
                        range,
                        copies: Vec::new(),
                    })
                    .copies
                    .push((a.node.clone(), set));
            }
        }
        // Re-read each candidate from the asked replicas of its range that did not report it.
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, d) in &docs {
            for node in &coverage.ranges[d.range].asked {
                if !d.copies.iter().any(|(n, _)| n == node) {
                    missing.entry(node.clone()).or_default().push(key.clone());
                }
            }
        }
        let reread: usize = missing.values().map(Vec::len).sum();
        let reads = missing.into_iter().map(|(node, keys)| async move {
            let got = self.reread(&node, ctx.collection, keys.clone()).await;
            (node, keys, got)
        });
        for (node, keys, got) in futures::future::join_all(reads).await {
            for (key, raw) in keys.into_iter().zip(got?) {
                let set = if raw.is_empty() {
                    SiblingSet::new()
                } else {
                    SiblingSet::decode(&raw).map_err(|e| {
                        Error::Internal(format!(
                            "{node} sent an unreadable sibling set for {key}: {e}"
                        ))
                    })?
                };
                if let Some(d) = docs.get_mut(&key) {
                    d.copies.push((node.clone(), set));
                }
            }
        }
        let now = self.coordinator.clock().now_ms();
        let (mut out, mut repairs, mut dropped) = (Vec::new(), Vec::new(), 0u64);
        let candidates = docs.len() as u64;
        for (key, d) in docs {
            let mut merged = SiblingSet::new();
            for (_, s) in &d.copies {
                merged.merge(s);
            }
            merged.expire(now);
            let behind: Vec<&String> = d
                .copies
                .iter()
                .filter(|(_, s)| *s != merged)
                .map(|(n, _)| n)
                .collect();
            if !behind.is_empty() {
                let encoded = Bytes::from(merged.encode());
                for node in behind {
                    repairs.push((node.clone(), key.clone(), encoded.clone()));
                }
            }
            let live = merged
                .live_values()
                .map(|v| serde_json::from_slice::<Value>(v))
                .collect::<std::result::Result<Vec<Value>, _>>()
                .map_err(|e| Error::Internal(format!("stored document {key} is not JSON: {e}")))?;
            match order::position(ctx.filter, ctx.order, &key, &live) {
                Some(p) => out.push((
                    p,
                    Merged {
                        key,
                        set: merged,
                        live,
                    },
                )),
                None => dropped += 1,
            }
        }
        if let Some(rec) = tracer {
            rec.with(|t| {
                t.candidates += candidates;
                t.reread += reread as u64;
                t.rechecked += candidates;
                t.dropped += dropped;
                t.repaired += repairs.len() as u64;
                for (node, _, _) in &repairs {
                    if !t.repaired_nodes.contains(node) {
                        t.repaired_nodes.push(node.clone());
                    }
                }
            });
        }
        self.spawn_repairs(ctx.collection, repairs);
        Ok(out)
    }
}

/// A replica's scan answer from the wire.
fn answer_from_proto(
    r: ringdb_proto::v1::QueryScanResponse,
    order: Order,
) -> Result<ScanAnswer, Failure> {
    let mut candidates = Vec::with_capacity(r.candidates.len());
    for c in r.candidates {
        let p = c
            .position
            .ok_or_else(|| Failure::Failed(format!("candidate {} without a position", c.key)))?;
        let position = position_from_proto(&p, order)
            .map_err(|e| Failure::Failed(format!("candidate {}: {}", c.key, e.message())))?;
        candidates.push(Candidate {
            key: c.key,
            siblings: c.siblings,
            position,
        });
    }
    Ok(ScanAnswer {
        candidates,
        stopped: r.stopped,
        scanned: r.scanned,
        source: r.source,
    })
}
