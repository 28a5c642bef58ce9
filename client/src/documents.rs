//! Reading and writing documents: gets, puts and deletes, each routed to a replica of its
//! key with the client's defaults filled in. Puts and deletes share one write path, so they
//! route, retry and report their receipt alike.

use bytes::Bytes;
use ringdb_proto::v1 as pb;
use ringdb_proto::v1::{client_request::Op, client_response::Result as Answer};
use ringdb_wire::token_for;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

use crate::call::Kind;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::{Context, ReadOptions, WriteOptions};
use crate::results::{named, parse_values, GetResult, WriteResult};
use crate::trace::Trace;

/// The error for an answer of the wrong kind (a broken or foreign server).
fn mismatched(what: &str) -> Status {
    Status::internal(format!("node answered a {what} with something else"))
}

/// Write options as the wire carries them (0 / empty meaning "server default").
struct WireWrite {
    context: String,
    consistency: i32,
    durability: i32,
    timeout_ms: u32,
    trace: bool,
}

/// A put's or delete's answer: both carry the same receipt.
struct Receipt {
    context: String,
    acknowledged_by: Vec<String>,
    hinted_for: Vec<String>,
    coordinator: String,
    trace: Option<pb::RequestTrace>,
}

/// The receipt in a put's or delete's answer, whose fields have the same names.
macro_rules! receipt {
    ($r:expr) => {{
        let r = $r;
        Receipt {
            context: r.context,
            acknowledged_by: r.acknowledged_by,
            hinted_for: r.hinted_for,
            coordinator: r.coordinator,
            trace: r.trace,
        }
    }};
}

/// A put or a delete: the request, what error messages call it, and its answer's receipt.
enum Write {
    Put(pb::PutRequest),
    Delete(pb::DeleteRequest),
}

impl Write {
    /// What error messages call it ("write of c/k").
    fn noun(&self) -> &'static str {
        match self {
            Write::Put(_) => "write",
            Write::Delete(_) => "delete",
        }
    }

    /// The request for one attempt.
    fn op(&self) -> Op {
        match self {
            Write::Put(r) => Op::Put(r.clone()),
            Write::Delete(r) => Op::Delete(r.clone()),
        }
    }

    /// The receipt in the node's answer; an answer of another kind is an error.
    fn receipt(&self, answer: Answer) -> Result<Receipt, Status> {
        match (self, answer) {
            (Write::Put(_), Answer::Put(r)) => Ok(receipt!(r)),
            (Write::Delete(_), Answer::Delete(r)) => Ok(receipt!(r)),
            (Write::Put(_), _) => Err(mismatched("put")),
            (Write::Delete(_), _) => Err(mismatched("delete")),
        }
    }
}

impl Client {
    /// Read a document at the client's default consistency.
    pub async fn get(&self, collection: &str, key: &str) -> Result<GetResult> {
        self.get_with(collection, key, &ReadOptions::new()).await
    }

    /// Read a document with per-request options.
    pub async fn get_with(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult> {
        self.get_as(collection, key, opts).await
    }

    /// Read a document into a serde type; every sibling must convert.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult<T>> {
        let raw = self.get_raw(collection, key, opts).await?;
        Ok(GetResult {
            values: parse_values(&raw.values)?,
            context: raw.context,
            coordinator: raw.coordinator,
            trace: raw.trace,
        })
    }

    /// Read a document as the raw JSON bytes the cluster stores.
    pub async fn get_raw(
        &self,
        collection: &str,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<GetResult<Bytes>> {
        let consistency = opts.consistency.or(self.read_defaults.consistency);
        let timeout = opts.timeout.or(self.read_defaults.timeout);
        let trace = opts.trace.or(self.read_defaults.trace).unwrap_or(false);
        let req = pb::GetRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            consistency: consistency.map(|c| c.to_proto() as i32).unwrap_or(0),
            timeout_ms: timeout.map(|t| t.as_millis() as u32).unwrap_or(0),
            trace,
        };
        let what = format!("read of {collection}/{key}");
        let resp = self
            .routed(Kind::Read, token_for(collection, key), &what, |mut n| {
                let op = Op::Get(req.clone());
                async move {
                    match n.send(op, self.pipelined).await? {
                        Answer::Get(r) => Ok(r),
                        _ => Err(mismatched("get")),
                    }
                }
            })
            .await?;
        self.router.saw([resp.coordinator.as_str()]);
        Ok(GetResult {
            values: resp.values,
            context: Context::from_token(resp.context),
            coordinator: named(resp.coordinator),
            trace: resp.trace.map(Trace::from_proto),
        })
    }

