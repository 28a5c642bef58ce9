//! Query tracing: what a query's coordinator did (coverage plan, each replica scan, what
//! the merge re-read, re-checked and dropped, the repairs), recorded only when asked.
//!
//! Invariants kept here: an untraced query records nothing (every hook takes an
//! `Option`); a poisoned lock loses trace detail, never the query.

use std::sync::Mutex;

use ringdb_proto::v1::{QueryScanTrace, QueryTrace, ReplicaOutcome};
use tokio::time::Instant;

use crate::coordinator::Level;

/// A query's recorder, or `None` when the query did not ask for a trace.
pub type Tracer<'a> = Option<&'a Recorder>;

/// Collects one query's trace.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    trace: Mutex<QueryTrace>,
}

/// How one replica scan ended, for its trace line.
pub struct ScanReport<'a> {
    /// The replica.
    pub node: &'a str,
    /// Ranges asked of it.
    pub ranges: usize,
    /// The round (from 1).
    pub round: u32,
    /// How it ended.
    pub outcome: ReplicaOutcome,
    /// Microseconds it took.
    pub micros: u64,
    /// Documents read, candidates reported, whether it stopped at its limit, and how the
    /// replica found them.
    pub counts: (u64, u64, bool, String),
    /// Why it failed, or whom it stood in for.
    pub detail: String,
}

impl Recorder {
    /// Start tracing `operation` ("find", "count", "aggregate") taken by `coordinator`.
    pub fn new(operation: &str, coordinator: &str) -> Recorder {
        Recorder {
            started: Instant::now(),
            trace: Mutex::new(QueryTrace {
                operation: operation.to_string(),
                coordinator: coordinator.to_string(),
                ..QueryTrace::default()
            }),
        }
    }

    /// Change the trace.
    pub fn with(&self, f: impl FnOnce(&mut QueryTrace)) {
        if let Ok(mut t) = self.trace.lock() {
            f(&mut t);
        }
    }

    /// The plan: level, replicas per range, ranges, source and order.
    pub fn plan(&self, level: Level, required: usize, ranges: usize, source: &str, order: &str) {
        self.with(|t| {
            t.level = level.to_proto() as i32;
            t.required = required as u32;
            t.ranges = ranges as u32;
            t.source = source.to_string();
            t.order = order.to_string();
        });
    }

    /// One replica scan's line.
    pub fn scan(&self, r: ScanReport<'_>) {
        self.with(|t| {
            t.scans.push(QueryScanTrace {
                node: r.node.to_string(),
                ranges: r.ranges as u32,
                round: r.round,
                outcome: r.outcome as i32,
                micros: r.micros,
                scanned: r.counts.0,
                candidates: r.counts.1,
                stopped: r.counts.2,
                detail: r.detail,
                source: r.counts.3,
            })
        });
    }

    /// The trace as of now, with the time taken so far.
    pub fn snapshot(&self) -> QueryTrace {
        let mut t = self.trace.lock().map(|t| t.clone()).unwrap_or_default();
        t.total_micros = self.started.elapsed().as_micros() as u64;
        t
    }
}
