//! The fixed order of query results.
//!
//! # Which order
//!
//! The planner picks the **order condition**: the first condition, in the order written,
//! whose path has a (ready) index ([`Order::choose`]). Results are ordered by the
//! document's **sort value** for that condition, then by document key (UTF-8 bytes). With no
//! such condition (no WHERE, or only unindexed paths under `ALLOW FILTERING`) results are
//! ordered by key alone.
//!
//! # Sort value
//!
//! Among the live siblings that match the whole filter, take every value at the order
//! condition's path that satisfies the order condition; the sort value is the smallest of
//! them in the typed order (see [`crate::value`]). A matching document always has one,
//! since its matching sibling satisfies the order condition. So a document matching
//! through several array elements or siblings appears once, at its smallest satisfying
//! value. Only the order condition is looked at: in `tags[] > "b" AND tags[] < "m"` the
//! sort value is the smallest tag above `"b"`, whether or not it is below `"m"`.
//!
//! # Positions
//!
//! A [`Position`] is `(encoded sort value, key)` (no value when ordering by key), compared
//! bytewise: exactly the order of index entry keys `encode(value) ++ key`, so a scan of the
//! order condition's index meets documents in result order. Positions of distinct documents
//! differ (keys are unique), so "strictly after a position" continues a page without
//! repeats or gaps.
//!
//! # What replicas report
//!
//! A replica's copy of a document may be stale: it may miss siblings of the merged document
//! and hold siblings the merged document no longer has. So a replica does not report a
//! document at its local sort position but at [`position_after`] the resume point: the
//! smallest `(value, key)` after it, over the values that satisfy the order condition in
//! the local siblings that match the filter. A replica scanning the order condition's index
//! from the resume point meets every document at that entry first among its valid entries
//! (it skips entries of siblings that do not match, or values at or before the resume
//! point). This keeps the coordinator complete: if the merged document's position `q` is
//! after the resume point, the replica holding the sibling that gives `q` reports the
//! document at a position no later than `q` (the same sibling content matches the same
//! filter everywhere). The coordinator then orders documents by their merged position
//! ([`position`] on the merged siblings); see [`crate::page`] for the cut.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::{Condition, Filter};
use crate::path::Path;
use crate::value;

/// What orders a query's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// By document key alone.
    Key,
    /// By the sort value of the filter's condition at this index (in written order), then key.
    Condition(usize),
}

impl Order {
    /// The first condition whose path has an index, else key order.
    pub fn choose(filter: &Filter, has_index: impl Fn(&Path) -> bool) -> Order {
        filter
            .conditions()
            .iter()
            .position(|c| has_index(c.path()))
            .map_or(Order::Key, Order::Condition)
    }

    /// The order condition, if any (and if it is in the filter).
    pub fn condition<'a>(&self, filter: &'a Filter) -> Option<&'a Condition> {
        match self {
            Order::Key => None,
            Order::Condition(i) => filter.conditions().get(*i),
        }
    }

    /// How the order reads in messages: `key`, or the order condition.
    pub fn describe(&self, filter: &Filter) -> String {
        match self.condition(filter) {
            None => "key".to_string(),
            Some(c) => format!("{} (the first condition with an index), then key", c.path()),
        }
    }
}

/// Where a document sits in a query's result order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    value: Option<Vec<u8>>,
    key: String,
}

impl Position {
    /// The position of `key` with this sort value (`None` when ordering by key).
    pub fn new(value: Option<&Value>, key: impl Into<String>) -> Position {
        Position {
            value: value.map(value::encode),
            key: key.into(),
        }
    }

    /// A position from an encoded sort value (validated) and a key.
    pub fn from_encoded(value: Option<Vec<u8>>, key: impl Into<String>) -> Result<Position> {
        if let Some(v) = &value {
            value::decode(v)?;
        }
        Ok(Position {
            value,
            key: key.into(),
        })
    }

    /// The document key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The encoded sort value, if the order has one.
    pub fn encoded_value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The sort value (canonical form), if the order has one.
    pub fn value(&self) -> Option<Value> {
        // Always valid: built by `encode` or validated by `from_encoded`.
        self.value.as_ref().and_then(|v| value::decode(v).ok())
    }

