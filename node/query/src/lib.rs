//! The pure core of RingDB's document queries. No I/O lives here: the storage layer, the
//! replicas and the coordinator call these functions so that they, the shell and the tests
//! share one definition of what a query means.
//!
//! - [`path`]: `a.b`, `tags[]`, `"first name"` paths and the values they yield.
//! - [`value`]: the typed order of JSON values and its order-preserving byte encoding
//!   (index entry keys are `encode(value) ++ document key`).
//! - [`index`]: the entries a replica stores for a document, and how they change.
//! - [`filter`]: conditions combined with AND, their semantics and the exact index ranges
//!   that answer them.
//! - [`order`]: the fixed result order (sort value of the first indexed condition, then key).
//! - [`page`]: stateless page tokens and the page cut.
//! - [`aggregate`]: count, sum, avg, min, max with GROUP BY as mergeable partial states.
//! - [`projection`]: `FIELDS a, b.c`.
//! - [`statement`]: the text grammar of CREATE/DROP/DESCRIBE INDEX(ES), FIND, COUNT and
//!   AGGREGATE.
//!
//! # How the pieces fit
//!
//! - **Storage** keeps, per index, [`index::entries`] of every document's live siblings and
//!   applies [`index::changes`] in the same batch as each document write, purge or expiry.
//! - **Planning** (coordinator): [`statement::parse`] gives the query; a condition on a path
//!   without a ready index needs `ALLOW FILTERING` ([`Filter::unindexed_paths`] names them);
//!   [`Order::choose`] picks the order condition; a `PAGE` token is checked and turned into a
//!   resume [`Position`] by [`page::decode_token`].
//! - **Replicas** scan the order condition's index over [`Condition::ranges`] (cut by
//!   [`ScanRange::after`] the resume point's [`Position::entry_key`]), or all documents in
//!   key order without one; they report each matching document once, at its
//!   [`order::position_after`] the resume point, checking the filter on their local siblings
//!   ([`Filter::answered_by_index`] says when the scan alone decides the match). For
//!   aggregations at `ONE` they fold their matches into a [`Partial`] and ship
//!   [`Partial::to_bytes`].
//! - **The coordinator** merges candidates by key (DVV rules, outside this crate), re-checks
//!   the merged document with [`Filter::matches`], computes its [`order::position`], cuts the
//!   page at the [`page::horizon`] (the rounds in [`page`]'s docs), issues the next token with
//!   [`page::encode_token`], applies [`Projection`] to each sibling, and reduces partial
//!   aggregations with [`Partial::merge`] and [`Partial::finish`].
//! - **Clients and tests** compute the same answers by brute force with the same functions
//!   ([`aggregate_documents`] for aggregations).
#![warn(missing_docs)]

mod error;
mod exact;
mod wire;

pub mod aggregate;
pub mod filter;
pub mod index;
pub mod order;
pub mod page;
pub mod path;
pub mod projection;
pub mod statement;
pub mod value;

pub use aggregate::{aggregate_documents, AggregateSpec, Aggregation, Partial};
pub use error::{Error, Result};
pub use filter::{Condition, Filter, Op, ScanRange};
pub use order::{Order, Position};
pub use page::{Page, QueryShape};
pub use path::{Path, Step};
pub use projection::Projection;
pub use statement::Statement;
