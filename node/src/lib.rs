//! A RingDB node, in layers from the bottom up; each module imports only its own layer and
//! those before it:
//!
//! 1. `ring`, `version`, `merkle`, `clock`: the pure cores, crate `ringdb-core`;
//! 2. `storage`: replica storage, crate `ringdb-storage` (on the cores alone);
//! 3. `error`: the request error, built on storage's;
//! 4. `security`: TLS material (reloaded when its files change), how nodes prove they
//!    are nodes, token hashes;
//! 5. `transport`: node-to-node calls;
//! 6. `cluster`: membership, gossip, failure detection, joining and leaving (it talks to
//!    peers through `transport`, so it sits above it);
//! 7. `coordinator`: consistency levels, reads, writes, hints;
//! 8. `repair`: anti-entropy and tombstone purging;
//! 9. `query`: document queries (FIND, COUNT, AGGREGATE) over the replicas;
//! 10. `api`: the gRPC services (and token checks);
//! 11. `server`: assembling and running a node.
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
pub mod security;
pub mod server;
pub mod transport;

pub use ringdb_core::{clock, merkle, ring, version};
pub use ringdb_storage as storage;
