//! Turning results into text: tables and pretty JSON for people (coloured on a terminal),
//! one JSON object per line for scripts.
//!
//! Invariants: every function returns text and prints nothing, so output is testable; with
//! colour off no escape sequence is ever emitted; JSON-format lines are exactly the shapes
//! in design.md (fields are only ever added).

use ringdb_client::{ClusterStatus, Collection, GetResult, RingInfo, WriteResult};
use serde_json::{json, Value};

/// Whether to colour output: on only for a terminal with `NO_COLOR` unset or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Emit ANSI colour sequences.
    pub color: bool,
}

/// The colours the shell uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Object keys.
    Blue,
    /// Strings, UP.
    Green,
    /// Numbers, sibling numbers.
    Yellow,
    /// true / false / null.
    Magenta,
    /// Errors, DOWN.
    Red,
    /// Context tokens and other secondary text.
    Dim,
    /// Table headers.
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Blue => "34",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Magenta => "35",
            Color::Red => "1;31",
            Color::Dim => "2",
            Color::Bold => "1",
        }
    }
}

impl Style {
    /// Colour when `is_terminal` and the `NO_COLOR` convention (no-color.org) allows.
    pub fn detect(is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: is_terminal && !no_color,
        }
    }

    /// `text` in `color` if colour is on.
    pub fn paint(&self, color: Color, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", color.code())
        } else {
            text.to_string()
        }
    }
}

/// JSON laid out like `serde_json::to_string_pretty`, coloured by kind when colour is on.
pub fn pretty(v: &Value, style: Style) -> String {
    let mut out = String::new();
    write_pretty(&mut out, v, style, 0);
    out
}

fn write_pretty(out: &mut String, v: &Value, style: Style, indent: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) => {
            out.push_str("{\n");
            for (i, (k, val)) in m.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&style.paint(Color::Blue, &Value::String(k.clone()).to_string()));
                out.push_str(": ");
                write_pretty(out, val, style, indent + 1);
                out.push_str(if i + 1 < m.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, val) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_pretty(out, val, style, indent + 1);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::String(_) => out.push_str(&style.paint(Color::Green, &v.to_string())),
        Value::Number(_) => out.push_str(&style.paint(Color::Yellow, &v.to_string())),
        Value::Bool(_) | Value::Null => out.push_str(&style.paint(Color::Magenta, &v.to_string())),
    }
}

/// One table cell: plain text (for width) and an optional colour.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    /// A cell shown in `color`.
    pub fn colored(text: impl Into<String>, color: Color) -> Self {
        Cell {
            text: text.into(),
            color: Some(color),
        }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(t: T) -> Self {
        Cell {
            text: t.into(),
            color: None,
        }
    }
}

