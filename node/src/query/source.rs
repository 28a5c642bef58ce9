//! Where a query's candidates come from, decided in one place: whether a query may run,
//! its result order, and how a replica finds its candidates.
//!
//! Today every query reads every document of the collection in the ranges a replica is
//! asked for (a full scan) and checks it against the conditions. A condition on a path
//! without a ready index is therefore only allowed with `ALLOW FILTERING`; without it the
//! query is refused with `INVALID_ARGUMENT` naming the paths that need an index. A query
//! with no conditions is a plain scan in key order and needs no `ALLOW FILTERING` (like
//! MongoDB's `find({})` and Cassandra's `SELECT` without `WHERE`).
//!
//! When indexes exist, [`indexed`] answers from the collection's ready indexes, the order
//! becomes the first indexed condition ([`Order::choose`]), and [`Source::for_scan`] sends
//! replicas asked for that order to the index instead of the full scan.

use ringdb_query::{Filter, Order, Path};

use crate::error::{Error, Result};

/// How a replica finds a query's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Every document of the collection in the asked token ranges, checked against the
    /// conditions (no conditions, or `ALLOW FILTERING`).
    FullScan,
}

impl Source {
    /// How a replica finds the candidates of a scan in `order`.
    pub fn for_scan(_order: Order) -> Source {
        Source::FullScan
    }

    /// How traces and messages describe it.
    pub fn describe(self, filter: &Filter) -> &'static str {
        match self {
            Source::FullScan if filter.conditions().is_empty() => {
                "full scan of the collection (no conditions)"
            }
            Source::FullScan => "full scan, every document checked (ALLOW FILTERING)",
        }
    }
}

/// Whether `path` of `collection` has a ready index that queries use. None yet: storage keeps
/// indexes (`CREATE INDEX`), but the candidate source does not read them so far.
pub fn indexed(_collection: &str, _path: &Path) -> bool {
    false
}

/// How a query runs: where candidates come from and the result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Where candidates come from.
    pub source: Source,
    /// The result order (fixed for the query's pages).
    pub order: Order,
}

/// Plan a query of `statement` ("FIND", "COUNT", "AGGREGATE") on `collection`; refuses
/// conditions on unindexed paths without `ALLOW FILTERING`, naming them.
pub fn plan(
    statement: &str,
    collection: &str,
    filter: &Filter,
    allow_filtering: bool,
) -> Result<Plan> {
    let has_index = |p: &Path| indexed(collection, p);
    let missing = filter.unindexed_paths(has_index);
    if !missing.is_empty() && !allow_filtering {
        let names: Vec<String> = missing.iter().map(|p| p.to_string()).collect();
        return Err(Error::InvalidArgument(format!(
            "{statement} on {collection} filters on {} ({}), which no index serves (queries do not use secondary indexes yet, even where CREATE INDEX made one): add ALLOW FILTERING to check every document of the collection (a full scan)",
            if names.len() == 1 { "the path" } else { "the paths" },
            names.join(", "),
        )));
    }
    Ok(Plan {
        source: Source::for_scan(Order::choose(filter, has_index)),
        order: Order::choose(filter, has_index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdb_query::statement::parse_conditions;

    #[test]
    fn unindexed_conditions_need_allow_filtering_and_the_refusal_names_them() {
        let f = parse_conditions(r#"age > 3 AND "first name" = "x" AND age < 9"#).unwrap();
        let e = plan("FIND", "users", &f, false).unwrap_err();
        let Error::InvalidArgument(m) = e else {
            panic!("INVALID_ARGUMENT")
        };
        assert!(m.contains(r#"(age, "first name")"#), "{m}");
        assert!(
            m.contains("ALLOW FILTERING") && m.contains("no index serves"),
            "{m}"
        );
        let p = plan("FIND", "users", &f, true).unwrap();
        assert_eq!((p.source, p.order), (Source::FullScan, Order::Key));
        let none = plan("COUNT", "users", &Filter::default(), false).unwrap();
        assert_eq!(
            none.order,
            Order::Key,
            "no conditions: a plain scan in key order"
        );
    }
}
