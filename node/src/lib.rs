//! A RingDB node: the pure cores (`ring`, `version`), then storage, cluster membership,
//! peer transport, the coordinator and the gRPC API, each knowing only the layers before it.

pub mod api;
pub mod cluster;
pub mod coordinator;
pub mod error;
pub mod repair;
pub mod server;
pub mod transport;

pub use ringdb_core::{clock, merkle, ring, version};
pub use ringdb_storage as storage;
