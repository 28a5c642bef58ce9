//! COUNT and AGGREGATE: the aggregation of the documents the same FIND would return.
//!
//! With one replica asked per token range (`ONE`, or N = 1) nothing needs merging, so each
//! replica folds its matching documents into a partial state and only those states travel
//! (`QueryAggregate`). Above that, the coordinator pages through the merged, re-checked
//! documents exactly as FIND does and folds them itself: correctness first.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use ringdb_proto::v1::{QueryAggregateRequest, QueryTrace, TokenRange};
use ringdb_query::{AggregateSpec, Filter, Partial};
use ringdb_wire::query::{conditions_to_proto, spec_to_proto};
use tokio::time::Instant;

use super::fanout::{Failure, Round};
use super::find::Ctx;
use super::plan::Coverage;
use super::replica::AggregateAnswer;
use super::trace::{Recorder, Tracer};
use super::{QueryEngine, MAX_PAGE_SIZE};
use crate::coordinator::Level;
use crate::error::{Error, Result};

/// A COUNT or AGGREGATE as the coordinator takes it.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    /// "COUNT" or "AGGREGATE", for messages.
    pub statement: &'static str,
    /// The collection.
    pub collection: String,
    /// The conditions.
    pub filter: Filter,
    /// The aggregations and grouping (`count(*)` for COUNT).
    pub spec: AggregateSpec,
    /// `ALLOW FILTERING` was given.
    pub allow_filtering: bool,
    /// Replicas per token range.
    pub level: Level,
    /// Time allowed for the whole aggregation.
    pub timeout: Duration,
    /// Record a trace.
    pub trace: bool,
}

/// An aggregation's result.
#[derive(Debug, Clone)]
pub struct Aggregated {
    /// The reduced state; `finish` / `finish_count` give the output.
    pub partial: Partial,
    /// What happened, when the query asked.
    pub trace: Option<QueryTrace>,
}

impl QueryEngine {
    /// Aggregate the documents a FIND with the same conditions would return.
    pub async fn aggregate(&self, q: &AggregateQuery) -> Result<Aggregated> {
        let rec = q
            .trace
            .then(|| Recorder::new(&q.statement.to_ascii_lowercase(), self.me()));
        let partial = self.run_aggregate(q, rec.as_ref()).await?;
        Ok(Aggregated {
            partial,
            trace: rec.map(|r| r.snapshot()),
        })
    }

    async fn run_aggregate(&self, q: &AggregateQuery, tracer: Tracer<'_>) -> Result<Partial> {
        let plan = self.plan(q.statement, &q.collection, &q.filter, q.allow_filtering)?;
        let mut coverage = self.coverage(&q.collection, q.level)?;
        let pushed = coverage.required == 1;
        if let Some(rec) = tracer {
            rec.plan(
                q.level,
                coverage.required,
                coverage.ranges.len(),
                &plan.source.describe(&q.filter),
                &plan.order.describe(&q.filter),
            );
            rec.with(|t| {
                t.pushed_down = pushed;
                t.rounds = u32::from(pushed);
            });
        }
        let deadline = Instant::now() + q.timeout;
        let work = async {
            if pushed {
                self.pushed_down(q, &mut coverage, deadline, tracer).await
            } else {
                let filter = Arc::new(q.filter.clone());
                let ctx = Ctx {
                    collection: &q.collection,
                    filter: &filter,
                    order: plan.order,
                };
                let mut partial = Partial::new(q.spec.clone());
                let mut after = None;
                loop {
                    let items = self
                        .collect(
                            &ctx,
                            &mut coverage,
                            after,
                            MAX_PAGE_SIZE + 1,
                            deadline,
                            tracer,
                        )
                        .await?;
                    let more = items.len() > MAX_PAGE_SIZE;
                    for (_, m) in items.iter().take(MAX_PAGE_SIZE) {
                        partial.add_document(&m.live, &q.filter);
                    }
                    if !more {
                        return Ok(partial);
                    }
                    after = Some(items[MAX_PAGE_SIZE - 1].0.clone());
                }
            }
        };
        tokio::time::timeout_at(deadline, work).await.map_err(|_| {
            Error::Timeout(format!(
                "{} {} on {} not answered in {} ms",
                q.level,
                q.statement,
                q.collection,
                q.timeout.as_millis()
            ))
        })?
    }

    /// Each replica folds its own matching documents; the coordinator merges the states.
    async fn pushed_down(
        &self,
        q: &AggregateQuery,
        coverage: &mut Coverage,
        deadline: Instant,
        tracer: Tracer<'_>,
    ) -> Result<Partial> {
        let conditions = conditions_to_proto(&q.filter);
        let (aggregations, group_by) = spec_to_proto(&q.spec);
        let me = self.me().to_string();
        let answers = self
            .fan_out(
                coverage,
                &mut Default::default(),
                Round {
                    deadline,
                    number: 1,
                    tracer,
                },
                |a: &AggregateAnswer| (a.scanned, a.matched, false, a.source.clone()),
                |node, ranges| {
                    if node == me {
                        let replica = self.replica.clone();
                        let (collection, filter, spec) =
                            (q.collection.clone(), q.filter.clone(), q.spec.clone());
                        return async move {
                            replica
                                .aggregate(&collection, filter, &ranges, spec)
                                .await
                                .map_err(Failure::from)
                        }
                        .boxed();
                    }
                    let req = QueryAggregateRequest {
                        collection: q.collection.clone(),
                        conditions: conditions.clone(),
                        ranges: ranges
                            .into_iter()
                            .map(|(first, last)| TokenRange { first, last })
                            .collect(),
                        aggregations: aggregations.clone(),
                        group_by: group_by.clone(),
                    };
                    let transport = self.coordinator.transport().clone();
                    let addr = self.membership.address(node);
                    let (node, spec) = (node.to_string(), q.spec.clone());
                    async move {
                        let addr = addr.ok_or_else(|| {
                            Failure::Failed(format!("no address known for {node}"))
                        })?;
                        let r = transport.query_aggregate(&addr, req).await?;
                        let partial = Partial::from_bytes(&spec, &r.partial).map_err(|e| {
                            Failure::Failed(format!("{node} sent an unreadable partial state: {e}"))
                        })?;
                        Ok(AggregateAnswer {
                            partial,
                            scanned: r.scanned,
                            matched: r.matched,
                            source: r.source,
                        })
                    }
                    .boxed()
                },
            )
            .await?;
        let mut total = Partial::new(q.spec.clone());
        for a in answers {
            total
                .merge(&a.answer.partial)
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(total)
    }
}
