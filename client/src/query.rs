//! Queries: FIND, COUNT and AGGREGATE builders. Conditions come from a condition text
//! (`"age >= 18 AND tags[] = \"rust\""`, the shell's WHERE grammar) or typed
//! ([`Find::where_`] with a path and an [`Op`]); several are combined with AND.
//!
//! A query is not about one key, so it goes to any node: the given addresses in rotation,
//! with the client's retry rules for reads (another node on a transport failure,
//! `UNAVAILABLE` or `RESOURCE_EXHAUSTED`). A FIND's stream of documents that breaks
//! between pages carries on from the last page's token on another node, so no document is
//! skipped or repeated.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use ringdb_client::{Client, Consistency};
//!
//! # async fn demo() -> Result<(), ringdb_client::Error> {
//! let client = Client::connect(["127.0.0.1:7401"]).await?;
//! let adults: Vec<_> = client
//!     .find("users")
//!     .filter("age >= 18")
//!     .allow_filtering()
//!     .consistency(Consistency::Quorum)
//!     .stream()
//!     .try_collect()
//!     .await?;
//! let page = client.find("users").page_size(50).page().await?; // one page and its token
//! let n = client.count("users").run().await?.count;
//! let by_city = client
//!     .aggregate("users")
//!     .count_all()
//!     .avg("age")
//!     .group_by("city")
//!     .filter("age EXISTS")
//!     .allow_filtering()
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use ringdb_proto::v1 as pb;
use ringdb_query::aggregate::{Arg, Func};
use ringdb_query::statement::parse_conditions;
use ringdb_query::{AggregateSpec, Aggregation, Condition, Filter, Op, Path};
use ringdb_wire::query::{conditions_to_proto, spec_to_proto};
use ringdb_wire::Level as Consistency;
use serde_json::Value;
use tonic::Code;

use crate::call::Kind;
use crate::client::Client;
use crate::error::{self, Error, Result};
use crate::query_results::page_from_proto;
pub use crate::query_results::{AggregateResult, CountResult, Document, Group, Page};
use crate::query_trace::QueryTrace;
use crate::results::named;

/// Documents a FIND page holds at most (the server's limit).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How many times a FIND stream carries on after its connection broke.
const MAX_RESUMES: u32 = 8;

/// What every query carries: collection, conditions and how to read.
#[derive(Clone)]
struct Common {
    client: Client,
    collection: String,
    conditions: Vec<Condition>,
    allow_filtering: bool,
    consistency: Option<Consistency>,
    timeout: Option<Duration>,
    trace: Option<bool>,
    /// The first mistake made while building, reported when the query runs.
    error: Option<Error>,
}

impl Common {
    fn new(client: &Client, collection: &str) -> Common {
        Common {
            client: client.clone(),
            collection: collection.to_string(),
            conditions: Vec::new(),
            allow_filtering: false,
            consistency: None,
            timeout: None,
            trace: None,
            error: None,
        }
    }

    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    fn filter(&mut self, text: &str) {
        match parse_conditions(text) {
            Ok(f) => self.conditions.extend(f.conditions().iter().cloned()),
            Err(e) => self.fail(Error::InvalidArgument(format!("conditions {text:?}: {e}"))),
        }
    }

    fn where_(&mut self, path: &str, op: Op) {
        let c = Path::parse(path)
            .map_err(|e| e.to_string())
            .and_then(|p| Condition::new(p, op).map_err(|e| e.to_string()));
        match c {
            Ok(c) => self.conditions.push(c),
            Err(e) => self.fail(Error::InvalidArgument(format!(
                "condition on {path:?}: {e}"
            ))),
        }
    }

    fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn wire_conditions(&self) -> Vec<pb::QueryCondition> {
        conditions_to_proto(&Filter::new(self.conditions.clone()))
    }

    fn consistency(&self) -> i32 {
        self.consistency
            .or(self.client.read_defaults.consistency)
            .map_or(0, |c| c.to_proto() as i32)
    }

    fn timeout_ms(&self) -> u32 {
        self.timeout
            .or(self.client.read_defaults.timeout)
            .map_or(0, |t| t.as_millis().min(u32::MAX as u128) as u32)
    }

    fn trace(&self) -> bool {
        self.trace
            .or(self.client.read_defaults.trace)
            .unwrap_or(false)
    }