    /// The index entry key `encode(sort value) ++ key` at which a scan of the order
    /// condition's index meets this document first; `None` when ordering by key.
    pub fn entry_key(&self) -> Option<Vec<u8>> {
        self.value.as_ref().map(|v| {
            let mut e = v.clone();
            e.extend_from_slice(self.key.as_bytes());
            e
        })
    }
}

/// The sort value of a document for `order` (see the module docs): `None` when ordering by
/// key or when no live sibling matches the filter.
pub fn sort_value<'a>(
    filter: &'a Filter,
    order: Order,
    siblings: &'a [Value],
) -> Option<&'a Value> {
    let condition = order.condition(filter)?;
    filter
        .matching(siblings)
        .flat_map(|s| condition.satisfying(s))
        .min_by(|a, b| value::cmp(a, b))
}

/// The position of a document in the results of (`filter`, `order`); `None` when it does
/// not match (no live sibling matches the filter).
pub fn position(filter: &Filter, order: Order, key: &str, siblings: &[Value]) -> Option<Position> {
    position_after(filter, order, key, siblings, None)
}

/// The smallest position of a document strictly after `after` (a resume point; `None`:
/// anywhere): over every value satisfying the order condition in a live sibling matching the
/// filter (key order: the key). `None` when there is none. What a replica reports (see the
/// module docs); with `after = None` it is [`position`].
pub fn position_after(
    filter: &Filter,
    order: Order,
    key: &str,
    siblings: &[Value],
    after: Option<&Position>,
) -> Option<Position> {
    let is_after = |p: &Position| after.is_none_or(|a| p > a);
    match order {
        Order::Key => {
            let p = Position::new(None, key);
            (filter.matches(siblings) && is_after(&p)).then_some(p)
        }
        Order::Condition(_) => {
            let condition = order.condition(filter)?;
            filter
                .matching(siblings)
                .flat_map(|s| condition.satisfying(s))
                .map(|v| Position::new(Some(v), key))
                .filter(is_after)
                .min()
        }
    }
}

