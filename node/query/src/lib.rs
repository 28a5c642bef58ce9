//! The pure core of RingDB's document queries. No I/O lives here: the storage layer, the
//! replicas and the coordinator call these functions so that they, the shell and the tests
//! share one definition of what a query means.
//!
//! - [`path`]: `a.b`, `tags[]`, `"first name"` paths and the values they yield.
//! - [`value`]: the typed order of JSON values and its order-preserving byte encoding
//!   (index entry keys are `encode(value) ++ document key`).
//! - [`filter`]: conditions combined with AND, their semantics and the exact index ranges
//!   that answer them.
//! - [`order`]: the fixed result order (sort value of the first indexed condition, then key).
//! - [`page`]: stateless page tokens and the page cut.
//! - [`aggregate`]: count, sum, avg, min, max with GROUP BY as mergeable partial states.
//! - [`projection`]: `FIELDS a, b.c`.
//! - [`statement`]: the text grammar of CREATE/DROP/DESCRIBE INDEX(ES), FIND, COUNT and
//!   AGGREGATE.
mod error;
mod exact;
mod wire;

pub mod aggregate;
pub mod filter;
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
