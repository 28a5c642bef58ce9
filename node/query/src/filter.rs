//! Filters: conditions on paths, combined with AND, and the index ranges that answer them.
//!
//! # Semantics
//!
//! A [`Condition`] is `path op operand`. Operands are scalars (`null`, `true`/`false`,
//! numbers, strings); objects and arrays are refused, since no comparison with them is
//! defined. For one value `v` yielded by the path (see [`crate::path`]):
//!
//! | op | `v` satisfies it when |
//! |---|---|
//! | `= o` | `v` is equal to `o` in the typed order (so same type class: `1 = 1.0`, never `1 = "1"`) |
//! | `!= o` | `v` has `o`'s type class and is not equal to `o` |
//! | `< o`, `<= o`, `> o`, `>= o` | `v` has `o`'s type class and compares so in the typed order |
//! | `IN (o1, o2, …)` | `v` is equal to some `oi` (at least one operand) |
//! | `EXISTS` | always (any value, `null` included) |
//!
//! Comparisons never cross type classes: a number never matches a string, `!= 5` does not
//! match `"x"` or a missing field, and `< true` matches `false`. Booleans form one class
//! (`false < true`); `null` is a class with one value (`>= null` and `<= null` match `null`,
//! `< null`, `> null` and `!= null` match nothing).
//!
//! A condition matches a document (one sibling) when **some** value its path yields
//! satisfies it; so `tags[] = "x"` means "some tag is x" and `tags[] != "x"` means "some tag
//! is a string other than x" (not "no tag is x"). `EXISTS` matches when the path yields at
//! least one value.
//!
//! A [`Filter`] is the AND of its conditions (no conditions: everything matches). A
//! sibling matches the filter when it matches every condition (each condition may be met by
//! a different value at its path). A document with several live siblings matches when
//! **any one sibling** matches the whole filter; all conditions are judged on that same
//! sibling. Tombstones are never passed in: callers hand over live siblings only.
//!
//! # Index ranges
//!
//! An index on path `p` holds, for each live sibling of each document and each value `v`
//! that `p` yields there, the entry key `encode(v) ++ document key` (see [`crate::value`]).
//! [`Condition::ranges`] gives the half-open entry-key ranges a scan must read for a
//! condition on `p`: point (prefix) ranges for `=` and `IN`, ranges within the operand's type
//! bracket for `<`, `<=`, `>`, `>=`, the two ranges around the operand for `!=`, and
//! everything for `EXISTS`. They are **exact**: an entry lies in them exactly when its value
//! satisfies the condition. So a scan finds exactly the documents having a live sibling
//! that satisfies the condition, and for a filter with that single condition this is the
//! answer ([`Filter::answered_by_index`]). With several conditions the scanned documents
//! must be checked against the rest of the filter (per sibling). The coordinator re-checks
//! the merged document in every case, because replicas may be stale.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::path::Path;
use crate::value::{self, TypeClass};
use crate::wire::Fingerprint;

/// A comparison and its operand(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `=`
    Eq(Value),
    /// `!=`
    Ne(Value),
    /// `<`
    Lt(Value),
    /// `<=`
    Le(Value),
    /// `>`
    Gt(Value),
    /// `>=`
    Ge(Value),
    /// `IN (…)`
    In(Vec<Value>),
    /// `EXISTS`
    Exists,
}

impl Op {
    /// The operator as written in statements.
    pub fn symbol(&self) -> &'static str {
        match self {
            Op::Eq(_) => "=",
            Op::Ne(_) => "!=",
            Op::Lt(_) => "<",
            Op::Le(_) => "<=",
            Op::Gt(_) => ">",
            Op::Ge(_) => ">=",
            Op::In(_) => "IN",
            Op::Exists => "EXISTS",
        }
    }

    /// The operands, in the order written.
    pub fn operands(&self) -> &[Value] {
        match self {
            Op::Eq(o) | Op::Ne(o) | Op::Lt(o) | Op::Le(o) | Op::Gt(o) | Op::Ge(o) => {
                std::slice::from_ref(o)
            }
            Op::In(list) => list,
            Op::Exists => &[],
        }
    }
}

