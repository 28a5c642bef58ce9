//! Where a query's candidates come from, decided in one place: whether a query may run,
//! its result order, and how a replica finds its candidates.
//!
//! - A condition on a path with a **ready** index (every live NORMAL node reports it ready,
//!   [`Readiness::Ready`]) is served by the index. The first such condition, in the order
//!   written, orders the results ([`Order::choose`]), and replicas scan that condition's
//!   index ranges instead of every document ([`Source::Index`]).
//! - A condition on any other path (no index, or one still building) needs `ALLOW
//!   FILTERING`; without it the query is refused with `INVALID_ARGUMENT` naming each such
//!   path and why (no index, or how far the slowest node's build has come). So a query never
//!   answers from an index that is missing documents: while an index builds, it is refused
//!   or, with `ALLOW FILTERING`, answered by a full scan.
//! - A query with no conditions is a plain scan in key order and needs no `ALLOW FILTERING`
//!   (like MongoDB's `find({})` and Cassandra's `SELECT` without `WHERE`).
//!
//! The coordinator's choice fixes the order; each replica then reads its own index when it
//! is ready locally and falls back to a full scan in the same order when it is not (a node
//! that restarted mid-build, or one the coordinator's view of gossip is ahead of), so the
//! answer never depends on a replica's index state.

use ringdb_query::{Filter, Order, Path};

use crate::cluster::indexes::Readiness;
use crate::error::{Error, Result};

/// How a replica finds a query's candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Every document of the collection in the asked token ranges, checked against the
    /// conditions (no conditions, or `ALLOW FILTERING` with no ready index).
    FullScan,
    /// The entries of the order condition's index in its ranges, each document re-checked
    /// against every condition.
    Index(Path),
}

impl Source {
    /// How a replica finds the candidates of a scan in `order`.
    pub fn for_scan(filter: &Filter, order: Order) -> Source {
        match order.condition(filter) {
            Some(c) => Source::Index(c.path().clone()),
            None => Source::FullScan,
        }
    }

    /// How traces and messages describe it.
    pub fn describe(&self, filter: &Filter) -> String {
        match self {
            Source::FullScan if filter.conditions().is_empty() => {
                "full scan of the collection (no conditions)".to_string()
            }
            Source::FullScan => "full scan, every document checked (ALLOW FILTERING)".to_string(),
            Source::Index(path) if filter.conditions().len() > 1 => {
                format!("index on {path}, other conditions checked on each candidate")
            }
            Source::Index(path) => format!("index on {path}"),
        }
    }
}

/// How a query runs: where candidates come from and the result order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Where candidates come from.
    pub source: Source,
    /// The result order (fixed for the query's pages).
    pub order: Order,
}

/// Plan a query of `statement` ("FIND", "COUNT", "AGGREGATE") on `collection`, given each
/// path's index readiness; refuses conditions on paths without a ready index unless
/// `ALLOW FILTERING` was given, naming them and why.
pub fn plan(
    statement: &str,
    collection: &str,
    filter: &Filter,
    allow_filtering: bool,
    readiness: impl Fn(&Path) -> Readiness,
) -> Result<Plan> {
    let (mut seen, mut ready, mut why_not): (Vec<&Path>, Vec<&Path>, Vec<String>) =
        Default::default();
    for c in filter.conditions() {
        let path = c.path();
        if seen.contains(&path) {
            continue;
        }
        seen.push(path);
        match readiness(path) {
            Readiness::Ready => ready.push(path),
            Readiness::Absent => why_not.push(format!("{path} (no index)")),
            Readiness::Building { node, state } => why_not.push(format!(
                "{path} (its index is still building; slowest node {node}: {state}; DESCRIBE INDEXES shows when it is ready)"
            )),
        }
    }
    if !why_not.is_empty() && !allow_filtering {
        let hint = if why_not.iter().any(|w| w.ends_with("(no index)")) {
            format!("CREATE INDEX ON {collection} (<path>) to serve it, or ")
        } else {
            String::new()
        };
        return Err(Error::InvalidArgument(format!(
            "{statement} on {collection} filters on {}, which no ready index serves: {hint}add ALLOW FILTERING to check every document of the collection (a full scan)",
            why_not.join(", "),
        )));
    }
    let order = Order::choose(filter, |p| ready.contains(&p));
    Ok(Plan {
        source: Source::for_scan(filter, order),
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::indexes::NodeIndex;
    use ringdb_query::statement::parse_conditions;

    fn with(
        ready: &'static [&'static str],
        building: &'static [&'static str],
    ) -> impl Fn(&Path) -> Readiness {
        move |p: &Path| {
            let name = p.to_string();
            if ready.contains(&name.as_str()) {
                Readiness::Ready
            } else if building.contains(&name.as_str()) {
                Readiness::Building {
                    node: "n2".into(),
                    state: NodeIndex::Building {
                        done: 40,
                        total: 100,
                    },
                }
            } else {
                Readiness::Absent
            }
        }
    }

    #[test]
    fn unindexed_conditions_need_allow_filtering_and_the_refusal_names_them() {
        let f = parse_conditions(r#"age > 3 AND "first name" = "x" AND age < 9"#).unwrap();
        let e = plan("FIND", "users", &f, false, with(&[], &[])).unwrap_err();
        let Error::InvalidArgument(m) = e else {
            panic!("INVALID_ARGUMENT")
        };
        assert!(
            m.contains(r#"age (no index), "first name" (no index)"#),
            "{m}"
        );
        assert!(
            m.contains("ALLOW FILTERING") && m.contains("CREATE INDEX ON users"),
            "{m}"
        );
        let p = plan("FIND", "users", &f, true, with(&[], &[])).unwrap();
        assert_eq!((p.source, p.order), (Source::FullScan, Order::Key));
        let none = plan("COUNT", "users", &Filter::default(), false, with(&[], &[])).unwrap();
        assert_eq!(
            none.order,
            Order::Key,
            "no conditions: a plain scan in key order"
        );
    }

    #[test]
    fn a_ready_index_orders_and_serves_and_a_building_one_is_refused_with_its_progress() {
        let f = parse_conditions(r#"name = "x" AND age > 3"#).unwrap();
        let p = plan("FIND", "users", &f, false, with(&["age"], &[])).unwrap_err();
        assert!(p.to_string().contains("name (no index)"), "{p}");
        let p = plan("FIND", "users", &f, true, with(&["age"], &[])).unwrap();
        assert_eq!(p.order, Order::Condition(1));
        assert_eq!(p.source, Source::Index(Path::parse("age").unwrap()));
        assert_eq!(
            p.source.describe(&f),
            "index on age, other conditions checked on each candidate"
        );
        let p = plan("FIND", "users", &f, false, with(&["age", "name"], &[])).unwrap();
        assert_eq!(p.order, Order::Condition(0), "the first indexed condition");
        // Still building: refused with the slowest node's progress, never a partial answer.
        let e = plan("COUNT", "users", &f, false, with(&["name"], &["age"])).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(
                "age (its index is still building; slowest node n2: 40 of about 100 keys indexed;"
            ),
            "{m}"
        );
        assert!(!m.contains("CREATE INDEX"), "the index exists: {m}");
        let p = plan("COUNT", "users", &f, true, with(&[], &["age"])).unwrap();
        assert_eq!(
            p.source,
            Source::FullScan,
            "ALLOW FILTERING while building: a full scan"
        );
    }
}
