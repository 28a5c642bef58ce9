//! The HTTP/JSON side (`--http-listen`, a port of its own): documents by key for `curl` and
//! any HTTP client. It calls the same code as the gRPC client service, so validation,
//! grants, semantics and error codes are the same; codes become HTTP statuses here.
//!
//! - `GET /v1/{collection}/{key}[?consistency=L]` → `{"key", "values", "context"}` (404 with
//!   the same shape when not found);
//! - `PUT /v1/{collection}/{key}` with the document as body and the context in
//!   `X-RingDB-Context` → `{"context", "acknowledged_by", "hinted_for"}`; `DELETE` likewise;
//! - `POST /v1/{collection}/_find`, `_count`, `_aggregate` with a JSON body (`queries`);
//! - `GET /health` → 200 while the node takes client requests, else 503.

mod queries;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ringdb_proto::v1::{ConsistencyLevel, DeleteRequest, Durability, GetRequest, PutRequest};
use serde_json::{json, Value};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::auth::{Auth, Principal};
use super::client::ClientService;
use super::wire::WireLimits;
use crate::cluster::Membership;

/// Header carrying a causal context, both ways.
pub const CONTEXT_HEADER: &str = "x-ringdb-context";

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpApi {
    client: ClientService,
    auth: Arc<Auth>,
    membership: Arc<Membership>,
    limits: WireLimits,
}

impl HttpApi {
    /// The HTTP side of a node whose gRPC client service is `client`.
    pub fn new(
        client: ClientService,
        auth: Arc<Auth>,
        membership: Arc<Membership>,
        limits: WireLimits,
    ) -> Self {
        HttpApi {
            client,
            auth,
            membership,
            limits,
        }
    }

    /// The routes, ready to serve.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/v1/{collection}/{*key}",
                get(get_document)
                    .put(put_document)
                    .delete(delete_document)
                    .post(post_query),
            )
            .route("/health", get(health))
            .fallback(|uri: Uri| async move {
                error(Status::not_found(format!(
                    "no such endpoint: {}; see docs/http.md",
                    uri.path()
                )))
            })
            .with_state(self)
    }

    /// The caller, from the `Authorization: Bearer` header as gRPC takes it.
    fn who(&self, headers: &HeaderMap) -> Result<Principal, Status> {
        self.auth
            .authenticate(&MetadataMap::from_headers(headers.clone()))
    }
}

/// The HTTP status for a gRPC code, as docs/http.md lists them.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A gRPC code's name as the wire spells it (`UNAVAILABLE`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `{"error": {"code", "message"}}` with the matching HTTP status.
fn error(status: Status) -> Response {
    let body = json!({"error": {"code": code_name(status.code()), "message": status.message()}});
    let mut r = (http_status(status.code()), body.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON body with `status`.
fn json_response(status: StatusCode, body: String, context: Option<&str>) -> Response {
    let mut r = (status, body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(c) = context.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(CONTEXT_HEADER, c);
    }
    r
}

/// The request's options from its query string: `consistency`, `durability`, `timeout_ms`,
/// `ttl_secs`.
#[derive(Default)]
struct Options {
    consistency: i32,
    durability: i32,
    timeout_ms: u32,
    ttl_secs: u64,
}

fn options(uri: &Uri) -> Result<Options, Status> {
    let mut o = Options::default();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        let number = |what: &str| {
            value.parse::<u64>().map_err(|_| {
                Status::invalid_argument(format!("{what} must be a whole number, not {value:?}"))
            })
        };
        match name {
            "consistency" => {
                let level = ConsistencyLevel::from_str_name(&value.to_ascii_uppercase())
                    .filter(|l| *l != ConsistencyLevel::Unspecified)
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "consistency {value:?} is not one of ONE, TWO, THREE, QUORUM, ALL, ANY"
                        ))
                    })?;
                o.consistency = level as i32;
            }
            "durability" => {
                let d = Durability::from_str_name(&value.to_ascii_uppercase())
                    .filter(|d| *d != Durability::Unspecified)
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "durability {value:?} is not one of DURABLE, MEMORY"
                        ))
                    })?;
                o.durability = d as i32;
            }
            "timeout_ms" => o.timeout_ms = number("timeout_ms")?.min(u32::MAX as u64) as u32,
            "ttl_secs" => o.ttl_secs = number("ttl_secs")?,
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown query parameter {other:?}; known: consistency, durability, timeout_ms, ttl_secs"
                )))
            }
        }
    }
    Ok(o)
}

/// The context header's value (empty when absent).
fn context_of(headers: &HeaderMap) -> Result<String, Status> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(String::new()),
        Some(v) => v
            .to_str()
            .map(str::to_string)
            .map_err(|_| Status::invalid_argument("X-RingDB-Context must be ASCII")),
    }
}

/// `{"key": K, "values": [doc, ...], "context": C}`: the stored documents go out as they
/// are (each was checked to be a JSON object when written), never parsed again.
fn document_body(key: &str, values: &[bytes::Bytes], context: &str) -> String {
    let mut out = String::with_capacity(64 + values.iter().map(|v| v.len() + 1).sum::<usize>());
    out.push_str("{\"key\":");
    out.push_str(&Value::from(key).to_string());
    out.push_str(",\"values\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&String::from_utf8_lossy(v));
    }
    out.push_str("],\"context\":");
    out.push_str(&Value::from(context).to_string());
    out.push('}');
    out
}

async fn get_document(
    State(api): State<HttpApi>,
    Path((collection, key)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let who = api.who(&headers)?;
        let o = options(&uri)?;
        let request = GetRequest {
            collection,
            key: key.clone(),
            consistency: o.consistency,
            timeout_ms: o.timeout_ms,
            ..Default::default()
        };
        api.client.get_as(&who, request).await
    };
    match answer.await {
        Ok(r) => {
            let found = if r.values.is_empty() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            let body = document_body(&key, &r.values, &r.context);
            json_response(found, body, Some(&r.context))
        }
        Err(status) => error(status),
    }
}