/// One condition: a path and what a value there must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    path: Path,
    op: Op,
}

/// A half-open range `[start, end)` of index entry keys; `end: None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRange {
    /// First entry key in the range.
    pub start: Vec<u8>,
    /// First entry key past the range; `None`: to the end of the index.
    pub end: Option<Vec<u8>>,
}

impl ScanRange {
    /// Whether `entry` lies in the range.
    pub fn contains(&self, entry: &[u8]) -> bool {
        entry >= self.start.as_slice() && self.end.as_ref().is_none_or(|e| entry < e.as_slice())
    }

    /// The part of the range strictly after entry key `entry` (a resume point), if any.
    pub fn after(&self, entry: &[u8]) -> Option<ScanRange> {
        // The immediate successor of `entry` in byte order.
        let mut next = entry.to_vec();
        next.push(0);
        let start = next.max(self.start.clone());
        let range = ScanRange {
            start,
            end: self.end.clone(),
        };
        (!range.is_empty()).then_some(range)
    }

    fn is_empty(&self) -> bool {
        self.end.as_ref().is_some_and(|e| *e <= self.start)
    }
}

impl Condition {
    /// A condition; fails for object/array operands and an empty `IN` list.
    pub fn new(path: Path, op: Op) -> Result<Condition> {
        if let Op::In(list) = &op {
            if list.is_empty() {
                return Err(Error::Invalid(format!(
                    "{path} IN (): the list needs at least one value"
                )));
            }
        }
        for o in op.operands() {
            if matches!(o, Value::Array(_) | Value::Object(_)) {
                return Err(Error::Invalid(format!(
                    "cannot compare {path} with {o}: an operand is a string, number, true, false or null, not an {}",
                    TypeClass::of(o).name()
                )));
            }
        }
        Ok(Condition { path, op })
    }

    /// The path the condition looks at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The comparison.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// Whether one value at the path satisfies the condition (see the module docs).
    pub fn satisfied_by(&self, v: &Value) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let against = |o: &Value| -> Option<std::cmp::Ordering> {
            (TypeClass::of(v) == TypeClass::of(o)).then(|| value::cmp(v, o))
        };
        match &self.op {
            Op::Exists => true,
            Op::In(list) => list.iter().any(|o| value::equal(v, o)),
            Op::Eq(o) => against(o) == Some(Equal),
            Op::Ne(o) => matches!(against(o), Some(Less | Greater)),
            Op::Lt(o) => against(o) == Some(Less),
            Op::Le(o) => matches!(against(o), Some(Less | Equal)),
            Op::Gt(o) => against(o) == Some(Greater),
            Op::Ge(o) => matches!(against(o), Some(Greater | Equal)),
        }
    }

    /// The values at the path in `doc` that satisfy the condition, in document order.
    pub fn satisfying<'a>(&'a self, doc: &'a Value) -> impl Iterator<Item = &'a Value> + 'a {
        self.path
            .values(doc)
            .into_iter()
            .filter(move |v| self.satisfied_by(v))
    }

    /// Whether some value at the path in `doc` (one sibling) satisfies the condition.
    pub fn matches(&self, doc: &Value) -> bool {
        self.satisfying(doc).next().is_some()
    }

    /// The exact entry-key ranges an index scan on this condition's path must read, sorted
    /// and disjoint (see the module docs).
    pub fn ranges(&self) -> Vec<ScanRange> {
        let class = |o: &Value| TypeClass::of(o).encoded_range();
        // First entry key past every entry of value `o` (never past its type bracket).
        let past = |o: &Value| value::prefix_end(&value::encode(o)).unwrap_or_else(|| class(o).1);
        let point = |o: &Value| ScanRange {
            start: value::encode(o),
            end: Some(past(o)),
        };
        let mut out = match &self.op {
            Op::Exists => vec![ScanRange {
                start: Vec::new(),
                end: None,
            }],
            Op::Eq(o) => vec![point(o)],
            Op::In(list) => {
                let mut points: Vec<ScanRange> = list.iter().map(point).collect();
                points.sort_by(|a, b| a.start.cmp(&b.start));
                points.dedup();
                points
            }
            Op::Ne(o) => vec![
                ScanRange {
                    start: class(o).0,
                    end: Some(value::encode(o)),
                },
                ScanRange {
                    start: past(o),
                    end: Some(class(o).1),
                },
            ],
            Op::Lt(o) => vec![ScanRange {
                start: class(o).0,
                end: Some(value::encode(o)),
            }],
            Op::Le(o) => vec![ScanRange {
                start: class(o).0,
                end: Some(past(o)),
            }],
            Op::Gt(o) => vec![ScanRange {
                start: past(o),
                end: Some(class(o).1),
            }],
            Op::Ge(o) => vec![ScanRange {
                start: value::encode(o),
                end: Some(class(o).1),
            }],
        };
        out.retain(|r| !r.is_empty());
        out
    }

    /// Feed the condition's meaning into a fingerprint: operands by their encoding, so
    /// `1` and `1.0` give the same, and `IN` lists as sorted sets.
    pub(crate) fn fingerprint(&self, fp: &mut Fingerprint) {
        fp.field(self.path.to_string().as_bytes())
            .field(self.op.symbol().as_bytes());
        let mut operands: Vec<Vec<u8>> = self.op.operands().iter().map(value::encode).collect();
        if matches!(self.op, Op::In(_)) {
            operands.sort();
            operands.dedup();
        }
        fp.field(&(operands.len() as u64).to_be_bytes());
        for o in &operands {
            fp.field(o);
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.op.symbol())?;
        match &self.op {
            Op::Exists => Ok(()),
            Op::In(list) => {
                let items: Vec<String> = list.iter().map(Value::to_string).collect();
                write!(f, " ({})", items.join(", "))
            }
            other => write!(f, " {}", other.operands()[0]),
        }
    }
}

