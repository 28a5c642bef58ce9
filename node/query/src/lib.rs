//! The pure core of RingDB's document queries. No I/O lives here: the storage layer, the
//! replicas and the coordinator call these functions so that they, the shell and the tests
//! share one definition of what a query means.
//!
//! - [`path`]: `a.b`, `tags[]`, `"first name"` paths and the values they yield.
//! - [`value`]: the typed order of JSON values and its order-preserving byte encoding
//!   (index entry keys are `encode(value) ++ document key`).
//! - [`filter`]: conditions combined with AND, their semantics and the exact index ranges
//!   that answer them.
mod error;
mod wire;

pub mod filter;
pub mod path;
pub mod value;

pub use error::{Error, Result};
pub use filter::{Condition, Filter, Op, ScanRange};
pub use path::{Path, Step};
