//! Paths into JSON documents, as written in index definitions, conditions, `FIELDS`, aggregate
//! arguments and `GROUP BY`.
//!
//! # Grammar
//!
//! ```text
//! path  = name step*
//! step  = "." name | "[]"
//! name  = ident | quoted
//! ident = [A-Za-z_] [A-Za-z0-9_]*
//! quoted = a JSON string literal: "first name", "a.b", "say \"hi\"", "\u00e9t\u00e9"
//! ```
//!
//! `a.b.c` is a nested field; `tags[]` stands for each element of the array `tags`; steps
//! combine freely (`items[].sku`, `matrix[][]`, `a."first name"[].x`). No whitespace is
//! allowed inside a path. A path always starts with a field name, because a document is an
//! object.
//!
//! # What a path yields ([`Path::values`])
//!
//! Walking a document step by step, each step maps every value reached so far to:
//! - `.name`: the field `name` if the value is an object that has it; nothing otherwise (a
//!   missing field, or a value that is not an object: a field step on an array yields
//!   nothing, there is no implicit descent into arrays);
//! - `[]`: every element of the value, in order, if it is an array; nothing otherwise (an
//!   empty array yields nothing).
//!
//! So a path without `[]` yields at most one value, and when that value is an array it is
//! yielded whole, as one value. `null` is a value like any other: `{"a": null}` yields `null`
//! for `a`, while `{}` yields nothing.
//!
//! # Invariants
//! - [`Path`]'s `Display` is canonical (names quoted only when they are not identifiers, with
//!   `serde_json`'s escapes) and parses back to an equal path.
//! - Parsing never panics; errors give the column and what was expected.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{Error, Result};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// A field of an object.
    Field(String),
    /// Each element of an array (`[]`).
    Each,
}

/// A parsed path: a field name followed by field and `[]` steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    steps: Vec<Step>,
}

/// Whether `name` can be written without quotes.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const NAME: &str =
    "a field name (letters, digits and '_' not starting with a digit, or a \"quoted name\")";

impl Path {
    /// A path from its steps; it must start with a field.
    pub fn from_steps(steps: Vec<Step>) -> Result<Path> {
        match steps.first() {
            Some(Step::Field(_)) => Ok(Path { steps }),
            _ => Err(Error::Invalid(
                "a path starts with a field name (a document is an object)".into(),
            )),
        }
    }

    /// A one-step path to a top-level field (any name, quoted on display when needed).
    pub fn field(name: impl Into<String>) -> Path {
        Path {
            steps: vec![Step::Field(name.into())],
        }
    }

    /// Parse a whole text as a path.
    pub fn parse(text: &str) -> Result<Path> {
        let (path, end) = Path::parse_at(text, 0)?;
        if end != text.len() {
            return Err(Error::syntax(text, end, "'.', '[]' or the end of the path"));
        }
        Ok(path)
    }

    /// Parse the path starting at byte `start` of `text`, stopping at the first character
    /// that cannot continue it; returns the path and the byte offset where it ended. Error
    /// positions are relative to the whole `text`.
    pub fn parse_at(text: &str, start: usize) -> Result<(Path, usize)> {
        let mut steps = Vec::new();
        let (name, mut pos) = parse_name(text, start)?;
        steps.push(Step::Field(name));
        loop {
            match text.as_bytes().get(pos) {
                Some(b'.') => {
                    let (name, end) = parse_name(text, pos + 1)?;
                    steps.push(Step::Field(name));
                    pos = end;
                }
                Some(b'[') => {
                    if text.as_bytes().get(pos + 1) != Some(&b']') {
                        return Err(Error::syntax(
                            text,
                            pos + 1,
                            "']' ('[]' stands for each element of an array)",
                        ));
                    }
                    steps.push(Step::Each);
                    pos += 2;
                }
                _ => return Ok((Path { steps }, pos)),
            }
        }
    }

    /// The steps, first one always a field.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether the path has a `[]` step (and so may yield several values).
    pub fn has_each(&self) -> bool {
        self.steps.contains(&Step::Each)
    }

    /// Every value the path yields in `doc`, in document order (see the module docs).
    pub fn values<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        walk(&self.steps, doc, &mut out);
        out
    }
}

fn walk<'a>(steps: &[Step], v: &'a Value, out: &mut Vec<&'a Value>) {
    match steps.split_first() {
        None => out.push(v),
        Some((Step::Field(name), rest)) => {
            if let Some(child) = v.as_object().and_then(|m| m.get(name)) {
                walk(rest, child, out);
            }
        }
        Some((Step::Each, rest)) => {
            if let Some(items) = v.as_array() {
                for item in items {
                    walk(rest, item, out);
                }
            }
        }
    }
}

/// Parse one name (identifier or JSON string) at `start`; returns it and where it ended.
fn parse_name(text: &str, start: usize) -> Result<(String, usize)> {
    let rest = text.get(start..).unwrap_or("");
    match rest.chars().next() {
        Some('"') => {
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            match stream.next() {
                Some(Ok(name)) => Ok((name, start + stream.byte_offset())),
                Some(Err(e)) => Err(Error::syntax_message(
                    text,
                    start,
                    format!("invalid quoted field name: {e}"),
                )),
                None => Err(Error::syntax(text, start, NAME)),
            }
        }
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Ok((rest[..len].to_string(), start + len))
        }
        _ => Err(Error::syntax(text, start, NAME)),
    }
}

