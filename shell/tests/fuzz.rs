//! Fuzzing the shell's lexer and parsers on stable Rust: arbitrary text, and text built from
//! the shell's own words so the parsers get past the first token, must give a statement or
//! an error, never a panic. `RINGDB_FUZZ_CASES` sets the inputs (default 256).

use proptest::prelude::*;
use ringdb_shell::{lex, parse, query};

fn config() -> ProptestConfig {
    let cases = std::env::var("RINGDB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("GET"),
            Just("PUT"),
            Just("DELETE"),
            Just("USE"),
            Just("FIND"),
            Just("COUNT"),
            Just("CREATE INDEX ON"),
            Just("DROP INDEX ON"),
            Just("DESCRIBE INDEXES"),
            Just("CONSISTENCY"),
            Just("CONTEXT"),
            Just("TRACING ON"),
            Just("WHERE"),
            Just("AND"),
            Just("LIMIT"),
            Just("ALLOW FILTERING"),
            Just("="),
            Just(";"),
            Just("{"),
            Just("}"),
            Just("\""),
            Just("'"),
            Just("("),
            Just(")"),
            Just("QUORUM"),
            Just("ALL"),
        ]
        .prop_map(str::to_string),
        "[a-z]{1,5}",
        "\\{\"[a-z]{0,3}\": ?[0-9]{0,3}\\}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_lexer_and_parsers_never_panic(text in any::<String>(), words in prop::collection::vec(word(), 0..10)) {
        let sentence = words.join(" ");
        for t in [text.as_str(), sentence.as_str()] {
            let _ = lex::is_incomplete(t);
            let _ = lex::split(t);
            let _ = lex::tokenize(t);
            let _ = parse::parse(t, None);
            let _ = parse::parse(t, Some("c"));
            if query::handles(t) {
                let _ = query::parse(t);
            }
        }
    }
}
