//! Async Rust client for RingDB.
//!
//! Connect with one or more node addresses. The client fetches the cluster's ring from
//! them and sends each request to a replica of its key (see [`Routing`]), failing over to
//! the key's other replicas when a node does not answer. Every read returns all sibling
//! versions of a document and an opaque [`Context`]; pass that context to the next write
//! to replace exactly the versions you saw, or let [`Client::update`] do the
//! read-merge-write loop for you. Consistency and durability are chosen per request or as
//! client defaults. Documents are found by their fields with [`Client::find`] (a stream of
//! documents, or one page and its token), counted with [`Client::count`] and aggregated
//! with [`Client::aggregate`].
//!
//! ```no_run
//! use ringdb_client::{Client, Consistency, WriteOptions};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), ringdb_client::Error> {
//! let client = Client::connect(["127.0.0.1:7401", "127.0.0.1:7402"]).await?;
//! client.put("users", "alice", &json!({"name": "Alice", "age": 31})).await?;
//! let read = client.get("users", "alice").await?;
//! assert_eq!(read.values[0]["name"], "Alice");
//! // Update what we read: the context makes this replace, not add a sibling.
//! let opts = WriteOptions::new().context(read.context.clone()).consistency(Consistency::All);
//! client.put_with("users", "alice", &json!({"name": "Alice", "age": 32}), &opts).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admin;
mod builder;
mod call;
mod client;
mod documents;
mod error;
mod indexes;
mod node;
mod options;
mod pipe;
mod query;
mod query_results;
mod query_trace;
mod results;
mod retry;
mod routing;
mod trace;
mod update;

pub use admin::{Collection, RepairReport, RepairStatus};
pub use builder::ClientBuilder;
pub use client::Client;
pub use error::{Error, Result};
pub use indexes::{Index, IndexState, LocalIndexPage, NodeIndexState};
pub use options::{Context, ReadOptions, WriteOptions};
pub use query::{
    Aggregate, AggregateResult, Count, CountResult, Document, Find, Group, Page, MAX_PAGE_SIZE,
};
pub use query_trace::{QueryTrace, ScanTrace};
pub use results::{ClusterStatus, GetResult, RingInfo, WriteResult};
pub use retry::RetryPolicy;
/// Conditions, parsed filters, aggregation specs and paths for query builders, from the
/// pure query core shared with the nodes.
pub use ringdb_query::{AggregateSpec, Filter, Op, Path};
pub use ringdb_wire::{token_for, Durability, Level as Consistency, Token};
pub use routing::Routing;
pub use trace::{Outcome, ReplicaEvent, Role, Trace, TracedReplica};
pub use update::{UpdateOptions, Updated};
