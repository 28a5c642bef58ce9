//! Asking every replica of a coverage plan at once, with stand-ins for replicas that fail:
//! the one fan-out behind query scans and partial aggregations.
//!
//! Invariants kept here:
//! - when it returns `Ok`, every range of the plan was answered by exactly the replicas
//!   its `asked` list names (stand-ins included);
//! - a replica that fails (refused, unreachable, an error of its own) is excluded for the
//!   rest of the query and replaced range by range; when a range has nobody left the query
//!   fails with `Unavailable`; a replica that does not answer by the deadline fails it with
//!   `Timeout`; a refusal of the request itself (`INVALID_ARGUMENT`) is final;
//! - this node's own part is answered without the network.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use ringdb_proto::v1::ReplicaOutcome;
use tokio::time::Instant;

use super::plan::Coverage;
use super::trace::{ScanReport, Tracer};
use super::QueryEngine;
use crate::error::{Error, Result};
use crate::ring::Token;
use crate::transport::TransportError;

/// Why one replica call did not answer.
pub(super) enum Failure {
    /// The request itself was refused: the query fails with this error.
    Final(Error),
    /// The replica failed; another may stand in.
    Failed(String),
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Failure {
        match e {
            TransportError::Rejected {
                code: tonic::Code::InvalidArgument,
                message,
            } => Failure::Final(Error::InvalidArgument(message)),
            other => Failure::Failed(other.to_string()),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::InvalidArgument(_) => Failure::Final(e),
            other => Failure::Failed(other.to_string()),
        }
    }
}

/// One replica's answer for some ranges.
pub(super) struct Answered<T> {
    /// The replica.
    pub(super) node: String,
    /// What it answered.
    pub(super) answer: T,
}

/// What the trace says of an answer: documents read, candidates, whether it stopped, and
/// how the replica found them.
pub(super) type Counts<T> = fn(&T) -> (u64, u64, bool, String);

/// When a fan-out must be done, which round of the query it is, and its trace.
#[derive(Clone, Copy)]
pub(super) struct Round<'a> {
    pub(super) deadline: Instant,
    pub(super) number: u32,
    pub(super) tracer: Tracer<'a>,
}

impl QueryEngine {
    /// Ask each replica of `coverage` for its ranges with `call(node, ranges)`, replacing
    /// replicas that fail (see the module docs); `excluded` carries the failed ones across
    /// the rounds of one query.
    pub(super) async fn fan_out<T: Send + 'static>(
        &self,
        coverage: &mut Coverage,
        excluded: &mut BTreeSet<String>,
        at: Round<'_>,
        counts: Counts<T>,
        call: impl Fn(&str, Vec<(Token, Token)>) -> BoxFuture<'static, Result<T, Failure>>,
    ) -> Result<Vec<Answered<T>>> {
        let Round {
            deadline,
            number: round,
            tracer,
        } = at;
        let mut pending = coverage.by_node();
        let mut stand_ins: BTreeMap<String, String> = BTreeMap::new();
        let mut done = Vec::new();
        while !pending.is_empty() {
            let calls = pending.into_iter().map(|(node, ranges)| {
                let tokens = ranges
                    .iter()
                    .map(|&i| (coverage.ranges[i].first, coverage.ranges[i].last))
                    .collect();
                let f = call(&node, tokens);
                async move {
                    let started = Instant::now();
                    let r = tokio::time::timeout_at(deadline, f).await;
                    (node, ranges, r, started.elapsed().as_micros() as u64)
                }
            });
            let results = futures::future::join_all(calls).await;
            let mut next: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            let mut timed_out = Vec::new();
            for (node, ranges, r, micros) in results {
                let report = |outcome, counts: (u64, u64, bool, String), detail: String| {
                    if let Some(rec) = tracer {
                        rec.scan(ScanReport {
                            node: &node,
                            ranges: ranges.len(),
                            round,
                            outcome,
                            micros,
                            counts,
                            detail,
                        });
                    }
                };
                let stood_in = stand_ins
                    .get(&node)
                    .map(|f| format!("stood in for {f}"))
                    .unwrap_or_default();
                match r {
                    Ok(Ok(answer)) => {
                        report(ReplicaOutcome::Ok, counts(&answer), stood_in);
                        done.push(Answered { node, answer });
                    }
                    Err(_) => {
                        report(
                            ReplicaOutcome::Timeout,
                            (0, 0, false, String::new()),
                            "no answer in time".into(),
                        );
                        timed_out.push(format!("{node} ({} token ranges)", ranges.len()));
                    }
                    Ok(Err(Failure::Final(e))) => {
                        report(
                            ReplicaOutcome::Failed,
                            (0, 0, false, String::new()),
                            e.to_string(),
                        );
                        return Err(e);
                    }
                    Ok(Err(Failure::Failed(why))) => {
                        report(
                            ReplicaOutcome::Failed,
                            (0, 0, false, String::new()),
                            why.clone(),
                        );
                        tracing::debug!(%node, error = %why, "query scan failed; asking another replica");
                        excluded.insert(node.clone());
                        let new = coverage
                            .replace(&node, &ranges, excluded, |n| self.membership.is_up(n))?;
                        for (stand_in, rs) in new {
                            stand_ins.insert(stand_in.clone(), node.clone());
                            next.entry(stand_in).or_default().extend(rs);
                        }
                    }
                }
            }
            if !timed_out.is_empty() {
                return Err(Error::Timeout(format!(
                    "query not answered in time: no answer from {}",
                    timed_out.join(", ")
                )));
            }
            pending = next;
        }
        Ok(done)
    }
}
