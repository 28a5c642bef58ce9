use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::filter::tests::{arb_doc, arb_filter, PATHS};
use crate::filter::{Condition, Op};

fn path(s: &str) -> Path {
    Path::parse(s).unwrap()
}

fn agg(func: Func, arg: &str) -> Aggregation {
    let arg = if arg == "*" {
        Arg::Star
    } else {
        Arg::Path(path(arg))
    };
    Aggregation::new(func, arg).unwrap()
}

fn spec(aggs: Vec<Aggregation>, group_by: Option<&str>) -> AggregateSpec {
    AggregateSpec::new(aggs, group_by.map(path)).unwrap()
}

fn run(docs: &[Value], spec: &AggregateSpec) -> Value {
    let docs: Vec<Vec<Value>> = docs.iter().map(|d| vec![d.clone()]).collect();
    aggregate_documents(&docs, &Filter::default(), spec)
}

#[test]
fn functions_follow_the_documented_rules() {
    let docs = [
        json!({"age": 30, "price": 1.5, "tags": ["a", "b"]}),
        json!({"age": null, "price": "free", "tags": []}),
        json!({"age": 20.0, "tags": ["b", 7, null]}),
        json!({"name": "no age"}),
    ];
    let s = spec(
        vec![
            agg(Func::Count, "*"),
            agg(Func::Count, "age"),
            agg(Func::Count, "tags[]"),
            agg(Func::Sum, "age"),
            agg(Func::Sum, "price"),
            agg(Func::Sum, "missing"),
            agg(Func::Avg, "age"),
            agg(Func::Avg, "missing"),
            agg(Func::Min, "tags[]"),
            agg(Func::Max, "tags[]"),
            agg(Func::Min, "age"),
            agg(Func::Max, "missing"),
        ],
        None,
    );
    assert_eq!(
        run(&docs, &s),
        json!({"groups": [{"group": null, "values": {
            "count(*)": 4,
            "count(age)": 2,
            "count(tags[])": 2,
            "sum(age)": 50.0,
            "sum(price)": 1.5,
            "sum(missing)": 0,
            "avg(age)": 25.0,
            "avg(missing)": null,
            "min(tags[])": 7,
            "max(tags[])": "b",
            "min(age)": 20,
            "max(missing)": null,
        }}]})
    );
    // Integers only: an exact integer sum; the mean is a float.
    let s = spec(vec![agg(Func::Sum, "n"), agg(Func::Avg, "n")], None);
    let out = run(&[json!({"n": 1}), json!({"n": 2})], &s);
    assert_eq!(
        out["groups"][0]["values"],
        json!({"sum(n)": 3, "avg(n)": 1.5})
    );
    assert!(out["groups"][0]["values"]["sum(n)"].is_u64());
}

#[test]
fn min_and_max_use_the_typed_order_across_types() {
    let s = spec(vec![agg(Func::Min, "v"), agg(Func::Max, "v")], None);
    let docs = [
        json!({"v": "x"}),
        json!({"v": false}),
        json!({"v": [1]}),
        json!({"v": {"a": 1}}),
        json!({"v": 3}),
    ];
    assert_eq!(
        run(&docs, &s)["groups"][0]["values"],
        json!({"min(v)": false, "max(v)": {"a": 1}})
    );
}

#[test]
fn groups_hold_each_distinct_value_and_missing_goes_to_null() {
    let s = spec(
        vec![agg(Func::Count, "*"), agg(Func::Sum, "n")],
        Some("tags[]"),
    );
    let docs = [
        json!({"tags": ["x", "y", "x"], "n": 1}),
        json!({"tags": ["y", 2.0], "n": 10}),
        json!({"tags": [2], "n": 100}),
        json!({"n": 1000}),
        json!({"tags": [null], "n": 10000}),
    ];
    assert_eq!(
        run(&docs, &s),
        json!({"groups": [
            {"group": null, "values": {"count(*)": 2, "sum(n)": 11000}},
            {"group": 2, "values": {"count(*)": 2, "sum(n)": 110}},
            {"group": "x", "values": {"count(*)": 1, "sum(n)": 1}},
            {"group": "y", "values": {"count(*)": 2, "sum(n)": 11}},
        ]})
    );
    assert_eq!(run(&[], &s), json!({"groups": []}), "GROUP BY over nothing");
    let ungrouped = spec(vec![agg(Func::Count, "*"), agg(Func::Min, "n")], None);
    assert_eq!(
        run(&[], &ungrouped),
        json!({"groups": [{"group": null, "values": {"count(*)": 0, "min(n)": null}}]})
    );
}

