//! What queries return: FIND's documents and pages, COUNT's number, AGGREGATE's groups.

use ringdb_proto::v1 as pb;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::options::Context;
use crate::query_trace::QueryTrace;
use crate::results::named;

/// One matching document: every live sibling and the context that covers them.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The key.
    pub key: String,
    /// Every live sibling (projected to the query's fields, if it named any).
    pub values: Vec<Value>,
    /// Pass to a write of this key to supersede exactly these siblings.
    pub context: Context,
}

/// One page of a FIND.
#[derive(Debug, Clone)]
pub struct Page {
    /// The documents, in the query's fixed order.
    pub documents: Vec<Document>,
    /// Continues after this page ([`Find::after`](crate::Find::after)); `None` when nothing more matches.
    pub next: Option<String>,
    /// The node that coordinated the page.
    pub coordinator: Option<String>,
    /// What happened inside the cluster, when the query asked.
    pub trace: Option<QueryTrace>,
}

/// A COUNT's answer.
#[derive(Debug, Clone)]
pub struct CountResult {
    /// How many documents the same FIND would return.
    pub count: u64,
    /// The node that coordinated it.
    pub coordinator: Option<String>,
    /// What happened inside the cluster, when the query asked.
    pub trace: Option<QueryTrace>,
}

/// One group of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group's value (`null` without GROUP BY, or for documents without the path).
    pub group: Value,
    /// Each aggregation's name (`count(*)`, `avg(age)`) and value, in the order asked.
    pub values: serde_json::Map<String, Value>,
}

/// An AGGREGATE's answer.
#[derive(Debug, Clone)]
pub struct AggregateResult {
    /// The groups, sorted by the typed order of their values.
    pub groups: Vec<Group>,
    /// The node that coordinated it.
    pub coordinator: Option<String>,
    /// What happened inside the cluster, when the query asked.
    pub trace: Option<QueryTrace>,
}

impl AggregateResult {
    /// `{"groups": [{"group": ..., "values": {...}}, ...]}`, as the shell prints it.
    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| serde_json::json!({"group": g.group, "values": g.values}))
            .collect();
        serde_json::json!({ "groups": groups })
    }
}

/// A FIND page from the wire; a value that is not JSON is a [`Error::Document`].
pub(crate) fn page_from_proto(p: pb::FindPage) -> Result<Page> {
    let mut documents = Vec::with_capacity(p.documents.len());
    for d in p.documents {
        let values = d
            .values
            .iter()
            .map(|v| serde_json::from_slice::<Value>(v))
            .collect::<std::result::Result<Vec<Value>, _>>()
            .map_err(|e| Error::Document(format!("document {}: {e}", d.key)))?;
        documents.push(Document {
            key: d.key,
            values,
            context: Context::from_token(d.context),
        });
    }
    Ok(Page {
        documents,
        next: Some(p.next_page_token).filter(|t| !t.is_empty()),
        coordinator: named(p.coordinator),
        trace: p.trace.map(QueryTrace::from_proto),
    })
}
