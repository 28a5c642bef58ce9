//! A RingDB node, in layers from the bottom up; each module imports only its own layer and
//! those before it:
//!
//! 1. `ring`, `version`, `merkle`, `clock`: the pure cores, crate `ringdb-core`;
//! 2. `storage`: replica storage, crate `ringdb-storage` (on the cores alone);
//! 3. `error`: the request error, built on storage's;
//! 4. `transport`: node-to-node calls;
//! 5. `cluster`: membership, gossip, failure detection, joining and leaving (it talks to
//!    peers through `transport`, so it sits above it);
//! 6. `coordinator`: consistency levels, reads, writes, hints;
//! 7. `repair`: anti-entropy and tombstone purging;
//! 8. `query`: document queries (FIND, COUNT, AGGREGATE) over the replicas;
//! 9. `api`: the gRPC services;
//! 10. `server`: assembling and running a node.
//!
//! The two bottom layers are crates of their own, so the compiler keeps them from reaching
//! up; they are re-exported here at their old paths. The order of the others is checked by
//! `tests/architecture.rs`, which also refuses two files that import each other (a module's
//! root file and its own children excepted).

pub mod api;
pub mod cluster;
pub mod coordinator;
pub mod error;
pub mod query;
pub mod repair;
pub mod server;
pub mod transport;

pub use ringdb_core::{clock, merkle, ring, version};
pub use ringdb_storage as storage;
