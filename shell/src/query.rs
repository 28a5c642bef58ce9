//! Query statements: the one place that routes statement text to `ringdb-query`'s grammar
//! (FIND, COUNT, AGGREGATE) and runs what it parsed through the client.
//!
//! A FIND without LIMIT returns one page of 100 documents; with LIMIT n, up to n (read in
//! pages of at most 1000). Either way the output names the token that continues it
//! (`FIND ... PAGE <token>`) when more documents match.

use ringdb_client::{Client, Consistency, Document, QueryTrace, MAX_PAGE_SIZE};
use ringdb_query::statement::{self, Statement as Parsed};
use serde_json::{json, Value};

use crate::error::ShellError;
use crate::query_render as show;
use crate::render::Style;

/// Statement keywords this module takes (the rest of `ringdb-query`'s grammar, the index
/// statements, is not routed here yet).
pub const QUERY_KEYWORDS: [&str; 3] = ["FIND", "COUNT", "AGGREGATE"];

/// Documents a FIND without LIMIT returns.
const DEFAULT_LIMIT: u64 = 100;

/// A query statement, as `ringdb-query` parsed it.
pub type QueryStatement = Parsed;

/// Whether `text` is a statement this module runs.
pub fn handles(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase();
    QUERY_KEYWORDS.contains(&head.as_str()) && statement::is_query_statement(text)
}

/// Parse a query statement; errors name the column and what was expected.
pub fn parse(text: &str) -> Result<QueryStatement, ShellError> {
    let st = statement::parse(text).map_err(|e| {
        let usage = crate::help::usage(text.split_whitespace().next().unwrap_or(""));
        ShellError::Parse(format!("{e}; usage: {usage}"))
    })?;
    if let Some(level) = consistency_of(&st) {
        level
            .parse::<Consistency>()
            .map_err(|e| ShellError::Parse(e.message().to_string()))?;
    }
    Ok(st)
}

fn consistency_of(st: &QueryStatement) -> Option<&str> {
    match st {
        Parsed::Find(q) => q.consistency.as_deref(),
        Parsed::Count(q) => q.consistency.as_deref(),
        Parsed::Aggregate(q) => q.consistency.as_deref(),
        _ => None,
    }
}

/// What a query printed: the JSON line for scripts, the text for people, and the traces
/// of its requests (one per FIND page).
pub struct Shown {
    /// The contract's JSON object.
    pub json: Value,
    /// Text for people.
    pub table: String,
    /// Traces, when tracing is on.
    pub traces: Vec<QueryTrace>,
}

impl Shown {
    /// The JSON line, with `"trace"` added when tracing: one object for COUNT and
    /// AGGREGATE, an array of one object per page for FIND.
    pub fn json_line(&self, tracing: bool, find: bool) -> String {
        let mut line = self.json.clone();
        if let (true, Value::Object(m)) = (tracing, &mut line) {
            let traces: Vec<Value> = self.traces.iter().map(show::trace_json).collect();
            let t = if find {
                Value::Array(traces)
            } else {
                traces.into_iter().next().unwrap_or(Value::Null)
            };
            m.insert("trace".into(), t);
        }
        line.to_string()
    }
}

/// Run a parsed query statement at its level, or `session_level`.
pub async fn run(
    client: &Client,
    st: &QueryStatement,
    session_level: Consistency,
    tracing: bool,
    style: Style,
) -> Result<Shown, ShellError> {
    let level = |l: &Option<String>| -> Result<Consistency, ShellError> {
        match l {
            Some(l) => l
                .parse::<Consistency>()
                .map_err(|e| ShellError::Parse(e.message().to_string())),
            None => Ok(session_level),
        }
    };
    match st {
        Parsed::Find(q) => {
            let fields: Vec<String> = q.fields.iter().map(ToString::to_string).collect();
            let base = client
                .find(&q.collection)
                .conditions(&q.filter)
                .fields(&fields)
                .consistency(level(&q.consistency)?)
                .trace(tracing);
            let base = if q.allow_filtering {
                base.allow_filtering()
            } else {
                base
            };
            let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
            let (mut docs, mut traces): (Vec<Document>, Vec<QueryTrace>) = (Vec::new(), Vec::new());
            let mut next = q.page.clone();
            loop {
                let left = limit - docs.len() as u64;
                let mut page_q = base
                    .clone()
                    .page_size(left.min(MAX_PAGE_SIZE as u64) as u32);
                if let Some(t) = &next {
                    page_q = page_q.after(t.clone());
                }
                let page = page_q.page().await?;
                docs.extend(page.documents);
                traces.extend(page.trace);
                next = page.next;
                if next.is_none() || docs.len() as u64 >= limit {
                    break;
                }
            }
            // The statement to repeat with PAGE: the same one without its PAGE clause.
            let mut again = q.clone();
            again.page = None;
            let again = Parsed::Find(again).to_string();
            Ok(Shown {
                table: show::find_table(&again, &docs, next.as_deref(), style),
                json: show::find_json(&docs, next.as_deref()),
                traces,
            })
        }
        Parsed::Count(q) => {
            let c = client
                .count(&q.collection)
                .conditions(&q.filter)
                .consistency(level(&q.consistency)?)
                .trace(tracing);
            let c = if q.allow_filtering {
                c.allow_filtering()
            } else {
                c
            };
            let r = c.run().await?;
            Ok(Shown {
                table: format!("count: {}", r.count),
                json: json!({"count": r.count}),
                traces: r.trace.into_iter().collect(),
            })
        }
        Parsed::Aggregate(q) => {
            let a = client
                .aggregate(&q.collection)
                .spec(&q.spec)
                .conditions(&q.filter)
                .consistency(level(&q.consistency)?)
                .trace(tracing);
            let a = if q.allow_filtering {
                a.allow_filtering()
            } else {
                a
            };
            let r = a.run().await?;
            Ok(Shown {
                table: show::aggregate_table(&r, style),
                json: r.to_json(),
                traces: r.trace.clone().into_iter().collect(),
            })
        }
        other => Err(ShellError::Parse(format!(
            "{} is not run by this shell yet",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_query_statements_are_routed_here() {
        assert!(handles("FIND users WHERE age > 3 ALLOW FILTERING"));
        assert!(handles("count users"));
        assert!(handles("AGGREGATE users count(*) GROUP BY city"));
        assert!(!handles("CREATE COLLECTION users"));
        assert!(!handles("GET users alice"));
        assert!(!handles("FINDER x"));
        assert!(
            handles("count;"),
            "a bare statement is still a query (and an error)"
        );
    }

    #[test]
    fn parse_errors_say_where_and_how_to_write_it() {
        let e = parse("FIND users WHERE age >").unwrap_err().to_string();
        assert!(e.contains("column") && e.contains("usage: FIND"), "{e}");
        let e = parse("COUNT users CONSISTENCY MOST")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown consistency level"), "{e}");
        assert!(matches!(
            parse("FIND users LIMIT 5").unwrap(),
            Parsed::Find(_)
        ));
    }
}
