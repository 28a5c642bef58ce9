//! The checker: what a history of RingDB operations must satisfy.
//!
//! Definitions (N is the collection's replication factor; a pair of levels is *strong* when
//! their replica counts sum to more than N):
//!
//! - What a write *supersedes*: a put or delete made with the context of a read supersedes
//!   every document that read returned, and everything those documents' own writes
//!   superseded; with the context of a put, that put's document and what it superseded. A
//!   blind put supersedes nothing. A blind delete supersedes what its own read saw, which
//!   the client cannot know, so the checker bounds it from both sides: it *may* supersede
//!   any document written before the delete completed, and it *must* supersede every
//!   document acknowledged before the delete began at a level strong with the delete's.
//!
//! The properties, each a kind of [`Violation`]:
//!
//! - **Lost**: an acknowledged put whose document a later read (one that began after the
//!   acknowledgement, at a level strong with the put's) does not return, while no write
//!   that may have been stored and began before that read ended may supersede it.
//! - **Stale** / **Resurrected**: a read returns a document that a write acknowledged
//!   before the read began, at a strong level, must have superseded (Resurrected when
//!   that write is a delete).
//! - **Phantom**: a read returns a document that no write produced, one from a write that
//!   failed definitely, one written to another key, or one whose write began after the read
//!   ended.
//! - **Duplicate**: one document twice among a read's siblings (a write applied twice).
//! - **TooManySiblings**: more siblings than writes that may be stored and that nothing
//!   acknowledged before the read must have superseded (the concurrent writers).
//! - **Diverged**: after faults heal and anti-entropy runs, replicas of a key differ
//!   ([`check_convergence`]).
//!
//! Each check only flags what no correct execution could produce: writes of unknown outcome
//! count as possibly stored, at any later time, and a blind delete's reach is taken at its
//! widest when excusing and at its narrowest when accusing. So a clean report is evidence,
//! not proof; a violation is a bug (in RingDB or in the recording).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use super::{History, Kind, Level, OpId, Outcome};

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// An acknowledged write that a later strong read did not see.
    Lost,
    /// A document returned after a write acknowledged earlier superseded it.
    Stale,
    /// A document returned after a delete acknowledged earlier superseded it.
    Resurrected,
    /// A document that no write that could have been stored produced.
    Phantom,
    /// The same document twice among one read's siblings.
    Duplicate,
    /// More siblings than concurrent writers.
    TooManySiblings,
    /// Replicas that still differ after healing and repair.
    Diverged,
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One broken promise, with what the checker saw.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which promise.
    pub kind: ViolationKind,
    /// The key it happened on.
    pub key: String,
    /// The operations involved.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}: {}", self.kind, self.key, self.detail)
    }
}

/// What the checker found in one history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Operations recorded.
    pub ops: usize,
    /// Writes (puts and deletes) acknowledged.
    pub acknowledged: usize,
    /// Operations that definitely had no effect (and failed reads).
    pub failed: usize,
    /// Writes of unknown outcome.
    pub unknown: usize,
    /// Successful reads.
    pub reads: usize,
    /// Most siblings any read returned.
    pub max_siblings: usize,
    /// Violations by kind (every one counted).
    pub counts: BTreeMap<ViolationKind, usize>,
    /// The first violations, in detail (at most [`Report::KEPT`]).
    pub violations: Vec<Violation>,
}

impl Report {
    /// Violations kept in detail; the rest are only counted.
    pub const KEPT: usize = 100;

    /// Count a violation, keeping its detail while there are few.
    pub fn add(&mut self, v: Violation) {
        *self.counts.entry(v.kind).or_default() += 1;
        if self.violations.len() < Self::KEPT {
            self.violations.push(v);
        }
    }