async fn put_document(
    State(api): State<HttpApi>,
    Path((collection, key)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        let who = api.who(&headers)?;
        let o = options(&uri)?;
        let context = context_of(&headers)?;
        let limit = api.limits.max_document_bytes;
        let document = axum::body::to_bytes(body, limit + 1).await.map_err(|_| {
            Status::invalid_argument(format!(
                "the document is over the limit of {limit} bytes (--max-document-bytes)"
            ))
        })?;
        let request = PutRequest {
            collection,
            key,
            document,
            context,
            consistency: o.consistency,
            durability: o.durability,
            timeout_ms: o.timeout_ms,
            ttl_secs: o.ttl_secs,
            ..Default::default()
        };
        let r = api.client.put_as(&who, request).await?;
        Ok((r.context, r.acknowledged_by, r.hinted_for))
    };
    write_answer(answer.await)
}

/// `{"context", "acknowledged_by", "hinted_for"}` of a write, or its error.
fn write_answer(answer: Result<(String, Vec<String>, Vec<String>), Status>) -> Response {
    match answer {
        Ok((context, acknowledged_by, hinted_for)) => {
            let body = json!({"context": context, "acknowledged_by": acknowledged_by,
                              "hinted_for": hinted_for});
            json_response(StatusCode::OK, body.to_string(), Some(&context))
        }
        Err(status) => error(status),
    }
}

async fn delete_document(
    State(api): State<HttpApi>,
    Path((collection, key)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let who = api.who(&headers)?;
        let o = options(&uri)?;
        if o.ttl_secs != 0 {
            return Err(Status::invalid_argument("ttl_secs is for PUT only"));
        }
        let request = DeleteRequest {
            collection,
            key,
            context: context_of(&headers)?,
            consistency: o.consistency,
            durability: o.durability,
            timeout_ms: o.timeout_ms,
            ..Default::default()
        };
        let r = api.client.delete_as(&who, request).await?;
        Ok((r.context, r.acknowledged_by, r.hinted_for))
    };
    write_answer(answer.await)
}

/// `POST /v1/{collection}/_find` (or `_count`, `_aggregate`): a query; a POST to any other
/// key is 405, since documents are written with PUT.
async fn post_query(
    State(api): State<HttpApi>,
    Path((collection, call)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        if !matches!(call.as_str(), "_find" | "_count" | "_aggregate") {
            return Ok(method_not_allowed(&call));
        }
        let who = api.who(&headers)?;
        let o = options(&uri)?;
        queries::check_options(&o)?;
        let limit = queries::MAX_QUERY_BODY_BYTES;
        let raw = axum::body::to_bytes(body, limit).await.map_err(|_| {
            Status::invalid_argument(format!("a query body is over the limit of {limit} bytes"))
        })?;
        let answer = match call.as_str() {
            "_find" => queries::find(&api, &who, collection, o, &raw).await,
            "_count" => queries::count(&api, &who, collection, o, &raw).await,
            _ => queries::aggregate(&api, &who, collection, o, &raw).await,
        }?;
        Ok(json_response(StatusCode::OK, answer, None))
    };
    answer.await.unwrap_or_else(error)
}

/// 405 for a POST to a document key.
fn method_not_allowed(key: &str) -> Response {
    let message = format!(
        "POST is for /v1/{{collection}}/_find, _count and _aggregate, not the key {key:?}; \
         write a document with PUT"
    );
    let body = json!({"error": {"code": "METHOD_NOT_ALLOWED", "message": message}});
    let mut r = json_response(StatusCode::METHOD_NOT_ALLOWED, body.to_string(), None);
    r.headers_mut().insert(
        axum::http::header::ALLOW,
        HeaderValue::from_static("GET, PUT, DELETE"),
    );
    r
}

async fn health(State(api): State<HttpApi>) -> Response {
    match api.membership.readiness() {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"serving": true, "node": api.membership.node_id()}).to_string(),
            None,
        ),
        Err(why) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"serving": false, "node": api.membership.node_id(), "reason": why}).to_string(),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_levels_in_any_case_and_refuse_the_unknown() {
        let uri: Uri = "/v1/c/k?consistency=quorum&timeout_ms=250".parse().unwrap();
        let o = options(&uri).unwrap();
        assert_eq!(o.consistency, ConsistencyLevel::Quorum as i32);
        assert_eq!(o.timeout_ms, 250);
        for bad in [
            "consistency=SOME",
            "consistency=",
            "timeout_ms=-1",
            "colour=red",
        ] {
            let uri: Uri = format!("/v1/c/k?{bad}").parse().unwrap();
            let e = options(&uri).err().expect(bad);
            assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn document_bodies_are_json_whatever_the_key() {
        let values = [bytes::Bytes::from_static(b"{\"a\":1}")];
        let body = document_body("a\"b/\u{e9}", &values, "ctx");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["key"], "a\"b/\u{e9}");
        assert_eq!(v["values"][0]["a"], 1);
        assert_eq!(v["context"], "ctx");
        let empty: Value = serde_json::from_str(&document_body("k", &[], "c")).unwrap();
        assert_eq!(empty["values"], json!([]));
    }

    #[test]
    fn every_documented_code_has_its_status() {
        assert_eq!(http_status(Code::InvalidArgument), 400);
        assert_eq!(http_status(Code::Unauthenticated), 401);
        assert_eq!(http_status(Code::PermissionDenied), 403);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::AlreadyExists), 409);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Unavailable), 503);
        assert_eq!(http_status(Code::DeadlineExceeded), 504);
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    }
}
