//! The client service's queries: `Find` (pages streamed until the limit or the end),
//! `Count` and `Aggregate`. Requests are checked here; bad input is `INVALID_ARGUMENT` with
//! a message naming what is wrong, before anything is read.
//!
//! Limits: a FIND without `limit` returns [`DEFAULT_LIMIT`] documents; pages hold at most
//! [`MAX_PAGE_SIZE`]; the stream sends pages until `limit` documents were sent or nothing
//! more matches, and the last page's token (when more match) continues in a new call. The
//! first page is computed before the stream starts, so an error in it is the call's status.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use ringdb_proto::v1::{
    AggregateGroup, AggregateRequest, AggregateResponse, CountRequest, CountResponse, FindDocument,
    FindPage, FindRequest,
};
use ringdb_query::AggregateSpec;
use ringdb_wire::query::{fields_from_proto, filter_from_proto, spec_from_proto};
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::Status;

use super::MAX_TIMEOUT;
use crate::coordinator::validate::context_token;
use crate::coordinator::Level;
use crate::query::aggregate::AggregateQuery;
use crate::query::find::{FindQuery, FoundPage};
use crate::query::{QueryEngine, DEFAULT_LIMIT, DEFAULT_QUERY_TIMEOUT, MAX_PAGE_SIZE};

/// The stream of FIND pages.
pub type FindStream = Pin<Box<dyn Stream<Item = Result<FindPage, Status>> + Send>>;

/// Pages computed ahead of the client reading them.
const PAGES_AHEAD: usize = 1;

/// A query's timeout: 0 means the query default; capped at `MAX_TIMEOUT`.
fn query_timeout(ms: u32) -> Duration {
    if ms == 0 {
        DEFAULT_QUERY_TIMEOUT
    } else {
        Duration::from_millis(ms as u64).min(MAX_TIMEOUT)
    }
}

fn page_to_proto(page: FoundPage, collection: &str, coordinator: &str) -> FindPage {
    FindPage {
        documents: page
            .documents
            .into_iter()
            .map(|d| FindDocument {
                context: context_token(collection, &d.key, &d.context),
                key: d.key,
                values: d.values,
            })
            .collect(),
        next_page_token: page.next.unwrap_or_default(),
        coordinator: coordinator.to_string(),
        trace: page.trace,
    }
}

/// Start a FIND: check it, compute the first page, and stream the rest.
pub async fn find(engine: Arc<QueryEngine>, r: FindRequest) -> Result<FindStream, Status> {
    let limit = match r.limit {
        None => DEFAULT_LIMIT,
        Some(0) => {
            return Err(Status::invalid_argument(
                "limit must be at least 1 (leave it out for the default of 100)",
            ))
        }
        Some(n) => n,
    };
    let page_size = match r.page_size as usize {
        0 => MAX_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let mut q = FindQuery {
        filter: filter_from_proto(&r.conditions)?,
        fields: fields_from_proto(&r.fields)?,
        collection: r.collection,
        allow_filtering: r.allow_filtering,
        level: Level::from_proto(r.consistency)?,
        timeout: query_timeout(r.timeout_ms),
        page_size: 0,
        trace: r.trace,
    };
    let size_for =
        move |sent: u64| page_size.min((limit - sent).min(MAX_PAGE_SIZE as u64) as usize);
    q.page_size = size_for(0);
    let token = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
    let first = engine.find(&q, token).await?;
    let me = engine.node_id().to_string();
    let mut sent = first.documents.len() as u64;
    let mut next = first.next.clone();
    let (tx, rx) = mpsc::channel(PAGES_AHEAD);
    let _ = tx.send(Ok(page_to_proto(first, &q.collection, &me))).await;
    tokio::spawn(async move {
        while let Some(token) = next.take().filter(|_| sent < limit) {
            q.page_size = size_for(sent);
            let page = engine.find(&q, Some(&token)).await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            sent += page.documents.len() as u64;
            next = page.next.clone();
            if tx
                .send(Ok(page_to_proto(page, &q.collection, &me)))
                .await
                .is_err()
            {
                return; // The client went away.
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// COUNT.
pub async fn count(engine: &QueryEngine, r: CountRequest) -> Result<CountResponse, Status> {
    let q = AggregateQuery {
        statement: "COUNT",
        filter: filter_from_proto(&r.conditions)?,
        collection: r.collection,
        spec: AggregateSpec::count_all(),
        allow_filtering: r.allow_filtering,
        level: Level::from_proto(r.consistency)?,
        timeout: query_timeout(r.timeout_ms),
        trace: r.trace,
    };
    let done = engine.aggregate(&q).await?;
    let count = done
        .partial
        .finish_count()
        .map_err(|e| Status::internal(e.to_string()))?
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(CountResponse {
        count,
        coordinator: engine.node_id().to_string(),
        trace: done.trace,
    })
}

/// AGGREGATE.
pub async fn aggregate(
    engine: &QueryEngine,
    r: AggregateRequest,
) -> Result<AggregateResponse, Status> {
    let q = AggregateQuery {
        statement: "AGGREGATE",
        filter: filter_from_proto(&r.conditions)?,
        spec: spec_from_proto(&r.aggregations, &r.group_by)?,
        collection: r.collection,
        allow_filtering: r.allow_filtering,
        level: Level::from_proto(r.consistency)?,
        timeout: query_timeout(r.timeout_ms),
        trace: r.trace,
    };
    let done = engine.aggregate(&q).await?;
    let out = done.partial.finish();
    let groups = out
        .get("groups")
        .and_then(Value::as_array)
        .map(|gs| {
            gs.iter()
                .map(|g| AggregateGroup {
                    group: g.get("group").unwrap_or(&Value::Null).to_string().into(),
                    values: g
                        .get("values")
                        .map_or_else(|| "{}".to_string(), Value::to_string)
                        .into(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(AggregateResponse {
        groups,
        coordinator: engine.node_id().to_string(),
        trace: done.trace,
    })
}