    /// Violations of one kind.
    pub fn count(&self, kind: ViolationKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Acknowledged writes lost.
    pub fn lost(&self) -> usize {
        self.count(ViolationKind::Lost)
    }

    /// Violations of every kind.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Whether nothing was violated.
    pub fn is_clean(&self) -> bool {
        self.total() == 0
    }

    /// Counts by kind and the first `limit` violations, one per line.
    pub fn describe(&self, limit: usize) -> String {
        let mut s = format!("{:?}", self.counts);
        for v in self.violations.iter().take(limit) {
            s.push_str("\n  ");
            s.push_str(&v.to_string());
        }
        s
    }
}

/// Check every promise that a history can show (all but convergence).
pub fn check(h: &History) -> Report {
    let mut report = Report {
        ops: h.ops.len(),
        ..Report::default()
    };
    for op in &h.ops {
        match (op.outcome, op.kind.is_write()) {
            (Outcome::Ok, true) => report.acknowledged += 1,
            (Outcome::Ok, false) => report.reads += 1,
            (Outcome::Failed, _) => report.failed += 1,
            (Outcome::Unknown | Outcome::Pending, _) => report.unknown += 1,
        }
    }
    let mut put_of: HashMap<u64, OpId> = HashMap::new();
    let mut by_key: BTreeMap<&str, Vec<OpId>> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if let Kind::Put { id, .. } = op.kind {
            put_of.insert(id, i);
        }
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    for (key, ops) in by_key {
        KeyCheck::new(h, key, ops, &put_of).run(&mut report);
    }
    report
}

/// Compare the replicas' states of every key: `replicas` lists, per key, each replica's id
/// and state. Returns a `Diverged` violation for each key whose replicas differ.
pub fn check_convergence<S: PartialEq + fmt::Debug>(
    replicas: &[(String, Vec<(String, S)>)],
) -> Vec<Violation> {
    replicas
        .iter()
        .filter(|(_, states)| states.windows(2).any(|w| w[0].1 != w[1].1))
        .map(|(key, states)| Violation {
            kind: ViolationKind::Diverged,
            key: key.clone(),
            detail: states
                .iter()
                .map(|(node, s)| format!("{node}: {s:?}"))
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect()
}

/// A fixed-size set of small integers (a key's puts, densely numbered).
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= *b;
        }
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// Which side to bound a blind delete's reach from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bound {
    /// Everything it may supersede (to excuse a missing document).
    May,
    /// Only what it must supersede (to accuse a document still returned).
    Must,
}

/// The checks of one key's operations.
struct KeyCheck<'h> {
    h: &'h History,
    key: &'h str,
    ops: Vec<OpId>,
    put_of: &'h HashMap<u64, OpId>,
    /// Dense index -> op id, for the puts of this key.
    puts: Vec<OpId>,
    /// Document id -> dense index.
    dense: HashMap<u64, usize>,
    memo: HashMap<(OpId, Bound), Rc<Bits>>,
    visiting: HashSet<(OpId, Bound)>,
}

const NEVER: u64 = u64::MAX;

impl<'h> KeyCheck<'h> {
    fn new(h: &'h History, key: &'h str, ops: Vec<OpId>, put_of: &'h HashMap<u64, OpId>) -> Self {
        let puts: Vec<OpId> = ops
            .iter()
            .copied()
            .filter(|i| matches!(h.ops[*i].kind, Kind::Put { .. }))
            .collect();
        let dense = puts
            .iter()
            .enumerate()
            .filter_map(|(d, i)| match h.ops[*i].kind {
                Kind::Put { id, .. } => Some((id, d)),
                _ => None,
            })
            .collect();
        KeyCheck {
            h,
            key,
            ops,
            put_of,
            puts,
            dense,
            memo: HashMap::new(),
            visiting: HashSet::new(),
        }
    }

    fn strong(&self, a: Level, b: Level) -> bool {
        a.replicas(self.h.n) + b.replicas(self.h.n) > self.h.n
    }

