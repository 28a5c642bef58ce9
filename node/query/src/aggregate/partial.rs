//! Partial aggregation states: add documents, merge states, finish into output JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::{AggregateSpec, Aggregation, Arg, Func};
use crate::error::{Error, Result};
use crate::exact::ExactSum;
use crate::filter::Filter;
use crate::value;

/// The state of one aggregation within one group.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Acc {
    /// `count(*)` or `count(path)`.
    Count(u64),
    /// `sum(path)`.
    Sum(ExactSum),
    /// `avg(path)`: the sum and how many numbers.
    Avg(ExactSum, u64),
    /// `min(path)`: the smallest encoded value so far.
    Min(Option<Vec<u8>>),
    /// `max(path)`: the largest encoded value so far.
    Max(Option<Vec<u8>>),
}

impl Acc {
    pub(super) fn new(a: &Aggregation) -> Acc {
        match a.func {
            Func::Count => Acc::Count(0),
            Func::Sum => Acc::Sum(ExactSum::default()),
            Func::Avg => Acc::Avg(ExactSum::default(), 0),
            Func::Min => Acc::Min(None),
            Func::Max => Acc::Max(None),
        }
    }

    fn add(&mut self, a: &Aggregation, doc: &Value) {
        let values = match &a.arg {
            Arg::Star => {
                if let Acc::Count(n) = self {
                    *n = n.saturating_add(1);
                }
                return;
            }
            Arg::Path(p) => p.values(doc),
        };
        let non_null = values.iter().filter(|v| !v.is_null());
        match self {
            Acc::Count(n) => {
                if non_null.clone().next().is_some() {
                    *n = n.saturating_add(1);
                }
            }
            Acc::Sum(s) => values
                .iter()
                .filter_map(|v| v.as_number())
                .for_each(|x| s.add(x)),
            Acc::Avg(s, n) => {
                for x in values.iter().filter_map(|v| v.as_number()) {
                    s.add(x);
                    *n = n.saturating_add(1);
                }
            }
            Acc::Min(best) => {
                for v in non_null {
                    keep(best, value::encode(v), |new, old| new < old);
                }
            }
            Acc::Max(best) => {
                for v in non_null {
                    keep(best, value::encode(v), |new, old| new > old);
                }
            }
        }
    }

    /// Merge another state of the same aggregation; false if the kinds differ.
    fn merge(&mut self, other: &Acc) -> bool {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a = a.saturating_add(*b),
            (Acc::Sum(a), Acc::Sum(b)) => a.merge(b),
            (Acc::Avg(a, n), Acc::Avg(b, m)) => {
                a.merge(b);
                *n = n.saturating_add(*m);
            }
            (Acc::Min(a), Acc::Min(b)) => {
                if let Some(b) = b {
                    keep(a, b.clone(), |new, old| new < old);
                }
            }
            (Acc::Max(a), Acc::Max(b)) => {
                if let Some(b) = b {
                    keep(a, b.clone(), |new, old| new > old);
                }
            }
            _ => return false,
        }
        true
    }

    fn finish(&self) -> Value {
        match self {
            Acc::Count(n) => Value::from(*n),
            Acc::Sum(s) => s.sum().unwrap_or(Value::Null),
            Acc::Avg(s, n) => s
                .mean(*n)
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Acc::Min(best) | Acc::Max(best) => best
                .as_ref()
                .and_then(|b| value::decode(b).ok())
                .unwrap_or(Value::Null),
        }
    }
}

/// Replace `best` with `candidate` when there is none yet or `better(candidate, best)`.
fn keep(best: &mut Option<Vec<u8>>, candidate: Vec<u8>, better: impl Fn(&[u8], &[u8]) -> bool) {
    if best.as_ref().is_none_or(|b| better(&candidate, b)) {
        *best = Some(candidate);
    }
}

/// A mergeable partial aggregation over some documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub(super) spec: AggregateSpec,
    /// Encoded group value → one state per aggregation, in the spec's order.
    pub(super) groups: BTreeMap<Vec<u8>, Vec<Acc>>,
}

impl Partial {
    /// An empty partial state for `spec`.
    pub fn new(spec: AggregateSpec) -> Partial {
        Partial {
            spec,
            groups: BTreeMap::new(),
        }
    }

    /// The spec this state aggregates.
    pub fn spec(&self) -> &AggregateSpec {
        &self.spec
    }

    /// Add one document, given as the sibling chosen for it (see the module docs).
    pub fn add(&mut self, doc: &Value) {
        let null = || vec![value::encode(&Value::Null)];
        let mut keys = match &self.spec.group_by {
            None => null(),
            Some(p) => p.values(doc).into_iter().map(value::encode).collect(),
        };
        if keys.is_empty() {
            keys = null();
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            let spec = &self.spec;
            let accs = self
                .groups
                .entry(key)
                .or_insert_with(|| spec.aggregations.iter().map(Acc::new).collect());
            for (acc, a) in accs.iter_mut().zip(&spec.aggregations) {
                acc.add(a, doc);
            }
        }
    }

    /// Add a document given as its live siblings: its first sibling matching `filter`, if
    /// any; returns whether it was added.
    pub fn add_document(&mut self, siblings: &[Value], filter: &Filter) -> bool {
        match filter.first_match(siblings) {
            Some(s) => {
                self.add(s);
                true
            }
            None => false,
        }
    }

    /// Merge another partial state (over other documents) for the same spec into this one.
    pub fn merge(&mut self, other: &Partial) -> Result<()> {
        if self.spec != other.spec {
            return Err(Error::Invalid(
                "cannot merge partial aggregations of different specs".into(),
            ));
        }
        for (key, theirs) in &other.groups {
            let spec = &self.spec;
            let mine = self
                .groups
                .entry(key.clone())
                .or_insert_with(|| spec.aggregations.iter().map(Acc::new).collect());
            for (m, t) in mine.iter_mut().zip(theirs) {
                if !m.merge(t) {
                    return Err(Error::Invalid(
                        "partial aggregation states do not fit their spec".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The AGGREGATE output (see the module docs).
    pub fn finish(&self) -> Value {
        let mut groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(key, accs)| self.group_json(value::decode(key).unwrap_or(Value::Null), accs))
            .collect();
        if groups.is_empty() && self.spec.group_by.is_none() {
            let fresh: Vec<Acc> = self.spec.aggregations.iter().map(Acc::new).collect();
            groups.push(self.group_json(Value::Null, &fresh));
        }
        let mut out = Map::new();
        out.insert("groups".into(), Value::Array(groups));
        Value::Object(out)
    }

    /// The COUNT output `{"count": n}`, for a partial of [`AggregateSpec::count_all`].
    pub fn finish_count(&self) -> Result<Value> {
        if self.spec != AggregateSpec::count_all() {
            return Err(Error::Invalid(
                "COUNT output needs the count(*) spec".into(),
            ));
        }
        let n = match self.groups.values().next().and_then(|accs| accs.first()) {
            Some(Acc::Count(n)) => *n,
            _ => 0,
        };
        let mut out = Map::new();
        out.insert("count".into(), Value::from(n));
        Ok(Value::Object(out))
    }

    fn group_json(&self, group: Value, accs: &[Acc]) -> Value {
        let mut values = Map::new();
        for (a, acc) in self.spec.aggregations.iter().zip(accs) {
            values.insert(a.to_string(), acc.finish());
        }
        let mut g = Map::new();
        g.insert("group".into(), group);
        g.insert("values".into(), Value::Object(values));
        Value::Object(g)
    }
}
