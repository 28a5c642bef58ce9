//! Fault scenarios: a workload runs while faults are injected on a seeded schedule, then the
//! faults heal, anti-entropy runs until the replicas agree, every key is read at `ALL`, and
//! the whole history is checked ([`crate::history::check`]).
//!
//! Three settings, one checker:
//! - [`sim`]: in-process nodes over the simulated network (partitions, bridges, lossy and
//!   slow links, crashes and restarts);
//! - [`process`]: real `ringdb` processes (`kill -9` and restart, `SIGSTOP`/`SIGCONT`);
//! - [`docker`]: real processes in containers on a private network, one partitioned off
//!   with `docker network disconnect`.
//!
//! A seed fixes the fault schedule exactly (same events, same order, same durations) and
//! the clients' random choices. It does not fix the interleaving: tokio's scheduling, the
//! OS and wall-clock timers decide which request reaches which node first, so a failing
//! seed reproduces the same story, not the same run. See docs/testing.md.

pub mod docker;
pub mod process;
pub mod sim;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::history::{History, Report, Violation};

/// The seeds to run: `RINGDB_SEED` when set (a failing run prints its seed), else `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("RINGDB_SEED") {
        Ok(s) => vec![s
            .trim()
            .parse()
            .expect("RINGDB_SEED must be an unsigned integer")],
        Err(_) => defaults.to_vec(),
    }
}

/// The outcome of one scenario run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Which scenario (`sim`, `process`, `docker`).
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// What the checker found, convergence included.
    pub report: Report,
    /// Milliseconds from the heal until every replica of every key agreed (or until the
    /// checker gave up, then reported as `Diverged`).
    pub converge_ms: u64,
    /// Where the history (and the nodes' logs) of a run with violations were kept.
    pub evidence: Option<PathBuf>,
}

/// Keep what a failing run leaves for a human: the history, one operation per line, and
/// copies of the nodes' logs, in `$TMPDIR/ringdb-faults-<scenario>-<seed>-<pid>/`.
pub(crate) fn keep_evidence(
    scenario: &str,
    seed: u64,
    history: &History,
    logs: &[(String, &Path)],
) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "ringdb-faults-{scenario}-{seed}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let lines: Vec<String> = history
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| format!("#{i} {op:?}"))
        .collect();
    std::fs::write(dir.join("history.txt"), lines.join("\n")).ok()?;
    for (name, path) in logs {
        let _ = std::fs::copy(path, dir.join(format!("{name}.log")));
    }
    Some(dir)
}

impl Summary {
    pub(crate) fn new(
        scenario: &str,
        seed: u64,
        mut report: Report,
        converge_ms: u64,
        diverged: Vec<Violation>,
    ) -> Summary {
        for v in diverged {
            report.add(v);
        }
        Summary {
            scenario: scenario.to_string(),
            seed,
            report,
            converge_ms,
            evidence: None,
        }
    }

    /// Whether every promise held.
    pub fn is_clean(&self) -> bool {
        self.report.is_clean()
    }

    /// Panic with the violations and `rerun` (the command that repeats the run) unless the
    /// run was clean.
    pub fn assert_clean(&self, rerun: &str) {
        assert!(
            self.is_clean(),
            "{self}\nviolations: {}\nhistory and logs kept in {:?}\nrerun with: {rerun}",
            self.report.describe(20),
            self.evidence,
        );
    }
}

impl fmt::Display for Summary {
    /// The one summary line of a run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        write!(
            f,
            "scenario={} seed={} ops={} acknowledged={} failed={} unknown={} lost={} max_siblings={} converge_ms={} violations={}",
            self.scenario,
            self.seed,
            r.ops,
            r.acknowledged,
            r.failed,
            r.unknown,
            r.lost(),
            r.max_siblings,
            self.converge_ms,
            r.total()
        )
    }
}
