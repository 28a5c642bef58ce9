use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::filter::tests::{arb_doc, arb_filter};
use crate::filter::{Condition, Op};
use crate::order::{position, Order};

fn cond(p: &str, op: Op) -> Condition {
    Condition::new(Path::parse(p).unwrap(), op).unwrap()
}

fn shape<'a>(filter: &'a Filter, fields: &'a [Path]) -> QueryShape<'a> {
    QueryShape {
        collection: "users",
        filter,
        fields,
    }
}

#[test]
fn tokens_round_trip_in_both_orders() {
    let f = Filter::new(vec![
        cond("age", Op::Gt(json!(3))),
        cond("tags[]", Op::Exists),
    ]);
    let s = shape(&f, &[]);
    let by_value = Position::new(Some(&json!({"deep": ["x"]})), "key é\u{0}");
    let t = encode_token(s, Order::Condition(1), &by_value);
    assert!(
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{t}"
    );
    assert_eq!(decode_token(&t, s, Order::Condition(1)).unwrap(), by_value);
    let by_key = Position::new(None, "k1");
    let t = encode_token(s, Order::Key, &by_key);
    assert_eq!(decode_token(&t, s, Order::Key).unwrap(), by_key);
}

#[test]
fn a_token_from_another_query_is_refused() {
    let f1 = Filter::new(vec![cond("age", Op::Gt(json!(3)))]);
    let f2 = Filter::new(vec![cond("age", Op::Gt(json!(4)))]);
    let fields = [Path::parse("name").unwrap()];
    let p = Position::new(Some(&json!(5)), "k");
    let t = encode_token(shape(&f1, &[]), Order::Condition(0), &p);
    for other in [
        shape(&f2, &[]),
        shape(&f1, &fields),
        QueryShape {
            collection: "other",
            filter: &f1,
            fields: &[],
        },
    ] {
        let e = decode_token(&t, other, Order::Condition(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("different query"), "{e}");
    }
    let e = decode_token(&t, shape(&f1, &[]), Order::Key)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ordered by age")
            && e.contains("now ordered by key")
            && e.contains("without PAGE"),
        "{e}"
    );
}

#[test]
fn equivalent_operands_share_a_fingerprint() {
    let a = Filter::new(vec![
        cond("x", Op::Eq(json!(1))),
        cond("y", Op::In(vec![json!("b"), json!("a")])),
    ]);
    let b = Filter::new(vec![
        cond("x", Op::Eq(json!(1.0))),
        cond("y", Op::In(vec![json!("a"), json!("b"), json!("a")])),
    ]);
    assert_eq!(shape(&a, &[]).fingerprint(), shape(&b, &[]).fingerprint());
    let swapped = Filter::new(vec![b.conditions()[1].clone(), b.conditions()[0].clone()]);
    assert_ne!(
        shape(&a, &[]).fingerprint(),
        shape(&swapped, &[]).fingerprint(),
        "written order orders"
    );
    let ne = Filter::new(vec![cond("x", Op::Ne(json!(1))), a.conditions()[1].clone()]);
    assert_ne!(shape(&a, &[]).fingerprint(), shape(&ne, &[]).fingerprint());
}

#[test]
fn garbage_tokens_are_errors() {
    let f = Filter::new(vec![cond("a", Op::Exists)]);
    let s = shape(&f, &[]);
    for t in ["", "!!!", "AQ", "Ag", "AQAAAAAAAAAAAQA", "AQAAAAAAAAAAAgE"] {
        let e = decode_token(t, s, Order::Condition(0)).unwrap_err();
        assert!(e.to_string().starts_with("invalid page token"), "{t}: {e}");
        assert_eq!(
            e.to_string().matches("invalid page token").count(),
            1,
            "{t}: {e}"
        );
    }
    // A well-formed token whose order index is beyond the filter is invalid, not a panic.
    let p = Position::new(Some(&json!(1)), "k");
    let t = encode_token(s, Order::Condition(5), &p);
    assert!(decode_token(&t, s, Order::Condition(5)).is_err());
}

#[test]
fn pages_cut_strictly_after_and_say_when_more_remain() {
    let items: Vec<(Position, u32)> = (0..5)
        .rev()
        .map(|i| (Position::new(None, format!("k{i}")), i))
        .collect();
    let page = select_page(items.clone(), None, 2);
    assert_eq!(
        page.items.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(page.next, Some(Position::new(None, "k1")));
    let page = select_page(items.clone(), page.next.as_ref(), 3);
    assert_eq!(
        page.items.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(page.next, None, "a full last page has no next");
    assert_eq!(select_page(items, None, 0).items.len(), 1);
}

#[test]
fn horizon_is_the_earliest_stop() {
    let p = |k: &str| Position::new(None, k);
    assert_eq!(horizon(&[ScanEnd::Exhausted, ScanEnd::Exhausted]), None);
    let ends = [
        ScanEnd::Stopped(p("m")),
        ScanEnd::Exhausted,
        ScanEnd::Stopped(p("d")),
    ];
    assert_eq!(horizon(&ends), Some(&p("d")));
}

proptest! {
    #[test]
    fn any_text_decodes_to_an_error_or_a_position(t in "\\PC{0,40}", b in proptest::collection::vec(any::<u8>(), 0..40)) {
        let f = Filter::new(vec![cond("a", Op::Exists)]);
        let s = shape(&f, &[]);
        let _ = decode_token(&t, s, Order::Condition(0));
        let _ = decode_token(&t, s, Order::Key);
        let mut forged = vec![VERSION];
        forged.extend_from_slice(&s.fingerprint().to_be_bytes());
        forged.extend_from_slice(&b);
        let forged = URL_SAFE_NO_PAD.encode(&forged);
        let _ = decode_token(&forged, s, Order::Condition(0));
        let _ = decode_token(&forged, s, Order::Key);
    }

    /// Paging with tokens through a brute-force evaluation returns every matching document
    /// exactly once, in order, whatever the page sizes.
    #[test]
    fn paging_returns_each_match_once_in_order(
        f in arb_filter(),
        docs in proptest::collection::vec(proptest::collection::vec(arb_doc(), 1..3), 0..12),
        limits in proptest::collection::vec(1usize..4, 1..6),
        ordered in any::<bool>(),
    ) {
        let order = if ordered && !f.conditions().is_empty() { Order::Condition(0) } else { Order::Key };
        let s = shape(&f, &[]);
        let all: Vec<(Position, usize)> = docs.iter().enumerate()
            .filter_map(|(i, sibs)| position(&f, order, &format!("k{i:02}"), sibs).map(|p| (p, i)))
            .collect();
        let mut expected = all.clone();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for round in 0.. {
            let after = token.as_deref().map(|t| decode_token(t, s, order).unwrap());
            let page = select_page(all.clone(), after.as_ref(), limits[round % limits.len()]);
            seen.extend(page.items.iter().map(|(_, i)| *i));
            match page.next {
                Some(p) => token = Some(encode_token(s, order, &p)),
                None => break,
            }
        }
        prop_assert_eq!(seen, expected.iter().map(|(_, i)| *i).collect::<Vec<_>>());
    }
}