/// The AND of conditions, in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    conditions: Vec<Condition>,
}

impl Filter {
    /// A filter of these conditions (none: everything matches).
    pub fn new(conditions: Vec<Condition>) -> Filter {
        Filter { conditions }
    }

    /// The conditions in the order written.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether one sibling matches every condition.
    pub fn matches_sibling(&self, doc: &Value) -> bool {
        self.conditions.iter().all(|c| c.matches(doc))
    }

    /// Whether a document matches: some live sibling matches every condition.
    pub fn matches(&self, siblings: &[Value]) -> bool {
        self.first_match(siblings).is_some()
    }

    /// The first live sibling that matches, in the order given.
    pub fn first_match<'a>(&self, siblings: &'a [Value]) -> Option<&'a Value> {
        siblings.iter().find(|s| self.matches_sibling(s))
    }

    /// The live siblings that match, in the order given.
    pub fn matching<'a>(&'a self, siblings: &'a [Value]) -> impl Iterator<Item = &'a Value> + 'a {
        siblings.iter().filter(move |s| self.matches_sibling(s))
    }

    /// Whether scanning an index on `index` with the first condition's ranges yields
    /// exactly the matching documents, with no check left (one condition, on that path).
    pub fn answered_by_index(&self, index: &Path) -> bool {
        matches!(self.conditions.as_slice(), [only] if only.path() == index)
    }

    /// The paths of conditions that have no index, in order, without repeats (a query with
    /// any needs `ALLOW FILTERING`; the refusal names them).
    pub fn unindexed_paths(&self, has_index: impl Fn(&Path) -> bool) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for c in &self.conditions {
            if !has_index(c.path()) && !out.contains(&c.path()) {
                out.push(c.path());
            }
        }
        out
    }

    pub(crate) fn fingerprint(&self, fp: &mut Fingerprint) {
        fp.field(&(self.conditions.len() as u64).to_be_bytes());
        for c in &self.conditions {
            c.fingerprint(fp);
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(" AND ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
