//! Queries over HTTP: `POST /v1/{collection}/_find`, `_count` and `_aggregate`, with the
//! request as a JSON body. They become the gRPC requests and run through the same code, so
//! the checks, grants, limits and codes are the gRPC ones (docs/http.md, "Queries").

use futures::StreamExt;
use ringdb_proto::v1::{
    AggregateFunc, AggregateRequest, ConditionOp, CountRequest, FindRequest, QueryAggregation,
    QueryCondition,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tonic::Status;

use super::{document_body, HttpApi, Options};
use crate::query::MAX_PAGE_SIZE;

/// Largest query body: conditions and paths, never documents.
pub const MAX_QUERY_BODY_BYTES: usize = 64 * 1024;

/// One `where` entry: `{"path", "op", "value"}`, `{"path", "op": "IN", "values"}` or
/// `{"path", "op": "EXISTS"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    path: String,
    op: String,
    value: Option<Value>,
    values: Option<Vec<Value>>,
}

/// The body of `_find`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FindBody {
    #[serde(default, rename = "where")]
    conditions: Vec<Condition>,
    #[serde(default)]
    fields: Vec<String>,
    limit: Option<u64>,
    page: Option<String>,
    #[serde(default)]
    allow_filtering: bool,
}

/// The body of `_count`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CountBody {
    #[serde(default, rename = "where")]
    conditions: Vec<Condition>,
    #[serde(default)]
    allow_filtering: bool,
}

/// The body of `_aggregate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateBody {
    aggregations: Vec<String>,
    group_by: Option<String>,
    #[serde(default, rename = "where")]
    conditions: Vec<Condition>,
    #[serde(default)]
    allow_filtering: bool,
}

/// A JSON body, or `{}` when empty; `what` names the call in errors.
fn body<T: for<'de> Deserialize<'de> + Default>(raw: &[u8], what: &str) -> Result<T, Status> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(raw, what)
}

fn parse<T: for<'de> Deserialize<'de>>(raw: &[u8], what: &str) -> Result<T, Status> {
    serde_json::from_slice(raw)
        .map_err(|e| Status::invalid_argument(format!("the {what} body is not valid: {e}")))
}

/// A condition as the wire takes it.
fn condition(i: usize, c: Condition) -> Result<QueryCondition, Status> {
    let at = |m: String| Status::invalid_argument(format!("where[{i}]: {m}"));
    let op = match c.op.to_ascii_lowercase().as_str() {
        "=" | "==" | "eq" => ConditionOp::Eq,
        "!=" | "<>" | "ne" => ConditionOp::Ne,
        "<" | "lt" => ConditionOp::Lt,
        "<=" | "le" => ConditionOp::Le,
        ">" | "gt" => ConditionOp::Gt,
        ">=" | "ge" => ConditionOp::Ge,
        "in" => ConditionOp::In,
        "exists" => ConditionOp::Exists,
        other => {
            return Err(at(format!(
                "unknown op {other:?}; use =, !=, <, <=, >, >=, IN or EXISTS"
            )))
        }
    };
    let operands: Vec<Value> = match (op, c.value, c.values) {
        (ConditionOp::Exists, None, None) => Vec::new(),
        (ConditionOp::Exists, _, _) => return Err(at("EXISTS takes no value".into())),
        (ConditionOp::In, None, Some(values)) => values,
        (ConditionOp::In, _, _) => {
            return Err(at("IN takes \"values\": [...] (and no \"value\")".into()))
        }
        (_, Some(value), None) => vec![value],
        (_, _, _) => return Err(at(format!("{} takes one \"value\"", c.op))),
    };
    Ok(QueryCondition {
        path: c.path,
        op: op as i32,
        operands: operands
            .iter()
            .map(|v| {
                serde_json::to_vec(v)
                    .expect("a JSON value serializes")
                    .into()
            })
            .collect(),
    })
}

fn conditions(cs: Vec<Condition>) -> Result<Vec<QueryCondition>, Status> {
    cs.into_iter()
        .enumerate()
        .map(|(i, c)| condition(i, c))
        .collect()
}

/// `count(*)`, `avg(age)`, ... as the wire takes them.
fn aggregation(i: usize, text: &str) -> Result<QueryAggregation, Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "aggregations[{i}] is {text:?}; write fn(path) or count(*) with fn count, sum, avg, min or max"
        ))
    };
    let text = text.trim();
    let open = text.find('(').ok_or_else(bad)?;
    let inner = text[open + 1..].strip_suffix(')').ok_or_else(bad)?;
    let func = match text[..open].trim().to_ascii_lowercase().as_str() {
        "count" => AggregateFunc::Count,
        "sum" => AggregateFunc::Sum,
        "avg" => AggregateFunc::Avg,
        "min" => AggregateFunc::Min,
        "max" => AggregateFunc::Max,
        _ => return Err(bad()),
    };
    Ok(QueryAggregation {
        func: func as i32,
        path: inner.trim().to_string(),
    })
}

/// Options of a query: only `consistency` and `timeout_ms` apply.
pub fn check_options(o: &Options) -> Result<(), Status> {
    if o.durability != 0 || o.ttl_secs != 0 {
        return Err(Status::invalid_argument(
            "durability and ttl_secs are for writes; queries take consistency and timeout_ms",
        ));
    }
    Ok(())
}