    /// Write a document (any serde type that serializes to a JSON object) with no context:
    /// it becomes a sibling of whatever versions exist.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        collection: &str,
        key: &str,
        doc: &T,
    ) -> Result<WriteResult> {
        self.put_with(collection, key, doc, &WriteOptions::new())
            .await
    }

    /// Write a document with per-request options (context, consistency, durability, timeout).
    pub async fn put_with<T: Serialize + ?Sized>(
        &self,
        collection: &str,
        key: &str,
        doc: &T,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let bytes = serde_json::to_vec(doc).map_err(|e| Error::Document(e.to_string()))?;
        self.put_raw(collection, key, Bytes::from(bytes), opts)
            .await
    }

    /// Write JSON bytes as given (the server checks they are one JSON object).
    pub async fn put_raw(
        &self,
        collection: &str,
        key: &str,
        document: Bytes,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let w = self.write_fields(opts);
        self.write(
            collection,
            key,
            Write::Put(pb::PutRequest {
                collection: collection.to_string(),
                key: key.to_string(),
                document,
                context: w.context,
                consistency: w.consistency,
                durability: w.durability,
                timeout_ms: w.timeout_ms,
                ttl_secs: opts.ttl.map_or(0, |t| t.as_secs().max(1)),
                trace: w.trace,
            }),
        )
        .await
    }

    /// Delete what a read at the default level sees.
    pub async fn delete(&self, collection: &str, key: &str) -> Result<WriteResult> {
        self.delete_with(collection, key, &WriteOptions::new())
            .await
    }

    /// Delete with options; with a context, exactly the versions it covers are deleted.
    ///
    /// An empty context (`Context::default()`) has seen nothing, so nothing is sent and
    /// nothing is deleted: on the wire an empty context means "delete what a read sees",
    /// which would delete versions the caller never saw. (A read that found nothing returns
    /// a non-empty context that covers nothing; the node deletes nothing newer with it.)
    pub async fn delete_with(
        &self,
        collection: &str,
        key: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        if let Some(c) = opts.context.as_ref().filter(|c| c.is_empty()) {
            return Ok(WriteResult {
                context: c.clone(),
                acknowledged_by: Vec::new(),
                hinted_for: Vec::new(),
                coordinator: None,
                trace: None,
            });
        }
        let w = self.write_fields(opts);
        self.write(
            collection,
            key,
            Write::Delete(pb::DeleteRequest {
                collection: collection.to_string(),
                key: key.to_string(),
                context: w.context,
                consistency: w.consistency,
                durability: w.durability,
                timeout_ms: w.timeout_ms,
                trace: w.trace,
            }),
        )
        .await
    }

    /// The one write path: route the put or delete to a replica of its key (retrying only
    /// where nothing can have been applied) and turn the answer into a [`WriteResult`].
    async fn write(&self, collection: &str, key: &str, write: Write) -> Result<WriteResult> {
        let what = format!("{} of {collection}/{key}", write.noun());
        let receipt = self
            .routed(Kind::Write, token_for(collection, key), &what, |mut n| {
                let (op, write) = (write.op(), &write);
                async move { write.receipt(n.send(op, self.pipelined).await?) }
            })
            .await?;
        Ok(self.written(receipt))
    }

    /// A write's receipt as a [`WriteResult`]; a node the ring does not know prompts a refresh.
    fn written(&self, r: Receipt) -> WriteResult {
        self.router.saw(
            r.acknowledged_by
                .iter()
                .chain(&r.hinted_for)
                .map(String::as_str)
                .chain([r.coordinator.as_str()]),
        );
        WriteResult {
            context: Context::from_token(r.context),
            acknowledged_by: r.acknowledged_by,
            hinted_for: r.hinted_for,
            coordinator: named(r.coordinator),
            trace: r.trace.map(Trace::from_proto),
        }
    }

    /// A write's options with the client defaults filled in, in wire form.
    fn write_fields(&self, opts: &WriteOptions) -> WireWrite {
        let d = &self.write_defaults;
        WireWrite {
            context: opts
                .context
                .as_ref()
                .map(|c| c.token().to_string())
                .unwrap_or_default(),
            consistency: opts
                .consistency
                .or(d.consistency)
                .map(|c| c.to_proto() as i32)
                .unwrap_or(0),
            durability: opts
                .durability
                .or(d.durability)
                .map(|c| c.to_proto() as i32)
                .unwrap_or(0),
            timeout_ms: opts
                .timeout
                .or(d.timeout)
                .map(|t| t.as_millis() as u32)
                .unwrap_or(0),
            trace: opts.trace.or(d.trace).unwrap_or(false),
        }
    }
}
