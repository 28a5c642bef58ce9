//! Query results and traces as the shell prints them: tables for people, and for scripts
//! exactly the JSON of the design contract: FIND `{"documents": [{"key", "values",
//! "context"}, ...], "next": TOKEN or null}`, COUNT `{"count": n}`, AGGREGATE
//! `{"groups": [{"group": v, "values": {...}}, ...]}`.
//!
//! Invariants: functions return text and print nothing; with colour off no escape sequence
//! is emitted; a trace object always has the same keys.

use ringdb_client::{AggregateResult, Document, QueryTrace};
use serde_json::{json, Value};

use crate::render::{table, Cell, Color, Style};

/// Milliseconds with one decimal.
fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// FIND for scripts.
pub fn find_json(docs: &[Document], next: Option<&str>) -> Value {
    let documents: Vec<Value> = docs
        .iter()
        .map(|d| json!({"key": d.key, "values": d.values, "context": d.context.token()}))
        .collect();
    json!({"documents": documents, "next": next})
}

/// FIND for people: one row per sibling (siblings numbered), then the count and how to go
/// on.
pub fn find_table(statement: &str, docs: &[Document], next: Option<&str>, style: Style) -> String {
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for d in docs {
        for (i, v) in d.values.iter().enumerate() {
            let key = if i == 0 { d.key.clone() } else { String::new() };
            let text = match d.values.len() {
                1 => v.to_string(),
                _ => format!("({}) {v}", i + 1),
            };
            rows.push(vec![Cell::from(key), Cell::from(text)]);
        }
    }
    let mut out = Vec::new();
    if !rows.is_empty() {
        out.push(table(&["KEY", "DOCUMENT"], &[false, false], &rows, style));
    }
    let siblings = docs.iter().filter(|d| d.values.len() > 1).count();
    let mut summary = match docs.len() {
        1 => "1 document".to_string(),
        n => format!("{n} documents"),
    };
    if siblings > 0 {
        summary.push_str(&format!(
            " ({siblings} with siblings: GET one to see its context and RESOLVE it)"
        ));
    }
    out.push(style.paint(Color::Dim, &summary));
    if let Some(t) = next {
        out.push(format!("more: {statement} PAGE {t}"));
    }
    out.join("\n")
}

/// AGGREGATE for people: one row per group, a column per aggregation.
pub fn aggregate_table(r: &AggregateResult, style: Style) -> String {
    let names: Vec<String> = r
        .groups
        .first()
        .map(|g| g.values.keys().cloned().collect())
        .unwrap_or_default();
    let mut headers = vec!["GROUP"];
    headers.extend(names.iter().map(String::as_str));
    let right: Vec<bool> = headers.iter().enumerate().map(|(i, _)| i > 0).collect();
    let rows: Vec<Vec<Cell>> = r
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![Cell::from(g.group.to_string())];
            row.extend(
                names
                    .iter()
                    .map(|n| Cell::from(g.values.get(n).unwrap_or(&Value::Null).to_string())),
            );
            row
        })
        .collect();
    if rows.is_empty() {
        return style.paint(Color::Dim, "no groups (no matching documents)");
    }
    table(&headers, &right, &rows, style)
}

