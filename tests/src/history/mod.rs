//! Histories of concurrent client operations, and the checker that judges them against
//! RingDB's promises (docs/consistency.md, docs/testing.md).
//!
//! A [`Recorder`] is shared by every client of a run. Each operation is recorded when it is
//! invoked and again when it completes, with its outcome:
//!
//! - `Ok`: the cluster acknowledged it (for a read: it returned values);
//! - `Failed`: it definitely had no effect (`UNAVAILABLE` before anything was written,
//!   `INVALID_ARGUMENT`, a request that never left the client, any failed read);
//! - `Unknown`: a write whose effect cannot be known (`DEADLINE_EXCEEDED`, a connection that
//!   broke after sending, no answer before the harness gave up). It may have been stored,
//!   now or later.
//!
//! Every put writes a document `{"w": id, "c": client}` with an id unique in the run, so a
//! read's siblings map back to the writes that produced them. A write made with a context
//! names the operation whose result gave it that context, which is how the checker knows
//! what the write supersedes.

pub mod check;
pub mod workload;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use check::{check, check_convergence, Report, Violation, ViolationKind};

/// Index of an operation in its history.
pub type OpId = usize;

/// The consistency levels the workload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// One replica.
    One,
    /// floor(N/2) + 1 replicas.
    Quorum,
    /// All N replicas.
    All,
}

impl Level {
    /// Replicas that must answer out of `n`.
    pub fn replicas(self, n: usize) -> usize {
        match self {
            Level::One => 1,
            Level::Quorum => n / 2 + 1,
            Level::All => n,
        }
    }

    /// Dense index, for per-level tables.
    pub(crate) fn index(self) -> usize {
        match self {
            Level::One => 0,
            Level::Quorum => 1,
            Level::All => 2,
        }
    }

    /// Every level, in index order.
    pub const EVERY: [Level; 3] = [Level::One, Level::Quorum, Level::All];
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::One => "ONE",
            Level::Quorum => "QUORUM",
            Level::All => "ALL",
        })
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A read.
    Get,
    /// A write of the document with this id, with the context returned by operation
    /// `context` (a read or a put of the same key), or none (a blind write).
    Put {
        /// The document's unique id.
        id: u64,
        /// The operation whose result gave the context.
        context: Option<OpId>,
    },
    /// A delete with the context returned by operation `context`, or none (the coordinator
    /// then deletes what a read at the same level sees).
    Delete {
        /// The operation whose result gave the context.
        context: Option<OpId>,
    },
}

impl Kind {
    /// Whether this is a put or a delete.
    pub fn is_write(&self) -> bool {
        !matches!(self, Kind::Get)
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not completed yet.
    Pending,
    /// Acknowledged (writes) or answered (reads).
    Ok,
    /// Definitely without effect.
    Failed,
    /// A write that may or may not have been stored.
    Unknown,
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// Which client issued it.
    pub client: usize,
    /// The document key.
    pub key: String,
    /// Read, put or delete.
    pub kind: Kind,
    /// Its consistency level.
    pub level: Level,
    /// Microseconds since the run began, when the request was sent.
    pub invoke_us: u64,
    /// Microseconds since the run began, when the answer (or the give-up) came.
    pub complete_us: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// For a successful read: the ids of the siblings it returned (0 for a document that is
    /// not one the workload wrote).
    pub values: Vec<u64>,
    /// The error message, for reports.
    pub note: String,
}

/// Every operation of a run, and the replication factor they ran at.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// N of the collection the operations used.
    pub n: usize,
    /// The operations; an [`OpId`] indexes this.
    pub ops: Vec<Op>,
}

impl History {
    /// An empty history for a collection with replication factor `n`.
    pub fn new(n: usize) -> Self {
        History { n, ops: Vec::new() }
    }
}

/// Records the operations of concurrent clients; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    n: usize,
    ops: Arc<Mutex<Vec<Op>>>,
    next_id: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder for operations on a collection with replication factor `n`; time 0 is now.
    pub fn new(n: usize) -> Self {
        Recorder {
            start: Instant::now(),
            n,
            ops: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Microseconds since the recorder was made.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// A document id never handed out before in this run (ids start at 1).
    pub fn next_document_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Record that an operation is being sent; call right before sending it.
    pub fn invoke(&self, client: usize, key: &str, kind: Kind, level: Level) -> OpId {
        let mut ops = self.ops.lock().unwrap();
        let now = self.now_us();
        ops.push(Op {
            client,
            key: key.to_string(),
            kind,
            level,
            invoke_us: now,
            complete_us: now,
            outcome: Outcome::Pending,
            values: Vec::new(),
            note: String::new(),
        });
        ops.len() - 1
    }

    /// Record how operation `id` ended; call right after the answer arrives.
    pub fn complete(&self, id: OpId, outcome: Outcome, values: Vec<u64>, note: String) {
        let now = self.now_us();
        let mut ops = self.ops.lock().unwrap();
        let op = &mut ops[id];
        op.complete_us = now;
        op.outcome = outcome;
        op.values = values;
        op.note = note;
    }

    /// The history so far. Operations still pending are reported as `Unknown` (a write) or
    /// `Failed` (a read), as if the harness had given up on them now.
    pub fn history(&self) -> History {
        let now = self.now_us();
        let mut ops = self.ops.lock().unwrap().clone();
        for op in ops.iter_mut().filter(|o| o.outcome == Outcome::Pending) {
            op.complete_us = now;
            op.outcome = if op.kind.is_write() {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
        }
        History { n: self.n, ops }
    }
}

/// The JSON document a put with id `id` by `client` writes.
pub fn document(id: u64, client: usize) -> Vec<u8> {
    format!(r#"{{"w":{id},"c":{client}}}"#).into_bytes()
}

/// The id of a document the workload wrote, or 0 for anything else.
pub fn document_id(json: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("w").and_then(|w| w.as_u64()))
        .unwrap_or(0)
}
