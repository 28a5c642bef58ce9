use std::cmp::Ordering;

use proptest::prelude::*;
use serde_json::{json, Number, Value};

use super::*;

/// Numbers that stress the encoding: small values that collide across representations,
/// big integers beyond 2^53, integral floats, subnormals and extremes.
pub(crate) fn arb_number() -> impl Strategy<Value = Value> {
    let f = |x: f64| Value::Number(Number::from_f64(x).unwrap());
    prop_oneof![
        (-3i64..4).prop_map(Value::from),
        (-3i64..4).prop_map(move |i| f(i as f64)),
        (-6i64..6).prop_map(move |i| f(i as f64 / 4.0)),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..8).prop_map(|d| Value::from(u64::MAX - d)),
        (0i64..8).prop_map(|d| Value::from(i64::MIN + d)),
        (-3i64..4).prop_map(|d| Value::from((1i64 << 53) + d)),
        (50i32..66, any::<bool>())
            .prop_map(move |(e, neg)| f(if neg { -1.0 } else { 1.0 } * 2f64.powi(e))),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(f),
        (1u64..1 << 52).prop_map(move |m| f(f64::from_bits(m))),
        Just(f(-0.0)),
        Just(f(f64::MAX)),
        Just(f(f64::MIN)),
    ]
}

/// Strings over a small alphabet with NUL, 0xFF-adjacent and multi-byte characters, so
/// prefixes and escapes are common.
pub(crate) fn arb_string() -> impl Strategy<Value = String> {
    "[ab\u{0}\u{1}\u{ff}é\u{10FFFF}]{0,4}"
}

