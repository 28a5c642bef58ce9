use proptest::prelude::*;
use serde_json::{json, Number, Value};

use super::*;
use crate::value::tests::arb_number;

fn sum_of(values: &[Value]) -> ExactSum {
    let mut s = ExactSum::default();
    for v in values {
        s.add(v.as_number().unwrap());
    }
    s
}

fn f(x: f64) -> Value {
    Value::Number(Number::from_f64(x).unwrap())
}

/// Finite f64s, often of close magnitudes (so sums round), subnormal or near the top.
fn finite() -> impl Strategy<Value = f64> {
    let with_exponent = |lo: u64, hi: u64| {
        (any::<u64>(), lo..hi, any::<bool>()).prop_map(|(m, e, neg)| {
            f64::from_bits(u64::from(neg) << 63 | e << 52 | (m & ((1 << 52) - 1)))
        })
    };
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        with_exponent(1020, 1026),
        with_exponent(0, 3),
        with_exponent(2040, 2047),
    ]
}

#[test]
fn integers_stay_exact_integers() {
    assert_eq!(sum_of(&[]).sum(), Some(json!(0)));
    assert_eq!(
        sum_of(&[json!(1), json!(2), json!(-5)]).sum(),
        Some(json!(-2))
    );
    assert_eq!(
        sum_of(&[json!(u64::MAX), json!(-1)]).sum(),
        Some(json!(u64::MAX - 1))
    );
    assert_eq!(
        sum_of(&[json!(i64::MIN), json!(0)]).sum(),
        Some(json!(i64::MIN))
    );
    // Beyond u64: the nearest f64.
    assert_eq!(
        sum_of(&[json!(u64::MAX), json!(u64::MAX)]).sum(),
        Some(f(2.0 * 18_446_744_073_709_551_615.0))
    );
    // 2^53 + 1 is exact as an integer, though no f64 holds it.
    assert_eq!(
        sum_of(&[json!(1u64 << 53), json!(1)]).sum(),
        Some(json!((1u64 << 53) + 1))
    );
}

#[test]
fn any_float_makes_a_float() {
    assert_eq!(sum_of(&[json!(1), f(2.0)]).sum(), Some(f(3.0)));
    assert_eq!(sum_of(&[f(0.1), f(0.2)]).sum(), Some(f(0.1 + 0.2)));
    // Exact: (1e16 + 1 - 1e16) is 1, where naive f64 summation gives 0.
    assert_eq!(sum_of(&[f(1e16), json!(1), f(-1e16)]).sum(), Some(f(1.0)));
    assert_eq!(
        sum_of(&[f(1e308), f(1e308), f(-1e308)]).sum(),
        Some(f(1e308))
    );
    assert_eq!(sum_of(&[f(1e308), f(1e308)]).sum(), None, "beyond f64");
    assert_eq!(sum_of(&[f(5e-324), f(5e-324)]).sum(), Some(f(1e-323)));
    assert_eq!(sum_of(&[f(-0.0)]).sum(), Some(f(0.0)));
}

#[test]
fn means_are_correctly_rounded() {
    assert_eq!(sum_of(&[]).mean(0), None);
    assert_eq!(sum_of(&[json!(1), json!(2)]).mean(2), Some(1.5));
    assert_eq!(
        sum_of(&[json!(1), json!(1), json!(2)]).mean(3),
        Some(4.0 / 3.0)
    );
    assert_eq!(
        sum_of(&[f(1e308), f(1e308)]).mean(2),
        Some(1e308),
        "no overflow"
    );
    assert_eq!(
        sum_of(&[f(5e-324)]).mean(2),
        Some(0.0),
        "half the smallest subnormal ties to even 0"
    );
    assert_eq!(
        sum_of(&[f(1.5e-323)]).mean(2),
        Some(1e-323),
        "1.5 ulp ties to even 2"
    );
    assert_eq!(sum_of(&[json!(-3)]).mean(2), Some(-1.5));
    assert_eq!(
        sum_of(&[json!(u64::MAX), json!(u64::MAX)]).mean(2),
        Some(18_446_744_073_709_551_615.0)
    );
}

