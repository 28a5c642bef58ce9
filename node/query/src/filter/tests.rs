use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::value::tests::{arb_scalar, arb_value};

fn path(s: &str) -> Path {
    Path::parse(s).unwrap()
}

fn cond(p: &str, op: Op) -> Condition {
    Condition::new(path(p), op).unwrap()
}

/// Paths that the generated documents fill often.
pub(crate) const PATHS: [&str; 8] = ["a", "b", "c", "a.b", "a[]", "b[]", "a[].b", "c.a"];

/// Small scalars that collide with generated document values.
pub(crate) fn arb_operand() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop_oneof![
            Just(json!(null)),
            Just(json!(false)),
            Just(json!(true)),
            (-2i64..3).prop_map(Value::from),
            Just(json!(1.0)),
            Just(json!(0.5)),
            Just(json!("")),
            Just(json!("a")),
            Just(json!("b")),
        ],
        1 => arb_scalar(),
    ]
}

/// A document value: the operands' scalars, arrays of them and objects with fields a/b/c.
pub(crate) fn arb_field_value() -> impl Strategy<Value = Value> {
    arb_operand().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![Just("a"), Just("b"), Just("c")],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A document: an object with some of the fields a, b, c.
pub(crate) fn arb_doc() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        prop_oneof![Just("a"), Just("b"), Just("c")],
        arb_field_value(),
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A condition on one of [`PATHS`].
pub(crate) fn arb_condition() -> impl Strategy<Value = Condition> {
    let op = prop_oneof![
        arb_operand().prop_map(Op::Eq),
        arb_operand().prop_map(Op::Ne),
        arb_operand().prop_map(Op::Lt),
        arb_operand().prop_map(Op::Le),
        arb_operand().prop_map(Op::Gt),
        arb_operand().prop_map(Op::Ge),
        proptest::collection::vec(arb_operand(), 1..4).prop_map(Op::In),
        Just(Op::Exists),
    ];
    (proptest::sample::select(&PATHS[..]), op).prop_map(|(p, op)| cond(p, op))
}

/// A filter of up to three conditions.
pub(crate) fn arb_filter() -> impl Strategy<Value = Filter> {
    proptest::collection::vec(arb_condition(), 0..4).prop_map(Filter::new)
}

#[test]
fn comparisons_stay_within_a_type() {
    let doc = json!({"n": 1, "s": "1", "f": 1.0, "z": null, "t": true});
    assert!(cond("n", Op::Eq(json!(1.0))).matches(&doc));
    assert!(cond("f", Op::Eq(json!(1))).matches(&doc));
    assert!(!cond("s", Op::Eq(json!(1))).matches(&doc));
    assert!(!cond("n", Op::Eq(json!("1"))).matches(&doc));
    assert!(
        !cond("s", Op::Ne(json!(1))).matches(&doc),
        "!= needs the same type"
    );
    assert!(cond("s", Op::Ne(json!("2"))).matches(&doc));
    assert!(!cond("missing", Op::Ne(json!(1))).matches(&doc));
    assert!(!cond("s", Op::Lt(json!(5))).matches(&doc));
    assert!(cond("n", Op::Lt(json!(1.5))).matches(&doc));
    assert!(cond("t", Op::Gt(json!(false))).matches(&doc));
    assert!(!cond("t", Op::Lt(json!(true))).matches(&doc));
    assert!(cond("z", Op::Ge(json!(null))).matches(&doc));
    assert!(cond("z", Op::Le(json!(null))).matches(&doc));
    for op in [
        Op::Lt(json!(null)),
        Op::Gt(json!(null)),
        Op::Ne(json!(null)),
    ] {
        assert!(!cond("z", op).matches(&doc));
    }
    assert!(cond("z", Op::Exists).matches(&doc), "null exists");
    assert!(!cond("missing", Op::Exists).matches(&doc));
    assert!(cond("n", Op::In(vec![json!("1"), json!(1.0)])).matches(&doc));
    assert!(!cond("s", Op::In(vec![json!(1)])).matches(&doc));
}

#[test]
fn any_value_at_the_path_may_satisfy() {
    let doc = json!({"tags": ["x", "y", 3], "items": [{"sku": "a"}, {"sku": "b"}], "e": []});
    assert!(cond("tags[]", Op::Eq(json!("y"))).matches(&doc));
    assert!(
        cond("tags[]", Op::Ne(json!("x"))).matches(&doc),
        "y differs from x"
    );
    assert!(cond("tags[]", Op::Gt(json!(2))).matches(&doc));
    assert!(
        !cond("tags", Op::Eq(json!("x"))).matches(&doc),
        "the array is one value"
    );
    assert!(cond("items[].sku", Op::Ge(json!("b"))).matches(&doc));
    assert!(cond("tags", Op::Exists).matches(&doc));
    assert!(
        !cond("e[]", Op::Exists).matches(&doc),
        "empty array yields nothing"
    );
    assert!(cond("e", Op::Exists).matches(&doc));
    let c = cond("tags[]", Op::Ge(json!("x")));
    assert_eq!(
        c.satisfying(&doc).collect::<Vec<_>>(),
        vec![&json!("x"), &json!("y")]
    );
}

#[test]
fn a_document_matches_when_one_sibling_matches_everything() {
    let f = Filter::new(vec![
        cond("a", Op::Eq(json!(1))),
        cond("b", Op::Eq(json!(2))),
    ]);
    let split = [json!({"a": 1, "b": 0}), json!({"a": 0, "b": 2})];
    assert!(!f.matches(&split), "conditions met by different siblings");
    let second = [
        json!({"a": 0}),
        json!({"a": 1, "b": 2.0}),
        json!({"a": 1, "b": 2}),
    ];
    assert_eq!(f.first_match(&second), Some(&second[1]));
    assert_eq!(f.matching(&second).count(), 2);
    assert!(Filter::default().matches(&[json!({})]));
    assert!(
        !Filter::default().matches(&[]),
        "no live sibling, nothing to match"
    );
    // Two conditions on one array may be met by different elements of one sibling.
    let both = Filter::new(vec![
        cond("t[]", Op::Lt(json!(1))),
        cond("t[]", Op::Gt(json!(5))),
    ]);
    assert!(both.matches(&[json!({"t": [0, 9]})]));
}

#[test]
fn bad_operands_are_refused_clearly() {
    let e = Condition::new(path("a"), Op::Eq(json!({"x": 1})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an object"), "{e}");
    let e = Condition::new(path("a"), Op::In(vec![json!(1), json!([2])]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an array"), "{e}");
    let e = Condition::new(path("a"), Op::In(vec![]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one"), "{e}");
}

#[test]
fn display_writes_statement_syntax() {
    let f = Filter::new(vec![
        cond("\"first name\"", Op::Eq(json!("Ann \"A\""))),
        cond("tags[]", Op::In(vec![json!(1), json!(null)])),
        cond("x.y", Op::Exists),
        cond("age", Op::Ge(json!(1.5))),
    ]);
    assert_eq!(
        f.to_string(),
        r#""first name" = "Ann \"A\"" AND tags[] IN (1, null) AND x.y EXISTS AND age >= 1.5"#
    );
}

#[test]
fn index_answers_only_a_single_condition_on_its_path() {
    let one = Filter::new(vec![cond("a", Op::Gt(json!(1)))]);
    assert!(one.answered_by_index(&path("a")));
    assert!(!one.answered_by_index(&path("b")));
    let two = Filter::new(vec![
        cond("a", Op::Gt(json!(1))),
        cond("a", Op::Lt(json!(5))),
    ]);
    assert!(!two.answered_by_index(&path("a")));
    assert!(!Filter::default().answered_by_index(&path("a")));
    let f = Filter::new(vec![
        cond("a", Op::Exists),
        cond("b", Op::Exists),
        cond("b", Op::Exists),
    ]);
    assert_eq!(
        f.unindexed_paths(|p| p.to_string() == "a"),
        vec![&path("b")]
    );
}

#[test]
fn ranges_of_null_and_booleans() {
    assert!(cond("a", Op::Ne(json!(null))).ranges().is_empty());
    assert!(cond("a", Op::Gt(json!(true))).ranges().is_empty());
    assert_eq!(
        cond("a", Op::In(vec![json!(1), json!(1.0)])).ranges().len(),
        1
    );
    assert_eq!(
        cond("a", Op::Exists).ranges(),
        vec![ScanRange {
            start: vec![],
            end: None
        }]
    );
}

#[test]
fn resuming_a_range_starts_strictly_after() {
    let r = ScanRange {
        start: vec![5],
        end: Some(vec![9]),
    };
    let after = r.after(&[6, 1]).unwrap();
    assert!(!after.contains(&[6, 1]));
    assert!(after.contains(&[6, 1, 0]));
    assert!(after.contains(&[7]));
    assert_eq!(r.after(&[2]).unwrap(), r);
    assert_eq!(r.after(&[9]), None);
    let open = ScanRange {
        start: vec![],
        end: None,
    };
    assert!(open
        .after(&[0xff, 0xff])
        .unwrap()
        .contains(&[0xff, 0xff, 0]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn ranges_are_exact(c in arb_condition(), v in prop_oneof![arb_operand(), arb_value()], key in "[a-z\u{0}]{0,3}") {
        let mut entry = value::encode(&v);
        entry.extend_from_slice(key.as_bytes());
        let ranges = c.ranges();
        prop_assert_eq!(
            c.satisfied_by(&v),
            ranges.iter().any(|r| r.contains(&entry)),
            "{} on {}", c, v
        );
        for w in ranges.windows(2) {
            prop_assert!(w[0].end.as_ref().is_some_and(|e| *e <= w[1].start), "sorted, disjoint");
        }
    }

    #[test]
    fn a_scan_finds_exactly_the_documents_a_single_condition_matches(c in arb_condition(), doc in arb_doc()) {
        // Index the document on the condition's path, as the storage layer does.
        let entries: Vec<Vec<u8>> = c.path().values(&doc).into_iter().map(|v| {
            let mut e = value::encode(v);
            e.extend_from_slice(b"k");
            e
        }).collect();
        let found = entries.iter().any(|e| c.ranges().iter().any(|r| r.contains(e)));
        prop_assert_eq!(found, c.matches(&doc));
        prop_assert_eq!(found, Filter::new(vec![c.clone()]).matches(std::slice::from_ref(&doc)));
    }
}
