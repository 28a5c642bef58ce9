//! RingDB's pure cores, the bottom layer of a node: the consistent-hash ring (`ring`),
//! the token of a document (`token`, which `ringdb-wire` re-exports for clients),
//! versions and sibling sets (`version`), the hash trees anti-entropy compares
//! (`merkle`), and the clock every layer above reads wall-clock time from (`clock`).
//!
//! Invariant kept by this crate's boundary: nothing here does I/O or depends on an async
//! runtime, storage engine or the wire protocol, so every layer above may use it and it can
//! be property-tested alone.

pub mod clock;
pub mod merkle;
pub mod ring;
pub mod token;
pub mod version;