    /// Send a query to any node, with the retry rules for reads.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(crate::node::Node) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let router = &self.client.router;
        self.client
            .retried(Kind::Read, what, || router.rotation(), f)
            .await
    }
}

/// The builder methods every query has.
macro_rules! common_methods {
    () => {
        /// Add conditions written as in the shell's WHERE clause (`age >= 18 AND tags[] =
        /// "x"`), combined with AND with those already given.
        pub fn filter(mut self, conditions: &str) -> Self {
            self.common.filter(conditions);
            self
        }

        /// Add one condition: a path (`a.b`, `tags[]`, `"first name"`) and a comparison.
        pub fn where_(mut self, path: &str, op: Op) -> Self {
            self.common.where_(path, op);
            self
        }

        /// Add conditions already parsed (by `ringdb_query`).
        pub fn conditions(mut self, filter: &Filter) -> Self {
            self.common
                .conditions
                .extend(filter.conditions().iter().cloned());
            self
        }

        /// Allow conditions on paths without an index: every document is read and checked.
        pub fn allow_filtering(mut self) -> Self {
            self.common.allow_filtering = true;
            self
        }

        /// Replicas asked per token range (default: the client's read default, else QUORUM).
        pub fn consistency(mut self, c: Consistency) -> Self {
            self.common.consistency = Some(c);
            self
        }

        /// Time the coordinator has (per page for FIND; default: the server's 10 s).
        pub fn timeout(mut self, t: Duration) -> Self {
            self.common.timeout = Some(t);
            self
        }

        /// Ask for a [`QueryTrace`] of what the coordinator did.
        pub fn trace(mut self, on: bool) -> Self {
            self.common.trace = Some(on);
            self
        }
    };
}

/// A FIND being built; run it with [`Find::stream`], [`Find::page`] or [`Find::all`].
#[derive(Clone)]
pub struct Find {
    common: Common,
    fields: Vec<String>,
    limit: Option<u64>,
    page_size: Option<u32>,
    after: Option<String>,
}

impl Client {
    /// Start a FIND on `collection` (no conditions: every document, in key order).
    pub fn find(&self, collection: &str) -> Find {
        Find {
            common: Common::new(self, collection),
            fields: Vec::new(),
            limit: None,
            page_size: None,
            after: None,
        }
    }

    /// Start a COUNT on `collection`.
    pub fn count(&self, collection: &str) -> Count {
        Count {
            common: Common::new(self, collection),
        }
    }

    /// Start an AGGREGATE on `collection`; add at least one aggregation.
    pub fn aggregate(&self, collection: &str) -> Aggregate {
        Aggregate {
            common: Common::new(self, collection),
            aggregations: Vec::new(),
            group_by: None,
        }
    }
}

impl Find {
    common_methods!();