/// Check that a position fits an order: a sort value exactly when the order has one.
pub(crate) fn check_fits(position: &Position, order: Order, filter: &Filter) -> Result<()> {
    let wants_value = match order {
        Order::Key => false,
        Order::Condition(i) => {
            if i >= filter.conditions().len() {
                return Err(Error::Invalid(format!(
                    "order condition {i} is not in a filter of {} conditions",
                    filter.conditions().len()
                )));
            }
            true
        }
    };
    if position.value.is_some() != wants_value {
        return Err(Error::Invalid(
            "position does not fit the query's order".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::{arb_doc, arb_filter};
    use crate::filter::Op;
    use proptest::prelude::*;
    use serde_json::json;

    fn path(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    fn cond(p: &str, op: Op) -> Condition {
        Condition::new(path(p), op).unwrap()
    }

    #[test]
    fn the_first_indexed_condition_orders() {
        let f = Filter::new(vec![
            cond("a", Op::Exists),
            cond("b", Op::Gt(json!(1))),
            cond("c", Op::Exists),
        ]);
        let indexed = |names: &'static [&'static str]| {
            move |p: &Path| names.contains(&p.to_string().as_str())
        };
        assert_eq!(Order::choose(&f, indexed(&["c", "b"])), Order::Condition(1));
        assert_eq!(Order::choose(&f, indexed(&[])), Order::Key);
        assert_eq!(
            Order::choose(&Filter::default(), indexed(&["a"])),
            Order::Key
        );
        assert_eq!(
            Order::Condition(1).describe(&f),
            "b (the first condition with an index), then key"
        );
        assert_eq!(Order::Key.describe(&f), "key");
    }

    #[test]
    fn sort_value_is_the_smallest_satisfying_value_of_matching_siblings() {
        let f = Filter::new(vec![
            cond("t[]", Op::Gt(json!(2))),
            cond("ok", Op::Eq(json!(true))),
        ]);
        let order = Order::Condition(0);
        let siblings = [
            json!({"t": [3], "ok": false}),
            json!({"t": [9, 1, "x", 5.5], "ok": true}),
            json!({"t": [7], "ok": true}),
        ];
        // Sibling 0 does not match the filter; 1 and 9 of sibling 1 do not satisfy `> 2`.
        assert_eq!(sort_value(&f, order, &siblings), Some(&json!(5.5)));
        let p = position(&f, order, "k", &siblings).unwrap();
        assert_eq!((p.value(), p.key()), (Some(json!(5.5)), "k"));
        let mut entry = value::encode(&json!(5.5));
        entry.extend_from_slice(b"k");
        assert_eq!(p.entry_key(), Some(entry));
        assert_eq!(position(&f, order, "k", &siblings[..1]), None);
        assert_eq!(
            position(&f, Order::Key, "k", &siblings).unwrap().value(),
            None
        );
    }

    #[test]
    fn replicas_report_the_first_position_after_the_resume_point() {
        let f = Filter::new(vec![cond("t[]", Op::Gt(json!(0)))]);
        let order = Order::Condition(0);
        let siblings = [json!({"t": [5, 1]}), json!({"t": [3, "x"]})];
        let at = |v: Value, k: &str| Position::new(Some(&v), k);
        assert_eq!(
            position_after(&f, order, "k", &siblings, None),
            Some(at(json!(1), "k"))
        );
        let after = |v: Value, k: &str| position_after(&f, order, "k", &siblings, Some(&at(v, k)));
        assert_eq!(after(json!(1), "k"), Some(at(json!(3), "k")));
        assert_eq!(after(json!(1), "z"), Some(at(json!(3), "k")));
        assert_eq!(
            after(json!(3), "a"),
            Some(at(json!(3), "k")),
            "same value, later key"
        );
        assert_eq!(after(json!(5), "k"), None);
        let by_key = |a: &str| {
            position_after(
                &f,
                Order::Key,
                "k",
                &siblings,
                Some(&Position::new(None, a)),
            )
        };
        assert_eq!(by_key("j"), Some(Position::new(None, "k")));
        assert_eq!(by_key("k"), None);
    }

    #[test]
    fn positions_order_by_value_then_key() {
        let a = Position::new(Some(&json!(2)), "z");
        let b = Position::new(Some(&json!(2.0)), "zz");
        let c = Position::new(Some(&json!(10)), "a");
        assert!(a < b && b < c);
        assert!(Position::new(None, "a") < Position::new(None, "b"));
        assert!(Position::from_encoded(Some(vec![0x42]), "k").is_err());
        assert!(check_fits(&a, Order::Key, &Filter::default()).is_err());
        assert!(check_fits(&a, Order::Condition(0), &Filter::default()).is_err());
    }

    proptest! {
        #[test]
        fn positions_sort_like_their_index_entries(
            f in arb_filter(),
            docs in proptest::collection::vec(proptest::collection::vec(arb_doc(), 1..3), 1..6),
        ) {
            prop_assume!(!f.conditions().is_empty());
            let order = Order::Condition(0);
            let c = &f.conditions()[0];
            let mut positions = Vec::new();
            for (i, siblings) in docs.iter().enumerate() {
                let key = format!("k{i}");
                let Some(p) = position(&f, order, &key, siblings) else { continue };
                // The document's first satisfying index entry (over matching siblings) is at
                // its position.
                let first = siblings.iter().filter(|s| f.matches_sibling(s))
                    .flat_map(|s| c.path().values(s))
                    .map(|v| { let mut e = value::encode(v); e.extend_from_slice(key.as_bytes()); e })
                    .filter(|e| c.ranges().iter().any(|r| r.contains(e)))
                    .min();
                prop_assert_eq!(p.entry_key(), first);
                positions.push(p);
            }
            let mut by_position = positions.clone();
            by_position.sort();
            let mut by_entry = positions;
            by_entry.sort_by_key(|p| p.entry_key());
            prop_assert_eq!(by_position, by_entry);
        }
    }
}