    fn describe(&self, i: OpId) -> String {
        let op = &self.h.ops[i];
        let what = match &op.kind {
            Kind::Get => format!("get -> {:?}", op.values),
            Kind::Put { id, context } => match context {
                Some(c) => format!("put w{id} with the context of #{c}"),
                None => format!("blind put w{id}"),
            },
            Kind::Delete { context } => match context {
                Some(c) => format!("delete with the context of #{c}"),
                None => "blind delete".to_string(),
            },
        };
        let note = if op.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", op.note)
        };
        format!(
            "#{i} client {} {what} at {} [{:.3}s..{:.3}s] {:?}{note}",
            op.client,
            op.level,
            op.invoke_us as f64 / 1e6,
            op.complete_us as f64 / 1e6,
            op.outcome,
        )
    }

    /// What the context returned by operation `i` covers, among this key's puts.
    fn context_covers(&mut self, i: OpId, bound: Bound) -> Rc<Bits> {
        if let Some(b) = self.memo.get(&(i, bound)) {
            return b.clone();
        }
        let mut bits = Bits::new(self.puts.len());
        // A cycle only arises in a history no execution produces; it is flagged elsewhere.
        if !self.visiting.insert((i, bound)) {
            return Rc::new(bits);
        }
        let op = &self.h.ops[i];
        if op.outcome == Outcome::Ok && op.key == self.key {
            match &op.kind {
                Kind::Get => {
                    for v in op.values.clone() {
                        if let Some(&d) = self.dense.get(&v) {
                            bits.set(d);
                            let inner = self.write_covers(self.puts[d], bound);
                            bits.union(&inner);
                        }
                    }
                }
                Kind::Put { id, .. } => {
                    bits.set(self.dense[id]);
                    let inner = self.write_covers(i, bound);
                    bits.union(&inner);
                }
                Kind::Delete { .. } => {
                    let inner = self.write_covers(i, bound);
                    bits.union(&inner);
                }
            }
        }
        self.visiting.remove(&(i, bound));
        let bits = Rc::new(bits);
        self.memo.insert((i, bound), bits.clone());
        bits
    }

    /// What write `x` supersedes if it is stored.
    fn write_covers(&mut self, x: OpId, bound: Bound) -> Rc<Bits> {
        let op = &self.h.ops[x];
        match (&op.kind, bound) {
            (Kind::Get, _) | (Kind::Put { context: None, .. }, _) => {
                Rc::new(Bits::new(self.puts.len()))
            }
            (
                Kind::Put {
                    context: Some(c), ..
                },
                _,
            )
            | (Kind::Delete { context: Some(c) }, _) => self.context_covers(*c, bound),
            (Kind::Delete { context: None }, Bound::May) => {
                let end = match op.outcome {
                    Outcome::Ok | Outcome::Failed => op.complete_us,
                    Outcome::Unknown | Outcome::Pending => NEVER,
                };
                let mut bits = Bits::new(self.puts.len());
                for (d, p) in self.puts.iter().enumerate() {
                    let p = &self.h.ops[*p];
                    if p.outcome != Outcome::Failed && p.invoke_us < end {
                        bits.set(d);
                    }
                }
                Rc::new(bits)
            }
            (Kind::Delete { context: None }, Bound::Must) => {
                let (level, invoke) = (op.level, op.invoke_us);
                let mut bits = Bits::new(self.puts.len());
                for d in 0..self.puts.len() {
                    let p = &self.h.ops[self.puts[d]];
                    if p.outcome == Outcome::Ok
                        && p.complete_us < invoke
                        && self.strong(level, p.level)
                    {
                        let inner = self.context_covers(self.puts[d], Bound::Must);
                        bits.union(&inner);
                    }
                }
                Rc::new(bits)
            }
        }
    }

    fn run(mut self, report: &mut Report) {
        let h = self.h;
        let writes: Vec<OpId> = self
            .ops
            .iter()
            .copied()
            .filter(|i| h.ops[*i].kind.is_write())
            .collect();
        let mut reads: Vec<OpId> = self
            .ops
            .iter()
            .copied()
            .filter(|i| h.ops[*i].kind == Kind::Get && h.ops[*i].outcome == Outcome::Ok)
            .collect();
        reads.sort_by_key(|i| h.ops[*i].invoke_us);

        // Earliest start of a write that may be stored and may supersede each put.
        let mut excused_from = vec![NEVER; self.puts.len()];
        // Per read level: earliest acknowledgement (and by whom) of a write that must
        // supersede each put and that reads at that level must see.
        let mut superseded_at = vec![[(NEVER, 0usize); 3]; self.puts.len()];
        for &x in &writes {
            let op = &h.ops[x];
            if matches!(
                op.outcome,
                Outcome::Ok | Outcome::Unknown | Outcome::Pending
            ) {
                for d in self.write_covers(x, Bound::May).iter() {
                    excused_from[d] = excused_from[d].min(op.invoke_us);
                }
            }
            if op.outcome == Outcome::Ok {
                let must = self.write_covers(x, Bound::Must);
                for level in Level::EVERY {
                    if !self.strong(level, op.level) {
                        continue;
                    }
                    for d in must.iter() {
                        let slot = &mut superseded_at[d][level.index()];
                        if op.complete_us < slot.0 {
                            *slot = (op.complete_us, x);
                        }
                    }
                }
            }
        }

        // Lost: each acknowledged put against every later strong read.
        for (d, &w) in self.puts.iter().enumerate() {
            let wop = &h.ops[w];
            let Kind::Put { id, .. } = wop.kind else {
                continue;
            };
            if wop.outcome != Outcome::Ok {
                continue;
            }
            let first_miss = reads.iter().copied().find(|&r| {
                let rop = &h.ops[r];
                rop.invoke_us > wop.complete_us
                    && self.strong(rop.level, wop.level)
                    && !rop.values.contains(&id)
                    && excused_from[d] >= rop.complete_us
            });
            if let Some(r) = first_miss {
                report.add(Violation {
                    kind: ViolationKind::Lost,
                    key: self.key.to_string(),
                    detail: format!(
                        "w{id} was acknowledged ({}) but a read that began after it did not return it and nothing could have superseded it ({})",
                        self.describe(w),
                        self.describe(r)
                    ),
                });
            }
        }

        // What each read returned.
        for &r in &reads {
            let rop = &h.ops[r];
            report.max_siblings = report.max_siblings.max(rop.values.len());
            let mut seen = HashSet::new();
            for &v in &rop.values {
                if !seen.insert(v) {
                    report.add(Violation {
                        kind: ViolationKind::Duplicate,
                        key: self.key.to_string(),
                        detail: format!("w{v} twice among the siblings: {}", self.describe(r)),
                    });
                }
                let Some(&p) = self.put_of.get(&v) else {
                    report.add(Violation {
                        kind: ViolationKind::Phantom,
                        key: self.key.to_string(),
                        detail: format!(
                            "a document no write of this run produced (id {v}): {}",
                            self.describe(r)
                        ),
                    });
                    continue;
                };
                let pop = &h.ops[p];
                let why = if pop.key != self.key {
                    Some(format!("it was written to key {}", pop.key))
                } else if pop.outcome == Outcome::Failed {
                    Some("its write failed definitely".to_string())
                } else if pop.invoke_us >= rop.complete_us {
                    Some("its write began after the read ended".to_string())
                } else {
                    None
                };
                if let Some(why) = why {
                    report.add(Violation {
                        kind: ViolationKind::Phantom,
                        key: self.key.to_string(),
                        detail: format!(
                            "w{v} returned but {why}: {} / {}",
                            self.describe(r),
                            self.describe(p)
                        ),
                    });
                    continue;
                }
                let d = self.dense[&v];
                let (at, by) = superseded_at[d][rop.level.index()];
                if at < rop.invoke_us {
                    let kind = if matches!(h.ops[by].kind, Kind::Delete { .. }) {
                        ViolationKind::Resurrected
                    } else {
                        ViolationKind::Stale
                    };
                    report.add(Violation {
                        kind,
                        key: self.key.to_string(),
                        detail: format!(
                            "w{v} returned after an acknowledged write superseded it: {} / superseded by {}",
                            self.describe(r),
                            self.describe(by)
                        ),
                    });
                }
            }
            // Siblings are bounded by the writes that may be stored and are not superseded.
            let concurrent = (0..self.puts.len())
                .filter(|&d| {
                    let p = &h.ops[self.puts[d]];
                    p.outcome != Outcome::Failed
                        && p.invoke_us < rop.complete_us
                        && superseded_at[d][rop.level.index()].0 >= rop.invoke_us
                })
                .count();
            if rop.values.len() > concurrent {
                report.add(Violation {
                    kind: ViolationKind::TooManySiblings,
                    key: self.key.to_string(),
                    detail: format!(
                        "{} siblings but only {concurrent} writes could be live: {}",
                        rop.values.len(),
                        self.describe(r)
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    /// Builds synthetic histories: times in milliseconds.
    struct B {
        h: History,
        next: u64,
    }

    impl B {
        fn new() -> B {
            B {
                h: History::new(3),
                next: 1,
            }
        }
        fn op(&mut self, kind: Kind, level: Level, t: (u64, u64), outcome: Outcome) -> OpId {
            self.h.ops.push(Op {
                client: 0,
                key: "k".into(),
                kind,
                level,
                invoke_us: t.0 * 1000,
                complete_us: t.1 * 1000,
                outcome,
                values: Vec::new(),
                note: String::new(),
            });
            self.h.ops.len() - 1
        }
        /// A put; returns (op id, document id).
        fn put(&mut self, ctx: Option<OpId>, t: (u64, u64), outcome: Outcome) -> (OpId, u64) {
            let id = self.next;
            self.next += 1;
            let op = self.op(Kind::Put { id, context: ctx }, Level::Quorum, t, outcome);
            (op, id)
        }
        fn del(&mut self, ctx: Option<OpId>, t: (u64, u64), outcome: Outcome) -> OpId {
            self.op(Kind::Delete { context: ctx }, Level::Quorum, t, outcome)
        }
        fn get(&mut self, t: (u64, u64), values: &[u64]) -> OpId {
            let i = self.op(Kind::Get, Level::Quorum, t, Outcome::Ok);
            self.h.ops[i].values = values.to_vec();
            i
        }
        fn check(&self) -> Report {
            check(&self.h)
        }
    }

    use Outcome::{Failed, Ok, Unknown};

    #[test]
    fn an_honest_history_is_clean() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let (_, w2) = b.put(None, (5, 12), Ok);
        let r = b.get((20, 30), &[w1, w2]);
        let (_, w3) = b.put(Some(r), (31, 40), Ok);
        b.get((50, 60), &[w3]);
        let r = b.check();
        assert!(r.is_clean(), "{}", r.describe(10));
        assert_eq!(r.max_siblings, 2);
        assert_eq!((r.ops, r.acknowledged, r.reads), (5, 3, 2));
    }

    #[test]
    fn a_planted_lost_write_is_caught() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let (_, w2) = b.put(None, (0, 10), Ok);
        b.get((20, 30), &[w2]);
        let r = b.check();
        assert_eq!(r.lost(), 1, "{}", r.describe(10));
        assert!(r.violations[0].detail.contains(&format!("w{w1}")));
    }

    #[test]
    fn a_read_that_began_before_the_ack_or_at_weak_levels_may_miss_a_write() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        b.get((5, 30), &[]);
        let (p, _) = b.put(None, (40, 50), Ok);
        b.h.ops[p].level = Level::One;
        b.get((60, 70), &[w1]); // QUORUM after ONE: 2 + 1 = N, not strong
        let r = b.check();
        assert!(r.is_clean(), "{}", r.describe(10));
    }

    #[test]
    fn a_write_that_may_supersede_excuses_a_missing_document() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let r1 = b.get((11, 12), &[w1]);
        // Unknown outcome: may have been stored, may have replaced w1.
        b.put(Some(r1), (13, 500), Unknown);
        b.get((20, 30), &[]);
        let r = b.check();
        assert!(r.is_clean(), "{}", r.describe(10));
        // A failed one excuses nothing.
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let r1 = b.get((11, 12), &[w1]);
        b.put(Some(r1), (13, 14), Failed);
        b.get((20, 30), &[]);
        assert_eq!(b.check().lost(), 1);
    }

    #[test]
    fn superseding_is_transitive_through_chained_contexts() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let r1 = b.get((11, 12), &[w1]);
        let (p2, w2) = b.put(Some(r1), (13, 14), Unknown);
        // Chained from w2's own result is impossible (unknown), so chain from a read of it.
        let r2 = b.get((15, 16), &[w2]);
        b.put(Some(r2), (17, 18), Ok);
        b.get((20, 30), &[w1]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Stale), 1, "{}", r.describe(10));
        let _ = p2;
    }

    #[test]
    fn a_superseded_document_returned_is_stale_and_a_deleted_one_resurrected() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let r1 = b.get((11, 12), &[w1]);
        let (_, w2) = b.put(Some(r1), (13, 20), Ok);
        b.get((30, 40), &[w1, w2]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Stale), 1, "{}", r.describe(10));

        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let r1 = b.get((11, 12), &[w1]);
        b.del(Some(r1), (13, 20), Ok);
        b.get((15, 40), &[w1]); // concurrent with the delete: fine
        b.get((30, 40), &[w1]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Resurrected), 1, "{}", r.describe(10));
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn a_blind_delete_must_remove_what_was_acknowledged_before_it_began() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let (_, w2) = b.put(None, (15, 25), Ok); // concurrent with the delete
        b.del(None, (20, 30), Ok);
        b.get((40, 50), &[w2]);
        let r = b.check();
        assert!(r.is_clean(), "{}", r.describe(10));
        b.get((60, 70), &[w1, w2]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Resurrected), 1, "{}", r.describe(10));
        // And a blind delete of unknown outcome excuses a later miss of anything before it.
        let mut b = B::new();
        b.put(None, (0, 10), Ok);
        b.del(None, (20, 3000), Unknown);
        b.get((40, 50), &[]);
        assert!(b.check().is_clean());
    }

    #[test]
    fn phantoms_and_duplicates_are_caught() {
        let mut b = B::new();
        let (_, failed) = b.put(None, (0, 10), Failed);
        let (_, w) = b.put(None, (0, 10), Ok);
        b.get((20, 30), &[w, failed]);
        b.get((20, 30), &[w, 0]);
        b.get((20, 30), &[w, w]);
        let (_, future) = b.put(None, (35, 40), Ok);
        b.get((20, 30), &[w, future]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Phantom), 3, "{}", r.describe(10));
        assert_eq!(r.count(ViolationKind::Duplicate), 1, "{}", r.describe(10));
    }

    #[test]
    fn siblings_are_bounded_by_the_writes_still_live() {
        let mut b = B::new();
        let (_, w1) = b.put(None, (0, 10), Ok);
        let (_, w2) = b.put(None, (0, 10), Unknown);
        let (_, w3) = b.put(None, (0, 10), Ok);
        b.get((20, 30), &[w1, w2, w3]);
        let r = b.check();
        assert!(r.is_clean(), "{}", r.describe(10));
        assert_eq!(r.max_siblings, 3);
        let r1 = b.get((31, 32), &[w1, w2, w3]);
        b.put(Some(r1), (33, 34), Ok);
        // w1..w3 are superseded: returning two of them is stale and too many siblings.
        b.get((40, 50), &[w1, w2]);
        let r = b.check();
        assert_eq!(r.count(ViolationKind::Stale), 2, "{}", r.describe(10));
        assert_eq!(r.count(ViolationKind::TooManySiblings), 1);
    }

    #[test]
    fn replicas_that_differ_have_diverged() {
        let states = vec![
            (
                "a".to_string(),
                vec![("n1".to_string(), 1), ("n2".to_string(), 1)],
            ),
            (
                "b".to_string(),
                vec![("n1".to_string(), 1), ("n2".to_string(), 2)],
            ),
        ];
        let v = check_convergence(&states);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].key.as_str()),
            (ViolationKind::Diverged, "b")
        );
    }
}