#[test]
fn a_document_is_aggregated_once_through_its_first_matching_sibling() {
    let filter = Filter::new(vec![
        Condition::new(path("ok"), Op::Eq(json!(true))).unwrap()
    ]);
    let s = spec(vec![agg(Func::Count, "*"), agg(Func::Sum, "n")], None);
    let docs = vec![
        vec![
            json!({"ok": false, "n": 1}),
            json!({"ok": true, "n": 2}),
            json!({"ok": true, "n": 4}),
        ],
        vec![json!({"ok": false, "n": 8})],
    ];
    assert_eq!(
        aggregate_documents(&docs, &filter, &s),
        json!({"groups": [{"group": null, "values": {"count(*)": 1, "sum(n)": 2}}]})
    );
}

#[test]
fn names_and_refusals() {
    assert_eq!(
        agg(Func::Count, "\"first name\"").to_string(),
        "count(\"first name\")"
    );
    assert_eq!(Func::from_name("AvG"), Some(Func::Avg));
    assert_eq!(Func::from_name("median"), None);
    let e = Aggregation::new(Func::Sum, Arg::Star)
        .unwrap_err()
        .to_string();
    assert!(e.contains("only count takes *"), "{e}");
    let e =
        AggregateSpec::new(vec![agg(Func::Count, "*"), agg(Func::Count, "*")], None).unwrap_err();
    assert!(e.to_string().contains("count(*) is asked for twice"));
    assert!(AggregateSpec::new(vec![], None).is_err());
}

#[test]
fn count_output() {
    let mut p = Partial::new(AggregateSpec::count_all());
    assert_eq!(p.finish_count().unwrap(), json!({"count": 0}));
    p.add(&json!({}));
    p.add(&json!({"a": 1}));
    assert_eq!(p.finish_count().unwrap(), json!({"count": 2}));
    assert!(Partial::new(spec(vec![agg(Func::Sum, "a")], None))
        .finish_count()
        .is_err());
}

#[test]
fn bytes_are_checked() {
    let s = spec(vec![agg(Func::Avg, "n"), agg(Func::Max, "n")], Some("g"));
    let mut p = Partial::new(s.clone());
    p.add(&json!({"g": "a", "n": 1.5}));
    p.add(&json!({"g": "b", "n": 2}));
    let bytes = p.to_bytes();
    assert_eq!(Partial::from_bytes(&s, &bytes).unwrap(), p);
    let other = spec(vec![agg(Func::Avg, "n")], Some("g"));
    let e = Partial::from_bytes(&other, &bytes).unwrap_err().to_string();
    assert!(e.contains("different aggregation"), "{e}");
    for n in 0..bytes.len() {
        assert!(
            Partial::from_bytes(&s, &bytes[..n]).is_err(),
            "truncated at {n}"
        );
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(Partial::from_bytes(&s, &extra).is_err());
    let mut q = Partial::new(other);
    assert!(q.merge(&p).is_err(), "different specs do not merge");
}

fn arb_spec() -> impl Strategy<Value = AggregateSpec> {
    let func = prop_oneof![
        Just(Func::Count),
        Just(Func::Sum),
        Just(Func::Avg),
        Just(Func::Min),
        Just(Func::Max)
    ];
    let one = (func, proptest::sample::select(&PATHS[..])).prop_map(|(f, p)| agg(f, p));
    (
        proptest::collection::vec(one, 1..5),
        proptest::option::of(proptest::sample::select(&PATHS[..])),
    )
        .prop_map(|(mut aggs, group_by)| {
            aggs.insert(0, agg(Func::Count, "*"));
            let mut unique: Vec<Aggregation> = Vec::new();
            for a in aggs {
                if !unique.contains(&a) {
                    unique.push(a);
                }
            }
            spec(unique, group_by)
        })
}

proptest! {
    /// Any split of the documents into partial states, shipped as bytes and merged in any
    /// order, equals aggregating them all at once.
    #[test]
    fn merging_partials_equals_aggregating_at_once(
        s in arb_spec(),
        f in arb_filter(),
        docs in proptest::collection::vec(proptest::collection::vec(arb_doc(), 1..3), 0..10),
        owner in proptest::collection::vec(0usize..3, 10),
        reverse in any::<bool>(),
    ) {
        let whole = aggregate_documents(&docs, &f, &s);
        let mut parts = vec![Partial::new(s.clone()), Partial::new(s.clone()), Partial::new(s.clone())];
        for (i, d) in docs.iter().enumerate() {
            parts[owner[i]].add_document(d, &f);
        }
        if reverse {
            parts.reverse();
        }
        let mut merged = Partial::new(s.clone());
        for p in &parts {
            let shipped = Partial::from_bytes(&s, &p.to_bytes()).unwrap();
            merged.merge(&shipped).unwrap();
        }
        prop_assert_eq!(merged.finish(), whole);
    }

    #[test]
    fn garbage_bytes_never_panic(s in arb_spec(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut forged = vec![1u8];
        forged.extend_from_slice(&s.fingerprint().to_be_bytes());
        forged.extend_from_slice(&bytes);
        if let Ok(p) = Partial::from_bytes(&s, &forged) {
            let _ = p.finish();
        }
        let _ = Partial::from_bytes(&s, &bytes);
    }
}