/// `_find`: up to `limit` documents (at most one page of [`MAX_PAGE_SIZE`]) and the token
/// that continues after them.
pub async fn find(
    api: &HttpApi,
    who: &super::Principal,
    collection: String,
    o: Options,
    raw: &[u8],
) -> Result<String, Status> {
    let b: FindBody = body(raw, "_find")?;
    if let Some(n) = b.limit {
        if n == 0 || n > MAX_PAGE_SIZE as u64 {
            return Err(Status::invalid_argument(format!(
                "limit is {n}; it must be 1 to {MAX_PAGE_SIZE} (continue with \"page\": next)"
            )));
        }
    }
    let request = FindRequest {
        collection: collection.clone(),
        conditions: conditions(b.conditions)?,
        fields: b.fields,
        limit: Some(b.limit.unwrap_or(crate::query::DEFAULT_LIMIT)),
        page_size: 0,
        page_token: b.page.unwrap_or_default(),
        allow_filtering: b.allow_filtering,
        consistency: o.consistency,
        timeout_ms: o.timeout_ms,
        trace: false,
    };
    let mut pages = api.client.find_as(who, request).await?;
    let mut out = String::from("{\"documents\":[");
    let mut next = None;
    let mut first = true;
    while let Some(page) = pages.next().await {
        let page = page?;
        for d in &page.documents {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&document_body(&d.key, &d.values, &d.context));
        }
        next = (!page.next_page_token.is_empty()).then_some(page.next_page_token);
    }
    out.push_str("],\"next\":");
    out.push_str(&json!(next).to_string());
    out.push('}');
    Ok(out)
}

/// `_count`: `{"count": n}`.
pub async fn count(
    api: &HttpApi,
    who: &super::Principal,
    collection: String,
    o: Options,
    raw: &[u8],
) -> Result<String, Status> {
    let b: CountBody = body(raw, "_count")?;
    let request = CountRequest {
        collection,
        conditions: conditions(b.conditions)?,
        allow_filtering: b.allow_filtering,
        consistency: o.consistency,
        timeout_ms: o.timeout_ms,
        trace: false,
    };
    let r = api.client.count_as(who, request).await?;
    Ok(json!({"count": r.count}).to_string())
}

/// `_aggregate`: `{"groups": [{"group", "values"}, ...]}` as the shell prints it.
pub async fn aggregate(
    api: &HttpApi,
    who: &super::Principal,
    collection: String,
    o: Options,
    raw: &[u8],
) -> Result<String, Status> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Status::invalid_argument(
            "the _aggregate body needs \"aggregations\", e.g. {\"aggregations\": [\"count(*)\"]}",
        ));
    }
    let b: AggregateBody = parse(raw, "_aggregate")?;
    let aggregations = b
        .aggregations
        .iter()
        .enumerate()
        .map(|(i, a)| aggregation(i, a))
        .collect::<Result<Vec<_>, _>>()?;
    let request = AggregateRequest {
        collection,
        conditions: conditions(b.conditions)?,
        aggregations,
        group_by: b.group_by.unwrap_or_default(),
        allow_filtering: b.allow_filtering,
        consistency: o.consistency,
        timeout_ms: o.timeout_ms,
        trace: false,
    };
    let r = api.client.aggregate_as(who, request).await?;
    let mut groups = Vec::with_capacity(r.groups.len());
    for g in &r.groups {
        let parsed = |raw: &[u8]| {
            serde_json::from_slice::<Value>(raw)
                .map_err(|e| Status::internal(format!("an aggregate group is not JSON: {e}")))
        };
        groups.push(json!({"group": parsed(&g.group)?, "values": parsed(&g.values)?}));
    }
    Ok(json!({ "groups": groups }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(v: Value) -> Result<QueryCondition, Status> {
        condition(0, serde_json::from_value(v).unwrap())
    }

    #[test]
    fn conditions_take_every_op_and_refuse_wrong_operands() {
        let c = cond(json!({"path": "age", "op": ">=", "value": 30})).unwrap();
        assert_eq!(c.op, ConditionOp::Ge as i32);
        assert_eq!(c.operands, vec![bytes::Bytes::from_static(b"30")]);
        let c = cond(json!({"path": "c", "op": "in", "values": ["a", 1]})).unwrap();
        assert_eq!(c.operands.len(), 2);
        let c = cond(json!({"path": "c", "op": "EXISTS"})).unwrap();
        assert!(c.operands.is_empty());
        for bad in [
            json!({"path": "a", "op": "~", "value": 1}),
            json!({"path": "a", "op": "=", "values": [1]}),
            json!({"path": "a", "op": "=" }),
            json!({"path": "a", "op": "in", "value": 1}),
            json!({"path": "a", "op": "exists", "value": 1}),
        ] {
            let e = cond(bad.clone()).err().unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("where[0]"), "{}", e.message());
        }
    }

    #[test]
    fn aggregations_parse_fn_and_path() {
        let a = aggregation(0, " AVG( address.age ) ").unwrap();
        assert_eq!(a.func, AggregateFunc::Avg as i32);
        assert_eq!(a.path, "address.age");
        assert_eq!(aggregation(0, "count(*)").unwrap().path, "*");
        for bad in ["count", "median(x)", "sum(x", ""] {
            assert!(aggregation(0, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_take_empty_as_defaults() {
        let b: FindBody = body(b"  ", "_find").unwrap();
        assert!(b.conditions.is_empty() && b.limit.is_none());
        let e = body::<FindBody>(br#"{"wher": []}"#, "_find").err().unwrap();
        assert!(e.message().contains("wher"), "{}", e.message());
    }
}
