//! Request traces as `TRACING ON` shows them: a compact indented block under a result for
//! people, a `"trace"` object on the result line for scripts.
//!
//! Invariants: like `render`, functions return text and print nothing; with colour off no
//! escape sequence is emitted; the JSON object always has the same keys (null when empty).

use ringdb_client::{Outcome, ReplicaEvent, Trace};
use serde_json::{json, Value};

use crate::render::{Color, Style};

/// Milliseconds with one decimal, as traces print latencies.
fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The first 8 hex digits of a digest: enough to tell replies apart at a glance.
fn short_digest(d: u64) -> String {
    format!("{d:016x}")[..8].to_string()
}

/// `a, b and c` for lists of node ids.
fn names(nodes: &[String]) -> String {
    match nodes {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The trace block shown under a result: a header line, one line per replica, a summary.
pub fn trace_table(t: &Trace, style: Style) -> String {
    let mut out = vec![header(t, style)];
    if let Some(read) = &t.read {
        out.push("  read first:".to_string());
        for line in body(read, style) {
            out.push(format!("  {line}"));
        }
    }
    if !t.events.is_empty() {
        out.extend(body(t, style));
    }
    if let Some(note) = &t.note {
        out.push(format!("  {note}"));
    }
    out.join("\n")
}

/// `trace: read · coordinator n2 · token T · replicas n2 n3 n1 (n1 down) · QUORUM needs 2`
fn header(t: &Trace, style: Style) -> String {
    let mut coordinator = format!("coordinator {}", t.coordinator);
    if let Some(to) = &t.forwarded_to {
        coordinator.push_str(&format!(" → forwarded to {to} (not a replica)"));
    }
    let replicas: Vec<String> = t
        .replicas
        .iter()
        .map(|r| {
            if r.up {
                r.node.clone()
            } else {
                style.paint(Color::Red, &r.node)
            }
        })
        .collect();
    let down: Vec<String> = t
        .replicas
        .iter()
        .filter(|r| !r.up)
        .map(|r| r.node.clone())
        .collect();
    let mut replicas = format!("replicas {}", replicas.join(" "));
    if !down.is_empty() {
        replicas.push_str(&format!(" ({} down)", names(&down)));
    }
    let level = t
        .consistency
        .map_or_else(|| "level".to_string(), |c| c.to_string());
    format!(
        "{} {} · {coordinator} · token {} · {replicas} · {level} needs {}",
        style.paint(Color::Bold, "trace:"),
        t.operation,
        t.token,
        t.required
    )
}

/// One line per replica event, aligned, then the summary; each indented two spaces.
fn body(t: &Trace, style: Style) -> Vec<String> {
    let reads = t.operation == "read";
    let node_w = t.events.iter().map(|e| e.node.len()).max().unwrap_or(0);
    let role_w = t
        .events
        .iter()
        .map(|e| e.role.as_str().len())
        .max()
        .unwrap_or(0);
    let latencies: Vec<String> = t
        .events
        .iter()
        .map(|e| e.latency.map_or_else(|| "—".to_string(), ms))
        .collect();
    let lat_w = latencies
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let out_w = t
        .events
        .iter()
        .map(|e| outcome_text(e.outcome).len())
        .max()
        .unwrap_or(0);
    let mut out: Vec<String> = t
        .events
        .iter()
        .zip(&latencies)
        .map(|(e, latency)| {
            let mut tail = String::new();
            if reads && e.outcome == Outcome::Ok {
                tail.push_str(&match e.digest {
                    Some(d) => format!("  digest {}", short_digest(d)),
                    None => "  holds nothing".to_string(),
                });
            }
            if !e.detail.is_empty() {
                tail.push_str(&format!("  {}", style.paint(Color::Dim, &e.detail)));
            }
            // Pad the outcome only when something follows it, so lines never end in blanks.
            let width = if tail.is_empty() { 0 } else { out_w };
            format!(
                "  {:<node_w$}  {:<role_w$}  {:>lat_w$}  {}{tail}",
                e.node,
                e.role.as_str(),
                latency,
                outcome(e, width, style)
            )
        })
        .collect();
    out.push(format!("  {}", summary(t, style)));
    out
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::NotAsked => "not asked",
        o => o.as_str(),
    }
}

/// The outcome padded to `width` (so details line up), coloured by how it went.
fn outcome(e: &ReplicaEvent, width: usize, style: Style) -> String {
    let text = &format!("{:<width$}", outcome_text(e.outcome));
    match e.outcome {
        Outcome::Ok => style.paint(Color::Green, text),
        Outcome::Failed | Outcome::Timeout => style.paint(Color::Red, text),
        Outcome::Pending => style.paint(Color::Yellow, text),
        Outcome::NotAsked | Outcome::Unknown => style.paint(Color::Dim, text),
    }
}

/// `replies agreed · no read repair · 2 answered (2 needed) in 2.1 ms`, or for writes
/// `hints stored for n1 · 2 acknowledged (2 needed) in 2.1 ms`.
fn summary(t: &Trace, style: Style) -> String {
    let mut parts = Vec::new();
    let answered = t.answered().len();
    if t.operation == "read" {
        parts.push(if t.replies_differed {
            style.paint(Color::Yellow, "replies differed")
        } else {
            "replies agreed".to_string()
        });
        parts.push(if t.read_repaired.is_empty() {
            "no read repair".to_string()
        } else {
            style.paint(
                Color::Yellow,
                &format!("read repair sent to {}", names(&t.read_repaired)),
            )
        });
        if t.speculative {
            parts.push("speculative retry: standby asked".to_string());
        }
        parts.push(format!(
            "{answered} answered ({} needed) in {}",
            t.required,
            ms(t.total)
        ));
    } else {
        parts.push(if t.hinted_for.is_empty() {
            "no hints".to_string()
        } else {
            style.paint(
                Color::Yellow,
                &format!("hints stored for {}", names(&t.hinted_for)),
            )
        });
        parts.push(format!(
            "{answered} acknowledged ({} needed) in {}",
            t.required,
            ms(t.total)
        ));
    }
    parts.join(" · ")
}

/// A result line for scripts with `"trace"` added last: the trace's object, or null for a
/// statement that was not coordinated (GET LOCAL).
pub fn json_line(mut line: Value, t: Option<&Trace>) -> String {
    if let Value::Object(m) = &mut line {
        m.insert("trace".into(), t.map_or(Value::Null, trace_json));
    }
    line.to_string()
}

/// The `"trace"` object of a JSON result line.
pub fn trace_json(t: &Trace) -> Value {
    let events: Vec<Value> = t
        .events
        .iter()
        .map(|e| {
            json!({
                "node": e.node,
                "role": e.role.as_str(),
                "outcome": e.outcome.as_str(),
                "ms": e.latency.map(|d| (d.as_micros() as f64) / 1000.0),
                "detail": e.detail,
                "digest": e.digest.map(|d| format!("{d:016x}")),
            })
        })
        .collect();
    let replicas: Vec<Value> = t
        .replicas
        .iter()
        .map(|r| json!({"node": r.node, "up": r.up}))
        .collect();
    json!({
        "operation": t.operation,
        "coordinator": t.coordinator,
        "token": t.token,
        "replicas": replicas,
        "consistency": t.consistency.map(|c| c.to_string()),
        "required": t.required,
        "events": events,
        "answered": t.answered(),
        "replies_differed": t.replies_differed,
        "read_repaired": t.read_repaired,
        "hinted_for": t.hinted_for,
        "speculative": t.speculative,
        "forwarded_from": t.forwarded_from,
        "forwarded_to": t.forwarded_to,
        "total_ms": (t.total.as_micros() as f64) / 1000.0,
        "read": t.read.as_deref().map(trace_json),
        "note": t.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdb_client::{Consistency, Role, TracedReplica};
    use std::time::Duration;

    fn ev(node: &str, role: Role, outcome: Outcome, us: Option<u64>, detail: &str) -> ReplicaEvent {
        ReplicaEvent {
            node: node.into(),
            role,
            outcome,
            latency: us.map(Duration::from_micros),
            detail: detail.into(),
            digest: (outcome == Outcome::Ok).then_some(0x3fa9_c2e1_0000_0001),
        }
    }

    fn read_trace() -> Trace {
        Trace {
            operation: "read".into(),
            coordinator: "n2".into(),
            token: -4411,
            replicas: ["n2", "n3", "n1"]
                .iter()
                .map(|n| TracedReplica {
                    node: n.to_string(),
                    up: *n != "n1",
                })
                .collect(),
            consistency: Some(Consistency::Quorum),
            required: 2,
            events: vec![
                ev("n2", Role::Local, Outcome::Ok, Some(300), ""),
                ev("n3", Role::Replica, Outcome::Ok, Some(1800), ""),
                ev("n1", Role::Replica, Outcome::NotAsked, None, "down"),
            ],
            replies_differed: false,
            read_repaired: vec![],
            hinted_for: vec![],
            speculative: false,
            forwarded_from: None,
            forwarded_to: None,
            total: Duration::from_micros(2100),
            read: None,
            note: None,
        }
    }

    #[test]
    fn a_read_trace_is_a_compact_aligned_block() {
        let text = trace_table(&read_trace(), Style::default());
        assert_eq!(
            text,
            "trace: read · coordinator n2 · token -4411 · replicas n2 n3 n1 (n1 down) · QUORUM needs 2\n\
             \x20 n2  local    0.3 ms  ok         digest 3fa9c2e1\n\
             \x20 n3  replica  1.8 ms  ok         digest 3fa9c2e1\n\
             \x20 n1  replica       —  not asked  down\n\
             \x20 replies agreed · no read repair · 2 answered (2 needed) in 2.1 ms"
        );
        assert!(!text.contains('\x1b'));
        let coloured = trace_table(&read_trace(), Style { color: true });
        assert!(coloured.contains("\x1b[32mok       \x1b[0m"), "{coloured}");
    }

    #[test]
    fn repairs_hints_forwarding_and_nested_reads_are_named() {
        let mut t = read_trace();
        t.replies_differed = true;
        t.read_repaired = vec!["n3".into()];
        t.speculative = true;
        let text = trace_table(&t, Style::default());
        assert!(text.contains("replies differed · read repair sent to n3 · speculative retry"));

        let mut w = read_trace();
        w.operation = "delete".into();
        w.forwarded_to = Some("n3".into());
        w.hinted_for = vec!["n1".into()];
        w.read = Some(Box::new(read_trace()));
        let text = trace_table(&w, Style::default());
        assert!(text.contains("coordinator n2 → forwarded to n3"), "{text}");
        assert!(text.contains("\n  read first:\n    n2  local"), "{text}");
        assert!(text.contains("hints stored for n1 · 2 acknowledged (2 needed)"));
    }

    #[test]
    fn the_json_object_has_every_key() {
        let v = trace_json(&read_trace());
        assert_eq!(v["coordinator"], "n2");
        assert_eq!(v["consistency"], "QUORUM");
        assert_eq!(v["answered"], json!(["n2", "n3"]));
        assert_eq!(v["events"][0]["ms"], 0.3);
        assert_eq!(v["events"][0]["digest"], "3fa9c2e100000001");
        assert_eq!(v["events"][2]["outcome"], "not-asked");
        assert_eq!(v["events"][2]["ms"], Value::Null);
        assert_eq!(v["replicas"][2], json!({"node": "n1", "up": false}));
        for key in [
            "read",
            "note",
            "forwarded_to",
            "read_repaired",
            "hinted_for",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
