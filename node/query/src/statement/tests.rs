use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::aggregate::{Aggregation, Arg, Func};
use crate::error::Error;
use crate::filter::tests::arb_condition;
use crate::filter::{Condition, Op};
use crate::path::tests::arb_path;

fn path(s: &str) -> Path {
    Path::parse(s).unwrap()
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn column(text: &str) -> usize {
    match parse(text).unwrap_err() {
        Error::Syntax { column, .. } => column,
        other => panic!("not a syntax error: {other}"),
    }
}

#[test]
fn index_statements() {
    assert_eq!(
        parse("create index on users (address.city)").unwrap(),
        Statement::CreateIndex {
            collection: "users".into(),
            path: path("address.city")
        }
    );
    assert_eq!(
        parse("DROP INDEX ON my-coll.v2 (\"first name\"[]);").unwrap(),
        Statement::DropIndex {
            collection: "my-coll.v2".into(),
            path: path("\"first name\"[]")
        }
    );
    assert_eq!(
        parse("DESCRIBE INDEXES").unwrap(),
        Statement::DescribeIndexes { collection: None }
    );
    assert_eq!(
        parse("describe indexes \"odd name\" ;").unwrap(),
        Statement::DescribeIndexes {
            collection: Some("odd name".into())
        }
    );
}

#[test]
fn a_full_find() {
    let s = parse(
        r#"find users fields name, address.city where age >= 18 and tags[] in ("a", 2, null) AND email exists and "first name"!="Bob" limit 100 page AQID-_ allow filtering consistency quorum"#,
    )
    .unwrap();
    let want = Statement::Find(Find {
        collection: "users".into(),
        fields: vec![path("name"), path("address.city")],
        filter: Filter::new(vec![
            Condition::new(path("age"), Op::Ge(json!(18))).unwrap(),
            Condition::new(
                path("tags[]"),
                Op::In(vec![json!("a"), json!(2), json!(null)]),
            )
            .unwrap(),
            Condition::new(path("email"), Op::Exists).unwrap(),
            Condition::new(path("\"first name\""), Op::Ne(json!("Bob"))).unwrap(),
        ]),
        limit: Some(100),
        page: Some("AQID-_".into()),
        allow_filtering: true,
        consistency: Some("quorum".into()),
    });
    assert_eq!(s, want);
    assert_eq!(
        s.to_string(),
        r#"FIND users FIELDS name, address.city WHERE age >= 18 AND tags[] IN ("a", 2, null) AND email EXISTS AND "first name" != "Bob" LIMIT 100 PAGE AQID-_ ALLOW FILTERING CONSISTENCY quorum"#
    );
}

#[test]
fn clauses_in_any_order_and_tight_operators() {
    let s = parse("FIND c CONSISTENCY ONE LIMIT 5 WHERE a<=-1.5e3 AND b IN(true,false)").unwrap();
    let Statement::Find(f) = s else { panic!() };
    assert_eq!(f.limit, Some(5));
    assert_eq!(f.consistency.as_deref(), Some("ONE"));
    assert_eq!(f.filter.conditions()[0].op(), &Op::Le(json!(-1500.0)));
    assert_eq!(
        f.filter.conditions()[1].op(),
        &Op::In(vec![json!(true), json!(false)])
    );
    let Statement::Find(f) = parse("FIND c").unwrap() else {
        panic!()
    };
    assert!(f.fields.is_empty() && f.filter.conditions().is_empty() && f.limit.is_none());
    // A path may be spelled like a keyword.
    let Statement::Find(f) = parse("FIND where WHERE where = 1 AND and EXISTS").unwrap() else {
        panic!()
    };
    assert_eq!(f.collection, "where");
    assert_eq!(f.filter.conditions()[1].path(), &path("and"));
}

#[test]
fn conditions_alone() {
    let f =
        parse_conditions(r#"age >= 18 AND tags[] IN ("a", 2) AND "first name" EXISTS"#).unwrap();
    assert_eq!(
        f.to_string(),
        r#"age >= 18 AND tags[] IN ("a", 2) AND "first name" EXISTS"#
    );
    assert_eq!(f.conditions()[0].op(), &Op::Ge(json!(18)));
    let e = parse_conditions("age >= 18 LIMIT 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("AND or the end of the conditions"), "{e}");
    assert!(parse_conditions("").is_err());
    assert!(parse_conditions("a = {}")
        .unwrap_err()
        .to_string()
        .contains("object"));
}

#[test]
fn count_and_aggregate() {
    assert_eq!(
        parse("COUNT users WHERE age > 3 CONSISTENCY ALL").unwrap(),
        Statement::Count(Count {
            collection: "users".into(),
            filter: Filter::new(vec![Condition::new(path("age"), Op::Gt(json!(3))).unwrap()]),
            allow_filtering: false,
            consistency: Some("ALL".into()),
        })
    );
    let s = parse("aggregate users COUNT( * ), avg(age),max(a.b[]) where x exists group by city allow filtering").unwrap();
    let Statement::Aggregate(a) = &s else {
        panic!()
    };
    assert_eq!(
        a.spec.aggregations(),
        &[
            Aggregation::new(Func::Count, Arg::Star).unwrap(),
            Aggregation::new(Func::Avg, Arg::Path(path("age"))).unwrap(),
            Aggregation::new(Func::Max, Arg::Path(path("a.b[]"))).unwrap(),
        ]
    );
    assert_eq!(a.spec.group_by(), Some(&path("city")));
    assert!(a.allow_filtering);
    assert_eq!(
        s.to_string(),
        "AGGREGATE users count(*), avg(age), max(a.b[]) WHERE x EXISTS GROUP BY city ALLOW FILTERING"
    );
}

#[test]
fn errors_say_what_was_expected_and_where() {
    assert!(err("SELECT * FROM t").starts_with("expected CREATE INDEX, DROP INDEX"));
    assert_eq!(column("FIND"), 5);
    assert!(err("FIND").contains("expected a collection name"));
    let e = err("FIND c WHERE a = {\"x\": 1}");
    assert!(
        e.contains("objects and arrays cannot be compared") && e.ends_with("column 18"),
        "{e}"
    );
    let e = err("FIND c WHERE a IN (1, [2])");
    assert!(e.contains("objects and arrays"), "{e}");
    let e = err("FIND c WHERE a = bob");
    assert!(
        e.contains("strings need double quotes") && e.ends_with("column 18"),
        "{e}"
    );
    let e = err("FIND c WHERE a = TRUE");
    assert!(e.contains("lower case"), "{e}");
    let e = err("FIND c WHERE a == 1");
    assert!(e.contains("expected a JSON value"), "{e}");
    let e = err("FIND c WHERE a ~ 1");
    assert!(
        e.contains("expected an operator") && e.ends_with("column 16"),
        "{e}"
    );
    let e = err("FIND c WHERE a = 1.2.3");
    assert!(e.contains("invalid number \"1.2.3\""), "{e}");
    let e = err("FIND c WHERE a IN ()");
    assert!(e.contains("expected a JSON value"), "{e}");
    let e = err("FIND c WHERE a = \"open");
    assert!(e.contains("invalid JSON string"), "{e}");
    let e = err("FIND c LIMIT 0");
    assert!(e.contains("LIMIT must be at least 1"), "{e}");
    let e = err("FIND c LIMIT 99999999999999999999999");
    assert!(e.contains("too large"), "{e}");
    let e = err("FIND c LIMIT ten");
    assert!(e.contains("expected a whole number after LIMIT"), "{e}");
    let e = err("FIND c LIMIT 1 LIMIT 2");
    assert!(
        e.contains("LIMIT is given twice") && e.ends_with("column 16"),
        "{e}"
    );
    let e = err("COUNT c LIMIT 1");
    assert!(e.contains("COUNT takes no LIMIT clause"), "{e}");
    let e = err("FIND c GROUP BY a");
    assert!(e.contains("FIND takes no GROUP BY clause"), "{e}");
    let e = err("FIND c ALLOW");
    assert!(e.contains("expected FILTERING"), "{e}");
    let e = err("FIND c WHERE a = 1 ORDER BY a");
    assert!(
        e.contains("expected FIELDS, WHERE, LIMIT") && e.contains("\"ORDER\""),
        "{e}"
    );
    let e = err("AGGREGATE c sum(*)");
    assert!(
        e.contains("only count takes *") && e.ends_with("column 13"),
        "{e}"
    );
    let e = err("AGGREGATE c median(a)");
    assert!(e.contains("expected an aggregate function"), "{e}");
    let e = err("AGGREGATE c count(*), COUNT(*)");
    assert!(e.contains("count(*) is asked for twice"), "{e}");
    let e = err("AGGREGATE c");
    assert!(e.contains("expected an aggregate function"), "{e}");
    let e = err("CREATE INDEX ON c (a b)");
    assert!(e.contains("expected ')'"), "{e}");
    let e = err("CREATE INDEX ON c (tags[0])");
    assert!(e.contains("expected ']'"), "{e}");
    let e = err("CREATE COLLECTION c");
    assert!(e.contains("expected INDEX"), "{e}");
    let e = err("FIND c CONSISTENCY");
    assert!(e.contains("expected a consistency level"), "{e}");
    let e = err("DESCRIBE INDEXES a b");
    assert!(e.contains("expected the end of the statement"), "{e}");
    assert_eq!(
        column("FIND \"é\" WHERE x ="),
        19,
        "columns count characters"
    );
}

#[test]
fn recognises_its_statements() {
    for yes in [
        "FIND c",
        "count c",
        "Aggregate c count(*)",
        "create index on c (a)",
        "DROP INDEX",
        "describe indexes",
    ] {
        assert!(is_query_statement(yes), "{yes}");
    }
    for no in [
        "CREATE COLLECTION c",
        "DESCRIBE COLLECTIONS",
        "GET c k",
        "FINDER",
        "",
        "drop",
    ] {
        assert!(!is_query_statement(no), "{no}");
    }
}

fn arb_collection() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z][a-z0-9_.-]{0,5}", 1 => "[a-z \"é]{1,4}"]
}

fn arb_filter_maybe() -> impl Strategy<Value = Filter> {
    proptest::collection::vec(
        prop_oneof![
            arb_condition(),
            (
                arb_path(),
                prop_oneof![Just(Op::Exists), Just(Op::Eq(json!("x\"y")))]
            )
                .prop_map(|(p, op)| Condition::new(p, op).unwrap())
        ],
        0..3,
    )
    .prop_map(Filter::new)
}

fn arb_level() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("ONE".to_string()),
        Just("quorum".to_string()),
        Just("All".to_string())
    ])
}