/// Scalars only.
pub(crate) fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels.
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[ab\u{0}é]{0,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The documented normalisation, written independently of the encoder: integral numbers
/// that fit u64/i64 become integers (so -0.0 becomes 0).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap();
            if x.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&x) {
                Value::from(x as u64)
            } else if x.fract() == 0.0 && (-9_223_372_036_854_775_808.0..0.0).contains(&x) {
                Value::from(x as i64)
            } else {
                v.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn classes_are_bracketed_in_the_documented_order() {
    let ladder = [
        json!(null),
        json!(false),
        json!(true),
        json!(-1e300),
        json!(-1),
        json!(0),
        json!(0.5),
        json!(u64::MAX),
        json!(1e300),
        json!(""),
        json!("\u{0}"),
        json!("a"),
        json!("a\u{0}"),
        json!("ab"),
        json!("b"),
        json!([]),
        json!([null]),
        json!([1, 2]),
        json!([1, 2, 3]),
        json!([2]),
        json!({}),
        json!({"a": 1}),
        json!({"a": 1, "b": 0}),
        json!({"a": 2}),
        json!({"b": 0}),
    ];
    for pair in ladder.windows(2) {
        assert_eq!(
            cmp(&pair[0], &pair[1]),
            Ordering::Less,
            "{} < {}",
            pair[0],
            pair[1]
        );
        assert!(
            encode(&pair[0]) < encode(&pair[1]),
            "{} < {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn numeric_equality_across_representations() {
    assert!(equal(&json!(1), &json!(1.0)));
    assert!(equal(&json!(-0.0), &json!(0)));
    assert!(equal(&json!({"a": [1]}), &json!({"a": [1.0]})));
    assert!(!equal(&json!(1), &json!("1")));
    assert_eq!(
        canonical(&json!({"b": 2.0, "a": -0.0})),
        json!({"a": 0, "b": 2})
    );
    assert_eq!(canonical(&json!(2.5)), json!(2.5));
}

#[test]
fn object_field_order_does_not_matter() {
    let mut m1 = serde_json::Map::new();
    m1.insert("b".into(), json!(1));
    m1.insert("a".into(), json!(2));
    let mut m2 = serde_json::Map::new();
    m2.insert("a".into(), json!(2));
    m2.insert("b".into(), json!(1));
    assert_eq!(encode(&Value::Object(m1)), encode(&Value::Object(m2)));
}

#[test]
fn entries_split_back_and_reject_garbage() {
    let mut entry = encode(&json!("a\u{0}b"));
    entry.extend_from_slice("key\u{0}1".as_bytes());
    assert_eq!(
        split_entry(&entry).unwrap(),
        (json!("a\u{0}b"), "key\u{0}1")
    );
    assert!(
        split_entry(&[0x07, b'a', 0, 0x01, 0xff]).is_err(),
        "key not UTF-8"
    );
    for bad in [
        &[][..],
        &[0x00],
        &[0x0a],
        &[0x07, b'a'],
        &[0x07, 0, 2],
        &[0x07, 0xc3, 0, 1],
        &[0x08, 0x01],
        &[0x09, 0x02],
        &[0x09, 0x01, b'b', 0, 1, 0x01, 0x01, b'a', 0, 1, 0x01, 0x00],
        &[0x09, 0x01, b'a', 0, 1, 0x01, 0x01, b'a', 0, 1, 0x01, 0x00],
        &[0x06, 0, 0],
    ] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
    assert!(decode(&[0x01, 0x01]).is_err(), "trailing bytes");
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = vec![0x08u8; 100_000];
    assert!(decode(&deep).unwrap_err().to_string().contains("deeper"));
}

#[test]
fn prefix_end_bounds_every_extension() {
    assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
    assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
    assert_eq!(prefix_end(&[0xff]), None);
    assert_eq!(prefix_end(&[]), None);
}

#[test]
fn type_ranges_hold_exactly_their_class() {
    for v in [
        json!(null),
        json!(true),
        json!(-2),
        json!(0),
        json!(3.5),
        json!("x"),
        json!([]),
        json!({}),
    ] {
        for class in [
            TypeClass::Null,
            TypeClass::Bool,
            TypeClass::Number,
            TypeClass::String,
            TypeClass::Array,
            TypeClass::Object,
        ] {
            let (start, end) = class.encoded_range();
            let e = encode(&v);
            assert_eq!(
                start <= e && e < end,
                TypeClass::of(&v) == class,
                "{v} in {class:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn byte_order_is_the_typed_order(a in arb_value(), b in arb_value()) {
        prop_assert_eq!(cmp(&a, &b), encode(&a).cmp(&encode(&b)), "{} vs {}", a, b);
    }

    #[test]
    fn numbers_order_exactly(a in arb_number(), b in arb_number()) {
        prop_assert_eq!(cmp(&a, &b), encode(&a).cmp(&encode(&b)), "{} vs {}", a, b);
        prop_assert_eq!(cmp(&a, &b), cmp(&b, &a).reverse());
    }

    #[test]
    fn decode_inverts_encode_up_to_normalisation(v in arb_value()) {
        let e = encode(&v);
        let d = decode(&e).unwrap();
        prop_assert_eq!(&d, &normalise(&v));
        prop_assert_eq!(encode(&d), e);
        prop_assert!(equal(&d, &v));
    }

    #[test]
    fn encodings_are_self_delimiting(a in arb_value(), b in arb_value(), key in "\\PC{0,6}") {
        let (ea, eb) = (encode(&a), encode(&b));
        if ea.len() < eb.len() {
            prop_assert!(!eb.starts_with(&ea), "prefix-free");
        }
        let mut joined = ea.clone();
        joined.extend_from_slice(&eb);
        prop_assert_eq!(encoded_len(&joined).unwrap(), ea.len());
        let mut entry = ea.clone();
        entry.extend_from_slice(key.as_bytes());
        let (v, k) = split_entry(&entry).unwrap();
        prop_assert_eq!(v, normalise(&a));
        prop_assert_eq!(k, key.as_str());
        // Every entry of value `a` lies in a's prefix range, and no other value's does.
        let end = prefix_end(&ea).unwrap();
        prop_assert!(entry >= ea && entry < end);
        let mut other = eb.clone();
        other.extend_from_slice(key.as_bytes());
        prop_assert_eq!(other >= ea && other < end, equal(&a, &b));
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(v) = decode(&bytes) {
            // Anything accepted is canonical: it encodes back to the same bytes.
            prop_assert_eq!(encode(&v), bytes);
        }
    }
}