/// A query's trace for people: the plan, one line per replica scan, the merge.
pub fn trace_table(t: &QueryTrace, style: Style) -> String {
    let level = t
        .consistency
        .map_or_else(|| "level".to_string(), |c| c.to_string());
    let mut out = vec![format!(
        "{} {} · coordinator {} · {level}: {} per token range, {} range{} · {} · order: {}",
        style.paint(Color::Bold, "trace:"),
        t.operation,
        t.coordinator,
        match t.required {
            1 => "1 replica".to_string(),
            n => format!("{n} replicas"),
        },
        t.ranges,
        if t.ranges == 1 { "" } else { "s" },
        t.source,
        t.order
    )];
    let rows: Vec<Vec<Cell>> = t
        .scans
        .iter()
        .map(|s| {
            let outcome = match s.outcome {
                ringdb_client::Outcome::Ok => Cell::colored("ok", Color::Green),
                other => Cell::colored(other.as_str(), Color::Red),
            };
            vec![
                Cell::from(s.node.clone()),
                Cell::from(s.round.to_string()),
                Cell::from(s.ranges.to_string()),
                outcome,
                Cell::from(ms(s.latency)),
                Cell::from(s.scanned.to_string()),
                Cell::from(s.candidates.to_string()),
                Cell::from(if s.stopped { "stopped" } else { "" }),
                Cell::from(s.source.clone()),
                Cell::from(s.detail.clone()),
            ]
        })
        .collect();
    let matched = if t.pushed_down {
        "MATCHED"
    } else {
        "CANDIDATES"
    };
    let scans = table(
        &[
            "NODE", "ROUND", "RANGES", "OUTCOME", "LATENCY", "SCANNED", matched, "", "SOURCE", "",
        ],
        &[
            false, true, true, false, true, true, true, false, false, false,
        ],
        &rows,
        style,
    );
    out.extend(scans.lines().map(|l| format!("  {l}")));
    let merge = if t.pushed_down {
        "aggregated on the replicas (partial states merged, no documents shipped)".to_string()
    } else {
        let mut m = format!(
            "{} candidates, {} re-read, {} re-checked, {} dropped",
            t.candidates, t.reread, t.rechecked, t.dropped
        );
        if t.repaired > 0 {
            m.push_str(&format!(
                ", {} repaired ({})",
                t.repaired,
                t.repaired_nodes.join(", ")
            ));
        }
        m
    };
    out.push(format!(
        "  {merge} · {} round{} · {}",
        t.rounds,
        if t.rounds == 1 { "" } else { "s" },
        ms(t.total)
    ));
    out.join("\n")
}

/// A query's trace for scripts.
pub fn trace_json(t: &QueryTrace) -> Value {
    let scans: Vec<Value> = t
        .scans
        .iter()
        .map(|s| {
            json!({
                "node": s.node,
                "round": s.round,
                "ranges": s.ranges,
                "outcome": s.outcome.as_str(),
                "ms": (s.latency.as_micros() as f64) / 1000.0,
                "scanned": s.scanned,
                "candidates": s.candidates,
                "stopped": s.stopped,
                "source": s.source,
                "detail": s.detail,
            })
        })
        .collect();
    json!({
        "operation": t.operation,
        "coordinator": t.coordinator,
        "consistency": t.consistency.map(|c| c.to_string()),
        "required": t.required,
        "ranges": t.ranges,
        "source": t.source,
        "order": t.order,
        "scans": scans,
        "rounds": t.rounds,
        "candidates": t.candidates,
        "reread": t.reread,
        "rechecked": t.rechecked,
        "dropped": t.dropped,
        "repaired": t.repaired,
        "repaired_nodes": t.repaired_nodes,
        "pushed_down": t.pushed_down,
        "total_ms": (t.total.as_micros() as f64) / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdb_client::{Context, Group};

    #[test]
    fn find_json_is_the_contract_shape() {
        let docs = vec![Document {
            key: "k".into(),
            values: vec![json!({"a": 1}), json!({"a": 2})],
            context: Context::from_token("CTX"),
        }];
        assert_eq!(
            find_json(&docs, Some("T")),
            json!({"documents": [{"key": "k", "values": [{"a": 1}, {"a": 2}], "context": "CTX"}], "next": "T"})
        );
        assert_eq!(find_json(&[], None), json!({"documents": [], "next": null}));
        let t = find_table("FIND c", &docs, Some("T"), Style::default());
        assert!(
            t.contains("(2) {\"a\":2}") && t.contains("FIND c PAGE T"),
            "{t}"
        );
        assert!(t.contains("1 with siblings"), "{t}");
    }

    #[test]
    fn aggregate_tables_have_a_column_per_aggregation() {
        let r = AggregateResult {
            groups: vec![Group {
                group: json!("x"),
                values: serde_json::from_value(json!({"count(*)": 2, "avg(a)": 1.5})).unwrap(),
            }],
            coordinator: None,
            trace: None,
        };
        let t = aggregate_table(&r, Style::default());
        assert!(
            t.starts_with("GROUP") && t.contains("count(*)") && t.contains("1.5"),
            "{t}"
        );
    }
}