/// Write a field name canonically: bare if it is an identifier, else as a JSON string.
pub(crate) fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_identifier(name) {
        f.write_str(name)
    } else {
        // Serialising a string cannot fail.
        let quoted = serde_json::to_string(name).map_err(|_| fmt::Error)?;
        f.write_str(&quoted)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write_name(f, name)?;
                }
                Step::Each => f.write_str("[]")?,
            }
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = Error;

    fn from_str(s: &str) -> Result<Path> {
        Path::parse(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn parses_nested_fields_arrays_and_quoted_names() {
        assert_eq!(p("a.b.c").steps().len(), 3);
        assert_eq!(
            p("items[].sku").steps(),
            &[
                Step::Field("items".into()),
                Step::Each,
                Step::Field("sku".into())
            ]
        );
        assert_eq!(
            p(r#""first name".x"#).steps(),
            &[Step::Field("first name".into()), Step::Field("x".into())]
        );
        assert_eq!(
            p(r#"a."say \"hi\"\u00e9""#).steps()[1],
            Step::Field("say \"hi\"é".into())
        );
        assert_eq!(
            p("m[][]").steps(),
            &[Step::Field("m".into()), Step::Each, Step::Each]
        );
        assert_eq!(p("_x9").to_string(), "_x9");
        assert_eq!(p(r#""""#).steps(), &[Step::Field(String::new())]);
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = Path::parse("a..b").unwrap_err().to_string();
        assert!(e.starts_with("expected a field name"), "{e}");
        assert!(e.ends_with("found \".b\" at column 3"), "{e}");
        let e = Path::parse("tags[0]").unwrap_err().to_string();
        assert!(e.contains("expected ']'") && e.contains("column 6"), "{e}");
        let e = Path::parse("9lives").unwrap_err().to_string();
        assert!(e.contains("column 1"), "{e}");
        assert!(Path::parse("").is_err());
        assert!(Path::parse("[]").is_err());
        let e = Path::parse("a b").unwrap_err().to_string();
        assert!(
            e.contains("end of the path") && e.contains("column 2"),
            "{e}"
        );
        let e = Path::parse(r#""open"#).unwrap_err().to_string();
        assert!(e.contains("invalid quoted field name"), "{e}");
        let e = Path::parse("a.").unwrap_err().to_string();
        assert!(e.contains("found the end of the input at column 3"), "{e}");
        assert!(Path::from_steps(vec![Step::Each]).is_err());
        assert!(Path::from_steps(vec![]).is_err());
    }

    #[test]
    fn parse_at_stops_where_the_path_ends() {
        let text = "FIND c WHERE age>=3";
        let (path, end) = Path::parse_at(text, 13).unwrap();
        assert_eq!((path.to_string().as_str(), end), ("age", 16));
        let e = Path::parse_at("x (", 2).unwrap_err();
        assert!(matches!(e, Error::Syntax { column: 3, .. }));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(p(r#""a".b[]."c d""#).to_string(), r#"a.b[]."c d""#);
        assert_eq!(Path::field("a.b").to_string(), r#""a.b""#);
        assert_eq!(Path::field("tab\there").to_string(), r#""tab\there""#);
    }

    #[test]
    fn values_follow_the_documented_rules() {
        let doc = json!({
            "a": {"b": {"c": 1}},
            "tags": ["x", "y"],
            "items": [{"sku": "s1"}, {"other": 1}, {"sku": null}, 5],
            "n": null,
            "first name": "Ann",
            "m": [[1, 2], [], [3]]
        });
        let vals = |s: &str| p(s).values(&doc).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(vals("a.b.c"), vec![json!(1)]);
        assert_eq!(vals("a.b"), vec![json!({"c": 1})]);
        assert_eq!(
            vals("tags"),
            vec![json!(["x", "y"])],
            "an array is one value"
        );
        assert_eq!(vals("tags[]"), vec![json!("x"), json!("y")]);
        assert_eq!(vals("items[].sku"), vec![json!("s1"), json!(null)]);
        assert_eq!(
            vals("items.sku"),
            Vec::<Value>::new(),
            "no implicit descent"
        );
        assert_eq!(vals("n"), vec![json!(null)]);
        assert_eq!(vals("missing"), Vec::<Value>::new());
        assert_eq!(vals("a[]"), Vec::<Value>::new(), "[] on an object");
        assert_eq!(vals("n.x"), Vec::<Value>::new());
        assert_eq!(vals(r#""first name""#), vec![json!("Ann")]);
        assert_eq!(vals("m[][]"), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(vals("m[]"), vec![json!([1, 2]), json!([]), json!([3])]);
    }

    /// Field names that exercise quoting: identifiers, spaces, dots, quotes, unicode, empty.
    pub(crate) fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-c]{1,2}",
            1 => "[a-z_][a-z0-9_]{0,6}",
            1 => "[ a.\\[\\]\"\\\\é\t0-9]{0,5}",
        ]
    }

    /// Random paths over a small alphabet, so they often collide with documents.
    pub(crate) fn arb_path() -> impl Strategy<Value = Path> {
        (
            arb_name(),
            proptest::collection::vec(
                prop_oneof![arb_name().prop_map(Step::Field), Just(Step::Each)],
                0..4,
            ),
        )
            .prop_map(|(first, rest)| {
                let mut steps = vec![Step::Field(first)];
                steps.extend(rest);
                Path { steps }
            })
    }

    proptest! {
        #[test]
        fn display_round_trips(path in arb_path()) {
            let text = path.to_string();
            prop_assert_eq!(Path::parse(&text).unwrap(), path);
        }

        #[test]
        fn parsing_garbage_never_panics(s in "\\PC{0,12}") {
            if let Ok(path) = Path::parse(&s) {
                prop_assert_eq!(Path::parse(&path.to_string()).unwrap(), path);
            }
        }
    }
}
