//! What RingDB's node and client must agree on beyond the protobuf schema, written once so
//! the two cannot drift: consistency levels and durability with their one protobuf mapping,
//! the token of a document, query conditions, aggregations and positions with their one
//! protobuf mapping (`query`), and the pipelined request multiplexer both sides use.
//!
//! Layering: this crate sits beside `ringdb-proto` and below both `ringdb-node` and
//! `ringdb-client`. It knows no storage, cluster or server code, so an application that
//! links the client pulls in nothing of the node.

#![warn(missing_docs)]

mod durability;
mod error;
mod level;
pub mod pipe;
pub mod query;

pub use durability::Durability;
pub use error::InvalidArgument;
pub use level::Level;
pub use pipe::Pipe;
/// Defined in the pure `ringdb-core` (no protobuf there) and shared from here, so node and
/// client place every key with the same function.
pub use ringdb_core::token::{token_for, Token};