/// Aligned columns; `right[i]` right-aligns column i (numbers). Widths ignore colour.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<Cell>], style: Style) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(c.text.chars().count());
        }
    }
    let line = |cells: Vec<Cell>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .take(widths.len())
            .map(|(i, c)| {
                let w = widths[i];
                let padded = if right.get(i).copied().unwrap_or(false) {
                    format!("{:>w$}", c.text)
                } else {
                    format!("{:<w$}", c.text)
                };
                match c.color {
                    Some(color) => style.paint(color, &padded),
                    None => padded,
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(
        headers
            .iter()
            .map(|h| Cell::colored(*h, Color::Bold))
            .collect(),
    )];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// `1.5 KiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A GET for people: the document, or siblings numbered `(1)`, `(2)`, ..., then the context.
pub fn get_table(collection: &str, key: &str, r: &GetResult, style: Style) -> String {
    let mut out = Vec::new();
    match r.values.len() {
        0 => out.push(format!("{collection}/{key}: not found")),
        1 => out.push(pretty(&r.values[0], style)),
        n => {
            out.push(style.paint(
                Color::Yellow,
                &format!("{collection}/{key}: {n} siblings (concurrent writes; none is lost)"),
            ));
            for (i, v) in r.values.iter().enumerate() {
                let number = style.paint(Color::Yellow, &format!("({})", i + 1));
                out.push(format!("{number} {}", pretty(v, style)));
            }
        }
    }
    if !r.context.is_empty() {
        out.push(style.paint(Color::Dim, &format!("context: {}", r.context)));
    }
    if r.values.len() > 1 {
        out.push(format!(
            "resolve: RESOLVE {} {} <merged json>   (or PUT ... CONTEXT <context>)",
            quote_name(collection),
            quote_name(key)
        ));
    }
    out.join("\n")
}

/// A name as the user should type it back: bare, or a JSON string when it has spaces or
/// could be read as something else.
pub fn quote_name(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(['{', '[', '"'])
        && !name.chars().any(|c| c.is_whitespace() || c == ';');
    if plain {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// A GET for scripts: `{"key": K, "values": [...], "context": TOKEN}`.
pub fn get_json(key: &str, r: &GetResult) -> String {
    get_value(key, r).to_string()
}

/// [`get_json`]'s object, for adding to (a trace).
pub fn get_value(key: &str, r: &GetResult) -> Value {
    json!({"key": key, "values": r.values, "context": r.context.token()})
}

/// A PUT / DELETE / RESOLVE for people; `note` says what kind of write it was.
pub fn write_table(r: &WriteResult, note: Option<&str>, style: Style) -> String {
    let mut out = vec![if r.acknowledged_by.is_empty() {
        "ok (nothing to do)".to_string()
    } else {
        format!(
            "{} (acknowledged by {})",
            style.paint(Color::Green, "ok"),
            r.acknowledged_by.join(", ")
        )
    }];
    if let Some(n) = note {
        out[0].push_str(&format!("; {n}"));
    }
    if !r.context.is_empty() {
        out.push(style.paint(Color::Dim, &format!("context: {}", r.context)));
    }
    out.join("\n")
}

/// A write for scripts: `{"ok": true, "context": TOKEN}`.
pub fn write_json(r: &WriteResult) -> String {
    write_value(r).to_string()
}

/// [`write_json`]'s object, for adding to (a trace).
pub fn write_value(r: &WriteResult) -> Value {
    json!({"ok": true, "context": r.context.token()})
}

/// STATUS for people; the ZONE column appears when any node has a zone.
pub fn status_table(s: &ClusterStatus, style: Style) -> String {
    let zones = s.nodes.iter().any(|n| !n.zone.is_empty());
    let mut headers = vec!["ID", "ADDRESS"];
    if zones {
        headers.push("ZONE");
    }
    headers.extend(["STATE", "STATUS", "OWNS", "KEYS", "LOAD", "HINTS"]);
    let mut right = vec![false; headers.len() - 4];
    right.extend([true; 4]);
    let rows: Vec<Vec<Cell>> = s
        .nodes
        .iter()
        .map(|n| {
            let mut row: Vec<Cell> = vec![n.id.clone().into(), n.address.clone().into()];
            if zones {
                row.push(n.zone.clone().into());
            }
            row.push(if n.up {
                Cell::colored("UP", Color::Green)
            } else {
                Cell::colored("DOWN", Color::Red)
            });
            row.push(n.status.clone().into());
            row.push(format!("{:.1}%", n.ownership * 100.0).into());
            row.push(n.keys.to_string().into());
            row.push(human_bytes(n.bytes).into());
            row.push(n.hints.to_string().into());
            row
        })
        .collect();
    let mut out = format!(
        "Cluster as seen by {} (replication factor {})\n{}",
        s.node_id,
        s.replication_factor,
        table(&headers, &right, &rows, style)
    );
    if !s.serving {
        out.push_str(&format!(
            "\n{} does not serve client requests yet: {}",
            s.node_id, s.not_serving_reason
        ));
    }
    out
}

/// STATUS for scripts: `{"nodes": [{"id", "address", "up", "status", "ownership", "keys",
/// "bytes", "hints", "zone"}, ...], "serving": bool}`.
pub fn status_json(s: &ClusterStatus) -> String {
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .map(|n| {
            json!({"id": n.id, "address": n.address, "up": n.up, "status": n.status,
                   "ownership": n.ownership, "keys": n.keys, "bytes": n.bytes, "hints": n.hints,
                   "zone": n.zone})
        })
        .collect();
    json!({"nodes": nodes, "serving": s.serving}).to_string()
}

/// RING for people.
pub fn ring_table(r: &RingInfo, style: Style) -> String {
    let rows: Vec<Vec<Cell>> = r
        .tokens
        .iter()
        .map(|(t, n)| vec![t.to_string().into(), n.clone().into()])
        .collect();
    format!(
        "{}\n{} tokens, replication factor {}",
        table(&["TOKEN", "NODE"], &[true, false], &rows, style),
        r.tokens.len(),
        r.replication_factor
    )
}

/// RING for scripts.
pub fn ring_json(r: &RingInfo) -> String {
    let tokens: Vec<Value> = r
        .tokens
        .iter()
        .map(|(t, n)| json!({"token": t, "node": n}))
        .collect();
    json!({"replication_factor": r.replication_factor, "tokens": tokens}).to_string()
}

/// DESCRIBE COLLECTIONS for people: name and N (the default N for those created with 0).
pub fn collections_table(cs: &[Collection], default_n: u32, style: Style) -> String {
    let mut sorted: Vec<&Collection> = cs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<Cell>> = sorted
        .iter()
        .map(|c| {
            let n = if c.replication == 0 {
                format!("{default_n} (default)")
            } else {
                c.replication.to_string()
            };
            vec![c.name.clone().into(), n.into()]
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no collections yet (the first PUT to a name creates it)".to_string()
    } else {
        table(&["COLLECTION", "N"], &[false, false], &rows, style)
    };
    out.push_str(&format!("\ndefault replication factor: {default_n}"));
    out
}

/// DESCRIBE COLLECTIONS for scripts.
pub fn collections_json(cs: &[Collection], default_n: u32) -> String {
    let list: Vec<Value> = cs
        .iter()
        .map(|c| json!({"name": c.name, "replication": c.replication}))
        .collect();
    json!({"collections": list, "default_replication": default_n}).to_string()
}

/// An error for scripts: `{"error": {"code": C, "message": M}}`.
pub fn error_json(code: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdb_client::Context;

    fn result(values: Vec<Value>, ctx: &str) -> GetResult {
        GetResult {
            values,
            context: Context::from_token(ctx),
            coordinator: None,
            trace: None,
        }
    }

    #[test]
    fn pretty_matches_serde_layout_without_colour() {
        let v = json!({"a": [1, {"b": null}], "s": "x\"y", "e": {}, "l": [], "t": true});
        assert_eq!(
            pretty(&v, Style::default()),
            serde_json::to_string_pretty(&v).unwrap()
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let v = json!({"name": "Al", "n": 3, "ok": false});
        let plain = pretty(&v, Style { color: false });
        assert!(!plain.contains('\x1b'));
        let coloured = pretty(&v, Style { color: true });
        assert!(coloured.contains("\x1b[34m\"name\"\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[32m\"Al\"\x1b[0m"));
        assert!(coloured.contains("\x1b[33m3\x1b[0m"));
        assert!(coloured.contains("\x1b[35mfalse\x1b[0m"));
    }

    #[test]
    fn siblings_are_numbered_with_the_context() {
        let r = result(vec![json!({"v": 1}), json!({"v": 2})], "CTX");
        let text = get_table("docs", "k", &r, Style::default());
        assert!(text.starts_with("docs/k: 2 siblings"), "{text}");
        assert!(text.contains("(1) {\n  \"v\": 1\n}"), "{text}");
        assert!(text.contains("(2) {\n  \"v\": 2\n}"), "{text}");
        assert!(text.contains("context: CTX"));
        assert!(text.contains("RESOLVE docs k <merged json>"));
        let one = get_table(
            "docs",
            "k",
            &result(vec![json!({"v": 1})], "C"),
            Style::default(),
        );
        assert_eq!(one, "{\n  \"v\": 1\n}\ncontext: C");
        let none = get_table("docs", "k", &result(vec![], ""), Style::default());
        assert_eq!(none, "docs/k: not found");
        let spaced = get_table(
            "docs",
            "a b",
            &result(vec![json!({}), json!({})], "C"),
            Style::default(),
        );
        assert!(spaced.contains("RESOLVE docs \"a b\""), "{spaced}");
    }

    #[test]
    fn json_lines_follow_the_contract() {
        let r = result(vec![json!({"v": 1})], "C");
        assert_eq!(
            get_json("k", &r),
            r#"{"key":"k","values":[{"v":1}],"context":"C"}"#
        );
        assert_eq!(
            get_json("nobody", &result(vec![], "")),
            r#"{"key":"nobody","values":[],"context":""}"#
        );
        let w = WriteResult {
            context: Context::from_token("W"),
            acknowledged_by: vec!["n1".into()],
            hinted_for: Vec::new(),
            coordinator: None,
            trace: None,
        };
        assert_eq!(write_json(&w), r#"{"ok":true,"context":"W"}"#);
        assert_eq!(
            error_json("UNAVAILABLE", "m"),
            r#"{"error":{"code":"UNAVAILABLE","message":"m"}}"#
        );
        let cs = vec![Collection {
            name: "docs".into(),
            replication: 2,
            default_ttl: None,
        }];
        assert_eq!(
            collections_json(&cs, 3),
            r#"{"collections":[{"name":"docs","replication":2}],"default_replication":3}"#
        );
    }

    #[test]
    fn status_shows_zones_only_when_nodes_have_them() {
        use ringdb_proto::v1::NodeStatus;
        let node = |id: &str, zone: &str, up: bool| NodeStatus {
            id: id.into(),
            address: format!("127.0.0.1:74{}", &id[1..]),
            up,
            status: "NORMAL".into(),
            ownership: 0.5,
            keys: 10,
            bytes: 2048,
            hints: 1,
            zone: zone.into(),
        };
        let mut s = ClusterStatus {
            node_id: "n1".into(),
            replication_factor: 3,
            nodes: vec![node("n1", "", true), node("n2", "", false)],
            serving: true,
            not_serving_reason: String::new(),
        };
        let t = status_table(&s, Style::default());
        assert_eq!(
            t,
            "Cluster as seen by n1 (replication factor 3)\n\
             ID  ADDRESS        STATE  STATUS   OWNS  KEYS     LOAD  HINTS\n\
             n1  127.0.0.1:741  UP     NORMAL  50.0%    10  2.0 KiB      1\n\
             n2  127.0.0.1:742  DOWN   NORMAL  50.0%    10  2.0 KiB      1"
        );
        s.nodes[0].zone = "eu-1a".into();
        let t = status_table(&s, Style::default());
        assert!(t.contains("ID  ADDRESS        ZONE   STATE"), "{t}");
        assert!(t.contains("n1  127.0.0.1:741  eu-1a  UP"), "{t}");
        let j: Value = serde_json::from_str(&status_json(&s)).unwrap();
        assert_eq!(j["nodes"][0]["zone"], "eu-1a");
        assert_eq!(j["nodes"][1]["up"], false);
    }

    #[test]
    fn tables_align_and_ignore_colour_for_width() {
        let rows = vec![
            vec![
                Cell::from("a"),
                Cell::colored("UP", Color::Green),
                Cell::from("1"),
            ],
            vec![
                Cell::from("long-name"),
                Cell::colored("DOWN", Color::Red),
                Cell::from("100"),
            ],
        ];
        let t = table(
            &["ID", "STATE", "N"],
            &[false, false, true],
            &rows,
            Style::default(),
        );
        assert_eq!(
            t,
            "ID         STATE    N\na          UP       1\nlong-name  DOWN   100"
        );
        let c = table(
            &["ID", "STATE", "N"],
            &[false, false, true],
            &rows,
            Style { color: true },
        );
        assert!(c.contains("\x1b[32mUP   \x1b[0m"), "{c:?}");
        let cs = vec![
            Collection {
                name: "b".into(),
                replication: 0,
                default_ttl: None,
            },
            Collection {
                name: "a".into(),
                replication: 2,
                default_ttl: None,
            },
        ];
        let d = collections_table(&cs, 3, Style::default());
        assert_eq!(
            d,
            "COLLECTION  N\na           2\nb           3 (default)\ndefault replication factor: 3"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
