//! Parser tests: the contract statements, the new ones, short forms and error messages.

use super::*;
use serde_json::json;

fn ok(text: &str) -> Statement {
    parse(text, None).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err(text: &str, using: Option<&str>) -> String {
    match parse(text, using) {
        Ok(st) => panic!("{text} parsed as {st:?}"),
        Err(e) => e.message(),
    }
}

fn get(collection: &str, key: &str, local: bool) -> Statement {
    Statement::Get {
        collection: collection.into(),
        key: key.into(),
        local,
        consistency: None,
    }
}

#[test]
fn parses_the_contract_statements() {
    assert_eq!(
        ok("put users \"alice smith\" {\"n\": 1} consistency all"),
        Statement::Put {
            collection: "users".into(),
            key: "alice smith".into(),
            document: json!({"n": 1}),
            context: None,
            consistency: Some(Consistency::All),
            ttl_secs: None,
        }
    );
    assert!(matches!(
        ok("PUT sessions s1 {} TTL 30"),
        Statement::Put {
            ttl_secs: Some(30),
            ..
        }
    ));
    assert!(parse("PUT sessions s1 {} TTL soon", None).is_err());
    assert!(parse("PUT sessions s1 {} TTL 0", None).is_err());
    assert_eq!(ok("GET users alice LOCAL"), get("users", "alice", true));
    assert_eq!(ok("GET users local"), get("users", "local", false));
    assert!(matches!(
        ok("DELETE c k CONTEXT abc"),
        Statement::Delete {
            context: Some(_),
            ..
        }
    ));
    assert_eq!(ok("consistency"), Statement::Consistency(None));
    assert_eq!(ok("Status"), Statement::Status);
    assert_eq!(ok("ring"), Statement::Ring);
}

#[test]
fn short_forms_use_the_collection_in_use() {
    let docs = Some("docs");
    assert_eq!(parse("GET k", docs).unwrap(), get("docs", "k", false));
    assert_eq!(parse("get k local", docs).unwrap(), get("docs", "k", true));
    assert_eq!(
        parse("GET other k", docs).unwrap(),
        get("other", "k", false)
    );
    assert_eq!(
        parse("GET \"local\"", docs).unwrap(),
        get("docs", "local", false)
    );
    assert_eq!(
        parse("GET users \"local\"", docs).unwrap(),
        get("users", "local", false)
    );
    assert!(matches!(
        parse("GET k CONSISTENCY ONE", docs).unwrap(),
        Statement::Get { ref collection, consistency: Some(Consistency::One), .. } if collection == "docs"
    ));
    assert!(matches!(
        parse("PUT k {\"a\": 1} CONSISTENCY ONE", docs).unwrap(),
        Statement::Put { ref collection, ref key, .. } if collection == "docs" && key == "k"
    ));
    assert!(matches!(
        parse("DELETE k", docs).unwrap(),
        Statement::Delete { ref collection, .. } if collection == "docs"
    ));
    assert!(matches!(
        parse("RESOLVE k {\"a\": 1}", docs).unwrap(),
        Statement::Resolve { ref collection, .. } if collection == "docs"
    ));
}

#[test]
fn short_forms_without_use_say_how() {
    for text in ["GET k", "DELETE k", "PUT k {\"a\": 1}", "RESOLVE k {}"] {
        let m = err(text, None);
        assert!(m.contains("USE <collection> first"), "{text}: {m}");
    }
    assert!(err("GET k CONSISTENCY ALL", None).contains("USE <collection> first"));
    // Without USE the second word is a key, as before USE existed.
    assert_eq!(ok("GET k LOCAL"), get("k", "LOCAL", false));
}

#[test]
fn new_statements() {
    assert_eq!(ok("use docs"), Statement::Use("docs".into()));
    assert_eq!(
        ok("CREATE COLLECTION docs"),
        Statement::CreateCollection {
            name: "docs".into(),
            replication: 0,
            if_not_exists: false
        }
    );
    let want = Statement::CreateCollection {
        name: "ev".into(),
        replication: 2,
        if_not_exists: true,
    };
    for text in [
        "create collection ev with replication = 2 if not exists",
        "CREATE COLLECTION ev WITH replication=2 IF NOT EXISTS",
        "CREATE COLLECTION ev WITH REPLICATION =2 IF NOT EXISTS",
        "CREATE COLLECTION ev WITH replication= 2 IF NOT EXISTS",
        "CREATE COLLECTION IF NOT EXISTS ev WITH replication = 2",
        "CREATE COLLECTION ev IF NOT EXISTS WITH replication = 2",
    ] {
        assert_eq!(ok(text), want, "{text}");
    }
    assert_eq!(ok("DESCRIBE COLLECTIONS"), Statement::DescribeCollections);
    assert_eq!(ok("desc collections"), Statement::DescribeCollections);
    assert_eq!(ok("DECOMMISSION"), Statement::Decommission);
    assert_eq!(ok("removenode n3"), Statement::RemoveNode("n3".into()));
    assert_eq!(ok("REPAIR"), Statement::Repair(None));
    assert_eq!(ok("repair users"), Statement::Repair(Some("users".into())));
    assert_eq!(ok("REPAIR status"), Statement::RepairStatus);
    assert_eq!(
        ok("SOURCE \"a b.rsh\""),
        Statement::Source("a b.rsh".into())
    );
    assert_eq!(ok("HELP"), Statement::Help(None));
    assert_eq!(
        ok("help create collection"),
        Statement::Help(Some("create".into()))
    );
    assert_eq!(ok("EXIT"), Statement::Exit);
    assert_eq!(ok("quit"), Statement::Exit);
}

#[test]
fn errors_name_the_problem() {
    assert!(err("GTE c k", None).contains("did you mean GET?"));
    assert!(err("DESCRIBE COLLECTION", None).contains("did you mean COLLECTIONS?"));
    assert!(err("GET c k CONSISTENCE ALL", None).contains("did you mean CONSISTENCY?"));
    assert!(err("PUT c k [1]", None).contains("JSON object"));
    assert!(err("PUT c k {\"a\":", None).contains("invalid JSON"));
    assert!(err("GET c k CONSISTENCY MOST", None).contains("MOST"));
    assert!(err("GET c k CONTEXT x", None).contains("unexpected CONTEXT"));
    assert!(err("RESOLVE c k {} CONTEXT x", None).contains("unexpected CONTEXT"));
    assert!(err("STATUS now", None).contains("unexpected now"));
    assert!(err("CREATE TABLE t", None).contains("expected COLLECTION"));
    assert!(err("CREATE COLLECTION c WITH replication = x", None).contains("whole number"));
    assert!(err("CREATE COLLECTION c WITH ttl = 3", None).contains("unknown option"));
    assert!(err("CREATE COLLECTION c IF EXISTS", None).contains("expected NOT"));
    assert!(err("USE", None).contains("missing a collection"));
    assert!(err("REMOVENODE", None).contains("missing a node id"));
    assert!(err("{\"a\": 1}", None).contains("starts with a keyword"));
    assert!(err("", None).contains("empty"));
    let m = err("GET", Some("docs"));
    assert!(
        m.contains("missing a key") && m.contains("usage: GET"),
        "{m}"
    );
}

#[test]
fn bad_input_never_panics() {
    for text in [
        "\"",
        "GET \"",
        "PUT {",
        "PUT c k {} CONTEXT",
        "CREATE COLLECTION",
        "CREATE COLLECTION c WITH",
        "CREATE COLLECTION c WITH =",
        "CREATE COLLECTION c IF",
        "HELP {}",
        "GET \u{0} \u{feff}",
        "é",
    ] {
        let _ = parse(text, None);
        let _ = parse(text, Some("docs"));
    }
}

#[test]
fn tracing_on_off_and_show() {
    assert_eq!(ok("TRACING ON"), Statement::Tracing(Some(true)));
    assert_eq!(ok("tracing off"), Statement::Tracing(Some(false)));
    assert_eq!(ok("Tracing"), Statement::Tracing(None));
    let m = err("TRACING OFN", None);
    assert!(
        m.contains("expected ON or OFF") && m.contains("did you mean"),
        "{m}"
    );
    assert!(err("TRACING ON now", None).contains("unexpected"));
    assert!(err("TRACING \"on\"", None).contains("expected ON or OFF"));
}

#[test]
fn index_statements_use_the_query_grammar() {
    let create = |c: &str, p: &str| Statement::CreateIndex {
        collection: c.into(),
        path: p.into(),
    };
    assert_eq!(ok("CREATE INDEX ON users (age)"), create("users", "age"));
    assert_eq!(
        ok("create index on users (address.city);"),
        create("users", "address.city")
    );
    assert_eq!(
        ok("CREATE INDEX ON users (\"a\".b)"),
        create("users", "a.b"),
        "canonical"
    );
    assert_eq!(
        ok("CREATE INDEX ON users (\"first name\")"),
        create("users", "\"first name\"")
    );
    assert_eq!(
        ok("DROP INDEX ON users (tags[])"),
        Statement::DropIndex {
            collection: "users".into(),
            path: "tags[]".into()
        }
    );
    assert_eq!(ok("DESCRIBE INDEXES"), Statement::DescribeIndexes(None));
    assert_eq!(
        ok("desc indexes users"),
        Statement::DescribeIndexes(Some("users".into()))
    );
    // The query parser's message (with its column) and the usage line.
    let m = err("CREATE INDEX ON users (a..b)", None);
    assert!(m.contains("column") && m.contains("usage: CREATE"), "{m}");
    assert!(err("CREATE INDEX ON users age", None).contains("column"));
    assert!(err("DROP TABLE t", None).contains("expected INDEX"));
    assert!(err("DROP", None).contains("missing INDEX"));
    assert!(err("CREATE TABLE t", None).contains("expected COLLECTION or INDEX"));
    assert!(err("DESCRIBE INDEX", None).contains("did you mean INDEXES?"));
    // FIND, COUNT and AGGREGATE take the query grammar's other route (`crate::query`).
    assert!(matches!(ok("FIND users"), Statement::Query(_)));
    for text in [
        "CREATE INDEX",
        "CREATE INDEX ON",
        "DROP INDEX ON c (",
        "DESCRIBE INDEXES a b",
        "DESC",
    ] {
        let _ = parse(text, None);
        let _ = parse(text, Some("docs"));
    }
}