fn arb_statement() -> impl Strategy<Value = Statement> {
    let func = prop_oneof![
        Just(Func::Count),
        Just(Func::Sum),
        Just(Func::Avg),
        Just(Func::Min),
        Just(Func::Max)
    ];
    let agg = prop_oneof![
        Just(Aggregation::new(Func::Count, Arg::Star).unwrap()),
        (func, arb_path()).prop_map(|(f, p)| Aggregation::new(f, Arg::Path(p)).unwrap()),
    ];
    let spec = (
        proptest::collection::vec(agg, 1..4),
        proptest::option::of(arb_path()),
    )
        .prop_filter_map("distinct aggregations", |(aggs, g)| {
            AggregateSpec::new(aggs, g).ok()
        });
    prop_oneof![
        (arb_collection(), arb_path())
            .prop_map(|(collection, path)| Statement::CreateIndex { collection, path }),
        (arb_collection(), arb_path())
            .prop_map(|(collection, path)| Statement::DropIndex { collection, path }),
        proptest::option::of(arb_collection())
            .prop_map(|collection| Statement::DescribeIndexes { collection }),
        (
            arb_collection(),
            proptest::collection::vec(arb_path(), 0..3),
            arb_filter_maybe(),
            proptest::option::of(1u64..1_000_000),
            proptest::option::of(prop_oneof!["[A-Za-z0-9_-]{1,12}", "[a b]{1,4}"]),
            any::<bool>(),
            arb_level(),
        )
            .prop_map(
                |(collection, fields, filter, limit, page, allow_filtering, consistency)| {
                    Statement::Find(Find {
                        collection,
                        fields,
                        filter,
                        limit,
                        page,
                        allow_filtering,
                        consistency,
                    })
                }
            ),
        (
            arb_collection(),
            arb_filter_maybe(),
            any::<bool>(),
            arb_level()
        )
            .prop_map(|(collection, filter, allow_filtering, consistency)| {
                Statement::Count(Count {
                    collection,
                    filter,
                    allow_filtering,
                    consistency,
                })
            }),
        (
            arb_collection(),
            spec,
            arb_filter_maybe(),
            any::<bool>(),
            arb_level()
        )
            .prop_map(|(collection, spec, filter, allow_filtering, consistency)| {
                Statement::Aggregate(Aggregate {
                    collection,
                    spec,
                    filter,
                    allow_filtering,
                    consistency,
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn display_parses_back(s in arb_statement()) {
        let text = s.to_string();
        prop_assert_eq!(parse(&text).unwrap(), s, "{}", text);
    }

    #[test]
    fn garbage_never_panics(text in "\\PC{0,40}") {
        let _ = parse(&text);
        let _ = is_query_statement(&text);
    }

    #[test]
    fn near_miss_statements_never_panic(s in arb_statement(), cut in 0usize..200, junk in "[ ()\",=<>!*\\[\\].a-z0-9é]{0,3}") {
        let text = s.to_string();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mangled = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        let _ = parse(&mangled);
    }
}
