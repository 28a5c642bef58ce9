//! Aggregations: `count(*)`, `count(path)`, `sum(path)`, `avg(path)`, `min(path)`,
//! `max(path)`, optionally `GROUP BY path`, computed as mergeable partial states (map where
//! the data is, reduce at the coordinator).
//!
//! # Which documents, which sibling
//!
//! The documents aggregated are exactly those the same FIND returns. A document with
//! several live siblings is aggregated **once**, using its first sibling (in the order the
//! document's values are returned) that matches the filter ([`Partial::add_document`]). So
//! a client aggregating FIND's output with [`aggregate_documents`] gets the same answer as the
//! cluster.
//!
//! # Groups
//!
//! Without `GROUP BY` there is exactly one group, `null`, even over no documents. With
//! `GROUP BY p`, a document belongs to the group of each distinct value (typed-order
//! equality) that `p` yields in its chosen sibling; so with `tags[]` a document counts once
//! in the group of each of its tags. A document where `p` yields nothing belongs to the
//! `null` group, like one where it yields `null`. Groups come out sorted by the typed order
//! of their values, each value in canonical form (see [`crate::value::canonical`]: `2.0`
//! groups with `2` and is shown as `2`). Over no documents, `GROUP BY` gives no groups.
//!
//! # Functions
//!
//! For each group, over its documents (each with its chosen sibling); "values" are those
//! the argument path yields there (each element for a path with `[]`, see [`crate::path`]):
//!
//! | function | result |
//! |---|---|
//! | `count(*)` | the number of documents |
//! | `count(p)` | the number of documents where `p` yields at least one non-null value |
//! | `sum(p)` | the sum of every number among the values; other types are ignored; `0` when there are none |
//! | `avg(p)` | that sum divided by how many numbers there were, as a float; `null` when none |
//! | `min(p)`, `max(p)` | the smallest / largest non-null value in the typed order (any type: `false` < numbers < strings < arrays < objects), in canonical form; `null` when none |
//!
//! Sums and means are exact until one final rounding (the crate's `exact` module: a sum of
//! integers only stays an integer while it fits u64/i64; any float makes it a float; a sum
//! beyond the f64 range is `null`), so the result does not depend on how documents were split
//! between replicas or in which order partial states were merged.
//!
//! # Output
//!
//! [`Partial::finish`] gives the AGGREGATE statement's JSON output,
//! `{"groups": [{"group": value or null, "values": {"count(*)": n, "avg(age)": x, …}}, …]}`,
//! each value keyed by the aggregation's canonical name (function in lower case, path in
//! canonical form: `sum(price)`, `count("first name")`). Asking for the same aggregation
//! twice is refused.
//!
//! # Partial states
//!
//! [`Partial::to_bytes`] / [`Partial::from_bytes`] ship states between nodes; decoding checks
//! that the bytes were made for the same aggregation spec and are well formed, and fails
//! (never panics) otherwise.

mod partial;
mod wire;

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::path::Path;
use crate::wire::Fingerprint;

pub use partial::Partial;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `count`
    Count,
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
}

impl Func {
    /// The function named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => Func::Count,
            "sum" => Func::Sum,
            "avg" => Func::Avg,
            "min" => Func::Min,
            "max" => Func::Max,
            _ => return None,
        })
    }

    /// The canonical (lower-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Count => "count",
            Func::Sum => "sum",
            Func::Avg => "avg",
            Func::Min => "min",
            Func::Max => "max",
        }
    }
}

/// What a function aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Arg {
    /// `*`: the documents themselves (only for `count`).
    Star,
    /// The values at a path.
    Path(Path),
}

/// One aggregation, e.g. `avg(age)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aggregation {
    func: Func,
    arg: Arg,
}

impl Aggregation {
    /// An aggregation; only `count` takes `*`.
    pub fn new(func: Func, arg: Arg) -> Result<Aggregation> {
        if arg == Arg::Star && func != Func::Count {
            return Err(Error::Invalid(format!(
                "{}(*) is not an aggregation: only count takes *; {} needs a path",
                func.name(),
                func.name()
            )));
        }
        Ok(Aggregation { func, arg })
    }

    /// The function.
    pub fn func(&self) -> Func {
        self.func
    }

    /// The argument.
    pub fn arg(&self) -> &Arg {
        &self.arg
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Arg::Star => write!(f, "{}(*)", self.func.name()),
            Arg::Path(p) => write!(f, "{}({p})", self.func.name()),
        }
    }
}

/// The aggregations of one statement and its grouping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateSpec {
    aggregations: Vec<Aggregation>,
    group_by: Option<Path>,
}

impl AggregateSpec {
    /// A spec of at least one aggregation, each asked for once.
    pub fn new(aggregations: Vec<Aggregation>, group_by: Option<Path>) -> Result<AggregateSpec> {
        if aggregations.is_empty() {
            return Err(Error::Invalid(
                "AGGREGATE needs at least one aggregation".into(),
            ));
        }
        for (i, a) in aggregations.iter().enumerate() {
            if aggregations[..i].contains(a) {
                return Err(Error::Invalid(format!("{a} is asked for twice")));
            }
        }
        Ok(AggregateSpec {
            aggregations,
            group_by,
        })
    }

    /// `count(*)` alone, ungrouped: what the COUNT statement computes.
    pub fn count_all() -> AggregateSpec {
        AggregateSpec {
            aggregations: vec![Aggregation {
                func: Func::Count,
                arg: Arg::Star,
            }],
            group_by: None,
        }
    }

    /// The aggregations, in the order written.
    pub fn aggregations(&self) -> &[Aggregation] {
        &self.aggregations
    }

    /// The `GROUP BY` path, if any.
    pub fn group_by(&self) -> Option<&Path> {
        self.group_by.as_ref()
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        let mut fp = Fingerprint::new();
        fp.field(b"aggregate");
        for a in &self.aggregations {
            fp.field(a.to_string().as_bytes());
        }
        match &self.group_by {
            None => fp.field(b""),
            Some(p) => fp.field(b"group by").field(p.to_string().as_bytes()),
        };
        fp.value()
    }
}

/// Aggregate documents as FIND returned them (each a list of live siblings), exactly as the
/// cluster does: the client-side reference.
pub fn aggregate_documents(docs: &[Vec<Value>], filter: &Filter, spec: &AggregateSpec) -> Value {
    let mut p = Partial::new(spec.clone());
    for siblings in docs {
        p.add_document(siblings, filter);
    }
    p.finish()
}

#[cfg(test)]
mod tests;
