//! The coordinator's paging rounds, simulated over stale replicas, against brute force.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::filter::tests::{arb_doc, arb_filter};
use crate::filter::{Condition, Op};
use crate::order::{position, position_after};

/// One replica: its (possibly stale) live siblings per key.
type Replica = BTreeMap<String, Vec<Value>>;

/// One page as a coordinator following the module docs computes it: rounds of limited
/// replica scans of `scan` documents each, cut at the horizon. Returns the keys and the
/// position to continue after.
fn coordinator_page(
    replicas: &[Replica],
    merged: &Replica,
    f: &Filter,
    order: Order,
    after: Option<&Position>,
    limit: usize,
    scan: usize,
) -> (Vec<String>, Option<Position>) {
    let want = limit + 1;
    let mut out: Vec<(Position, String)> = Vec::new();
    let mut resume = after.cloned();
    loop {
        let mut ends = Vec::new();
        let mut reported = BTreeSet::new();
        for r in replicas {
            let mut local: Vec<(Position, &String)> = r
                .iter()
                .filter_map(|(k, sibs)| {
                    position_after(f, order, k, sibs, resume.as_ref()).map(|p| (p, k))
                })
                .collect();
            local.sort();
            if local.len() > scan {
                local.truncate(scan);
                ends.push(ScanEnd::Stopped(local[scan - 1].0.clone()));
            } else {
                ends.push(ScanEnd::Exhausted);
            }
            reported.extend(local.into_iter().map(|(_, k)| k.clone()));
        }
        let h = horizon(&ends).cloned();
        let mut round: Vec<(Position, String)> = reported
            .into_iter()
            .filter_map(|k| {
                let q = position(f, order, &k, merged.get(&k)?)?;
                let fresh = resume.as_ref().is_none_or(|r| q > *r);
                let complete = h.as_ref().is_none_or(|h| q <= *h);
                (fresh && complete).then_some((q, k))
            })
            .collect();
        round.sort();
        out.extend(round);
        out.truncate(want);
        if out.len() == want || h.is_none() {
            break;
        }
        resume = h;
    }
    let next = (out.len() == want).then(|| out[limit - 1].0.clone());
    out.truncate(limit);
    (out.into_iter().map(|(_, k)| k).collect(), next)
}

/// Documents as merged, and replicas holding stale views of them: each replica holds some
/// of the merged siblings plus obsolete ones, and every merged sibling is on some replica
/// (that is where the merge got it from). An empty merged set is a deleted document.
fn arb_cluster<D: Strategy<Value = Value> + Clone>(
    doc: D,
) -> impl Strategy<Value = (Replica, Vec<Replica>)> {
    let doc = (
        proptest::collection::vec(doc.clone(), 0..3),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<bool>(), 3),
                proptest::collection::vec(doc, 0..2),
            ),
            3,
        ),
    );
    proptest::collection::vec(doc, 0..10).prop_map(|docs| {
        let mut merged = Replica::new();
        let mut replicas = vec![Replica::new(), Replica::new(), Replica::new()];
        for (i, (truth, views)) in docs.into_iter().enumerate() {
            let key = format!("k{i}");
            let mut held = vec![false; truth.len()];
            for (r, (keep, stale)) in views.into_iter().enumerate() {
                let mut sibs: Vec<Value> = truth
                    .iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(s, _)| s.clone())
                    .collect();
                for (h, k) in held.iter_mut().zip(&keep) {
                    *h |= *k;
                }
                sibs.extend(stale);
                replicas[r].insert(key.clone(), sibs);
            }
            for (s, h) in truth.iter().zip(&held) {
                if !h {
                    replicas[0].get_mut(&key).unwrap().push(s.clone());
                }
            }
            merged.insert(key, truth);
        }
        (merged, replicas)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Paging through a coordinator that merges limited scans of stale replicas returns
    /// exactly the brute-force answer over the merged documents, in order, each once.
    #[test]
    fn rounds_over_stale_replicas_page_like_brute_force(
        (merged, replicas) in arb_cluster(arb_doc().boxed()),
        f in arb_filter(),
        ordered in any::<bool>(),
        limit in 1usize..4,
        scan in 1usize..4,
    ) {
        let order = if ordered && !f.conditions().is_empty() { Order::Condition(0) } else { Order::Key };
        check_paging(&merged, &replicas, &f, order, limit, scan)?;
    }

    /// The same, aimed at the hard case: documents with several values at the order path,
    /// whose stale siblings hold smaller ones.
    #[test]
    fn rounds_over_stale_multi_valued_documents(
        (merged, replicas) in arb_cluster(
            (proptest::collection::vec(0i64..12, 0..4), any::<bool>())
                .prop_map(|(a, b)| serde_json::json!({"a": a, "b": b}))
                .boxed(),
        ),
        op in prop_oneof![
            (0i64..8).prop_map(|n| Op::Gt(Value::from(n))),
            (0i64..8).prop_map(|n| Op::Ne(Value::from(n))),
            Just(Op::Exists),
        ],
        second in any::<bool>(),
        limit in 1usize..3,
        scan in 1usize..3,
    ) {
        let mut conditions = vec![Condition::new(Path::parse("a[]").unwrap(), op).unwrap()];
        if second {
            conditions.push(Condition::new(Path::parse("b").unwrap(), Op::Eq(Value::Bool(true))).unwrap());
        }
        check_paging(&merged, &replicas, &Filter::new(conditions), Order::Condition(0), limit, scan)?;
    }
}

fn check_paging(
    merged: &Replica,
    replicas: &[Replica],
    f: &Filter,
    order: Order,
    limit: usize,
    scan: usize,
) -> Result<(), TestCaseError> {
    {
        let f = f.clone();
        let mut expected: Vec<(Position, String)> = merged
            .iter()
            .filter_map(|(k, sibs)| position(&f, order, k, sibs).map(|p| (p, k.clone())))
            .collect();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, k)| k).collect();

        let mut got = Vec::new();
        let mut after: Option<Position> = None;
        for _ in 0..=merged.len() {
            let (keys, next) =
                coordinator_page(replicas, merged, &f, order, after.as_ref(), limit, scan);
            got.extend(keys);
            match next {
                Some(p) => after = Some(p),
                None => break,
            }
        }
        prop_assert_eq!(got, expected);
    }
    Ok(())
}