#[test]
fn integer_overflow_spills_exactly() {
    let mut s = ExactSum {
        int: i128::MAX - 1,
        ..ExactSum::default()
    };
    s.add(&Number::from(u64::MAX));
    s.add(&Number::from(-1i64));
    assert!(s.big.is_some());
    let exact = (i128::MAX - 1) as f64 + 18_446_744_073_709_551_615.0;
    assert_eq!(s.sum(), Some(f(exact)));
}

#[test]
fn states_round_trip_and_garbage_is_refused() {
    for s in [
        sum_of(&[]),
        sum_of(&[json!(-7)]),
        sum_of(&[f(0.5), json!(3)]),
    ] {
        let mut w = Writer::default();
        s.write(&mut w);
        let mut r = Reader::new(&w.buf, "sum");
        assert_eq!(ExactSum::read(&mut r).unwrap(), s);
        assert!(r.finish().is_ok());
    }
    assert!(ExactSum::read(&mut Reader::new(&[4], "sum")).is_err());
    assert!(ExactSum::read(&mut Reader::new(&[2; 20], "sum")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// IEEE addition of two f64s is correctly rounded, so it is an oracle for our sum.
    #[test]
    fn two_floats_sum_like_ieee(a in finite(), b in finite()) {
        let want = a + b;
        let got = sum_of(&[f(a), f(b)]).sum();
        if want.is_finite() {
            prop_assert_eq!(got, Some(f(want)));
        } else {
            prop_assert_eq!(got, None);
        }
    }

    /// Halving is exact for normal f64s, so (a + b) / 2 is an oracle for the mean.
    #[test]
    fn two_floats_mean_like_ieee(a in finite(), b in finite()) {
        let s = a + b;
        prop_assume!(s.is_finite() && (s == 0.0 || s.abs() > 1e-300));
        prop_assert_eq!(sum_of(&[f(a), f(b)]).mean(2), Some(s / 2.0));
    }

    #[test]
    fn integer_sums_match_i128(xs in proptest::collection::vec(prop_oneof![any::<i64>().prop_map(json::from_i64), any::<u64>().prop_map(Value::from)], 0..20)) {
        let exact: i128 = xs.iter().map(|v| v.as_i64().map(i128::from).unwrap_or_else(|| i128::from(v.as_u64().unwrap()))).sum();
        let got = sum_of(&xs).sum().unwrap();
        let want = u64::try_from(exact).map(Value::from)
            .or_else(|_| i64::try_from(exact).map(Value::from))
            .unwrap_or_else(|_| f(exact as f64));
        prop_assert_eq!(got, want);
        if !xs.is_empty() && exact.unsigned_abs() < 1 << 53 {
            prop_assert_eq!(sum_of(&xs).mean(xs.len() as u64), Some(exact as f64 / xs.len() as f64));
        }
    }

    /// Any order and any split into merged parts gives the same sum and mean.
    #[test]
    fn order_and_split_do_not_matter(xs in proptest::collection::vec(arb_number(), 0..16), cut in 0usize..16, seed in any::<u64>()) {
        let whole = sum_of(&xs);
        let cut = cut.min(xs.len());
        let mut left = sum_of(&xs[..cut]);
        left.merge(&sum_of(&xs[cut..]));
        let mut shuffled = xs.clone();
        let n = shuffled.len().max(1);
        shuffled.rotate_left((seed as usize) % n);
        shuffled.reverse();
        let other = sum_of(&shuffled);
        prop_assert_eq!(whole.sum(), left.sum());
        prop_assert_eq!(whole.sum(), other.sum());
        let count = xs.len() as u64;
        prop_assert_eq!(whole.mean(count), left.mean(count));
        prop_assert_eq!(whole.mean(count), other.mean(count));
    }
}

mod json {
    use serde_json::Value;

    pub(super) fn from_i64(i: i64) -> Value {
        Value::from(i)
    }
}