    /// Return only these paths of each sibling (`FIELDS a, b.c`).
    pub fn fields<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for p in paths {
            match Path::parse(p.as_ref()) {
                Ok(path) => self.fields.push(path.to_string()),
                Err(e) => self.common.fail(Error::InvalidArgument(format!(
                    "field {:?}: {e}",
                    p.as_ref()
                ))),
            }
        }
        self
    }

    /// Return at most `n` documents in all (default: [`Find::stream`] returns every match,
    /// [`Find::page`] one page).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Documents per page (at most [`MAX_PAGE_SIZE`]; default: 100 for [`Find::page`],
    /// the largest page for a stream).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Continue after the page that returned `token` ([`Page::next`]).
    pub fn after(mut self, token: impl Into<String>) -> Self {
        self.after = Some(token.into()).filter(|t: &String| !t.is_empty());
        self
    }

    fn request(&self, limit: Option<u64>, after: Option<&str>) -> pb::FindRequest {
        pb::FindRequest {
            collection: self.common.collection.clone(),
            conditions: self.common.wire_conditions(),
            fields: self.fields.clone(),
            limit,
            page_size: self.page_size.unwrap_or(0),
            page_token: after.unwrap_or_default().to_string(),
            allow_filtering: self.common.allow_filtering,
            consistency: self.common.consistency(),
            timeout_ms: self.common.timeout_ms(),
            trace: self.common.trace(),
        }
    }

    /// Open the page stream of a FIND request on some node.
    async fn open(&self, req: pb::FindRequest) -> Result<tonic::Streaming<pb::FindPage>> {
        self.common.check()?;
        let what = format!("FIND on {}", self.common.collection);
        self.common
            .call(&what, |mut n| {
                let req = req.clone();
                async move { n.client.find(req).await.map(|r| r.into_inner()) }
            })
            .await
    }

    /// One page (of [`Find::page_size`] documents, else the limit, else 100) and the
    /// token that continues after it.
    pub async fn page(&self) -> Result<Page> {
        let size = self
            .page_size
            .map(u64::from)
            .or(self.limit)
            .unwrap_or(100)
            .min(u64::from(MAX_PAGE_SIZE));
        let mut req = self.request(Some(size), self.after.as_deref());
        req.page_size = size as u32;
        let mut pages = self.open(req).await?;
        match pages.message().await {
            Ok(Some(p)) => page_from_proto(p),
            Ok(None) => Err(Error::Internal("the node sent no page".into())),
            Err(s) => Err(s.into()),
        }
    }

    /// Every matching document (up to the limit), read page by page as the stream is
    /// polled; a stream that breaks between pages carries on from the last page on
    /// another node.
    pub fn stream(&self) -> impl Stream<Item = Result<Document>> + Send + 'static {
        let state = Streamed {
            find: self.clone(),
            remaining: self.limit,
            token: self.after.clone(),
            pages: None,
            buffer: VecDeque::new(),
            done: matches!(self.limit, Some(0)),
            resumes: 0,
        };
        futures::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        })
    }

    /// Every matching document (up to the limit), collected.
    pub async fn all(&self) -> Result<Vec<Document>> {
        use futures::TryStreamExt;
        self.stream().try_collect().await
    }
}

/// Where a FIND stream is.
struct Streamed {
    find: Find,
    remaining: Option<u64>,
    token: Option<String>,
    pages: Option<tonic::Streaming<pb::FindPage>>,
    buffer: VecDeque<Document>,
    done: bool,
    resumes: u32,
}

/// Whether a broken FIND stream may carry on from its last page elsewhere.
fn resumable(s: &tonic::Status) -> bool {
    error::transport_failure(s) || matches!(s.code(), Code::Unavailable | Code::ResourceExhausted)
}

impl Streamed {
    async fn next(&mut self) -> Option<Result<Document>> {
        loop {
            if let Some(d) = self.buffer.pop_front() {
                return Some(Ok(d));
            }
            if self.done {
                return None;
            }
            let Some(pages) = self.pages.as_mut() else {
                let req = self.find.request(
                    Some(self.remaining.unwrap_or(u64::MAX)),
                    self.token.as_deref(),
                );
                match self.find.open(req).await {
                    Ok(p) => self.pages = Some(p),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            match pages.message().await {
                Ok(Some(p)) => {
                    let page = match page_from_proto(p) {
                        Ok(page) => page,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    let n = page.documents.len() as u64;
                    self.remaining = self.remaining.map(|r| r.saturating_sub(n));
                    self.token = page.next;
                    self.buffer.extend(page.documents);
                    if self.token.is_none() || self.remaining == Some(0) {
                        self.done = true;
                    }
                }
                // The node stopped at its own limit; more may follow from the token.
                Ok(None) => self.pages = None,
                Err(s) if resumable(&s) && self.resumes < MAX_RESUMES => {
                    tracing::debug!(error = %s, "FIND stream broke; carrying on from the last page");
                    self.resumes += 1;
                    self.pages = None;
                }
                Err(s) => {
                    self.done = true;
                    return Some(Err(s.into()));
                }
            }
        }
    }
}

/// A COUNT being built; run it with [`Count::run`].
#[derive(Clone)]
pub struct Count {
    common: Common,
}

impl Count {
    common_methods!();

    /// How many documents the same FIND would return.
    pub async fn run(&self) -> Result<CountResult> {
        self.common.check()?;
        let c = &self.common;
        let req = pb::CountRequest {
            collection: c.collection.clone(),
            conditions: c.wire_conditions(),
            allow_filtering: c.allow_filtering,
            consistency: c.consistency(),
            timeout_ms: c.timeout_ms(),
            trace: c.trace(),
        };
        let what = format!("COUNT on {}", c.collection);
        let r = c
            .call(&what, |mut n| {
                let req = req.clone();
                async move { n.client.count(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(CountResult {
            count: r.count,
            coordinator: named(r.coordinator),
            trace: r.trace.map(QueryTrace::from_proto),
        })
    }
}

/// An AGGREGATE being built; add aggregations, then [`Aggregate::run`].
#[derive(Clone)]
pub struct Aggregate {
    common: Common,
    aggregations: Vec<Aggregation>,
    group_by: Option<Path>,
}

impl Aggregate {
    common_methods!();

    fn add(mut self, func: Func, path: Option<&str>) -> Self {
        let arg = match path {
            None => Ok(Arg::Star),
            Some(p) => Path::parse(p)
                .map(Arg::Path)
                .map_err(|e| format!("path {p:?}: {e}")),
        };
        match arg.and_then(|a| Aggregation::new(func, a).map_err(|e| e.to_string())) {
            Ok(a) => self.aggregations.push(a),
            Err(e) => self.common.fail(Error::InvalidArgument(e)),
        }
        self
    }

    /// `count(*)`: the documents.
    pub fn count_all(self) -> Self {
        self.add(Func::Count, None)
    }

    /// `count(path)`: documents where the path has a non-null value.
    pub fn count(self, path: &str) -> Self {
        self.add(Func::Count, Some(path))
    }

    /// `sum(path)` of the numbers at the path.
    pub fn sum(self, path: &str) -> Self {
        self.add(Func::Sum, Some(path))
    }

    /// `avg(path)` of the numbers at the path.
    pub fn avg(self, path: &str) -> Self {
        self.add(Func::Avg, Some(path))
    }

    /// `min(path)` in the typed order.
    pub fn min(self, path: &str) -> Self {
        self.add(Func::Min, Some(path))
    }

    /// `max(path)` in the typed order.
    pub fn max(self, path: &str) -> Self {
        self.add(Func::Max, Some(path))
    }

    /// `GROUP BY path`.
    pub fn group_by(mut self, path: &str) -> Self {
        match Path::parse(path) {
            Ok(p) => self.group_by = Some(p),
            Err(e) => self
                .common
                .fail(Error::InvalidArgument(format!("GROUP BY {path:?}: {e}"))),
        }
        self
    }

    /// Aggregations and grouping already parsed (by `ringdb_query`), replacing any given.
    pub fn spec(mut self, spec: &AggregateSpec) -> Self {
        self.aggregations = spec.aggregations().to_vec();
        self.group_by = spec.group_by().cloned();
        self
    }

    /// The aggregation of the documents the same FIND would return.
    pub async fn run(&self) -> Result<AggregateResult> {
        self.common.check()?;
        let spec = AggregateSpec::new(self.aggregations.clone(), self.group_by.clone())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (aggregations, group_by) = spec_to_proto(&spec);
        let c = &self.common;
        let req = pb::AggregateRequest {
            collection: c.collection.clone(),
            conditions: c.wire_conditions(),
            aggregations,
            group_by,
            allow_filtering: c.allow_filtering,
            consistency: c.consistency(),
            timeout_ms: c.timeout_ms(),
            trace: c.trace(),
        };
        let what = format!("AGGREGATE on {}", c.collection);
        let r = c
            .call(&what, |mut n| {
                let req = req.clone();
                async move { n.client.aggregate(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        let mut groups = Vec::with_capacity(r.groups.len());
        for g in r.groups {
            let group: Value = serde_json::from_slice(&g.group)
                .map_err(|e| Error::Internal(format!("group value: {e}")))?;
            let mut sent = match serde_json::from_slice(&g.values) {
                Ok(Value::Object(m)) => m,
                _ => return Err(Error::Internal("group values are not a JSON object".into())),
            };
            // In the order the aggregations were asked for.
            let mut values = serde_json::Map::new();
            for a in spec.aggregations() {
                let name = a.to_string();
                if let Some(v) = sent.remove(&name) {
                    values.insert(name, v);
                }
            }
            values.extend(sent);
            groups.push(Group { group, values });
        }
        Ok(AggregateResult {
            groups,
            coordinator: named(r.coordinator),
            trace: r.trace.map(QueryTrace::from_proto),
        })
    }
}
