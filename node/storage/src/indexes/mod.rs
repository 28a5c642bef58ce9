//! Local secondary indexes: each replica indexes exactly the documents it stores.
//!
//! # What is stored
//!
//! An index is a (collection, [`Path`]) pair the layer above asks for
//! ([`IndexCatalog::define`]); this replica gives it a local id and keeps its entries in the
//! engine's [`Space::Index`](crate::Space::Index) as `id (8 bytes BE) ‖ entry key`, where
//! the entry keys of a document are [`ringdb_query::index::entries`] over its **stored live
//! siblings**: the versions that have a value. Tombstones contribute nothing, so a deleted
//! document has no entries. A version whose TTL has passed counts until the expiry sweep
//! turns it into a tombstone (a merge like any other, which removes its entries), so
//! entries follow a TTL within one sweep interval; readers apply `SiblingSet::expire` to
//! what they read, as GET does. Entries are a function of the stored bytes alone, so they
//! can be recomputed and checked.
//!
//! # The one place
//!
//! Every change of a stored sibling set (mint, merge: client writes, read repair, hint
//! replay, streaming, anti-entropy, TTL expiry; and tombstone purge) goes through
//! `worker::write_through`, which writes the data, its counters, its hash-tree leaf and
//! [`upkeep::follow`]: the index changes of every index of the key's collection
//! ([`ringdb_query::index::changes`] between the entries before and after). No other code
//! writes documents.
//!
//! # Life of an index on this replica
//!
//! `building` from the moment it is defined: every write from then on maintains it, and
//! the background build (`build.rs`, paced) indexes each document already stored, on the
//! key's own storage thread from its current sibling set. Then `ready`. A dropped index (or
//! an id found on disk that the catalog does not know) stops being maintained at once and
//! its entries are deleted in the background.
//!
//! # Invariants
//! - A ready index holds exactly the union of `entries(document)` over the documents this
//!   replica stores.
//! - A building index holds, for each document, either exactly its entries (written or
//!   built since the index was defined) or nothing (not reached yet); never a stale entry.
//!   So when the build has passed every key, the index is exact.
//! - A write uses the catalog as it is when the storage thread runs it. The build and the
//!   drop each begin with a fence (one no-op job through every storage thread), so a write
//!   that ran under the previous catalog has finished before the scan or the deletion
//!   starts.
//! - Index ids are never reused: a new id is above every id in the catalog and on disk.
//!
//! # Crashes: separate writes, checked after an unclean stop
//!
//! A document write and its index changes are separate engine writes. One sled
//! transaction across the two trees would make them atomic, but it costs too much: with
//! four writer threads (the storage threads), a document write plus one index entry
//! removed and one added ran at 5,600-8,200 writes/s in a transaction, against
//! 25,600-43,000 as separate writes and 57,000 for the document alone (release build,
//! `cargo run --release -p ringdb-storage --example index_write_cost -- none|plain|txn`, 2
//! cores shared with other work; one thread: 66k / 34k / 24k). Worse, once a process has
//! run one sled transaction, every later sled operation takes a global lock.
//!
//! So a crash can leave a document and its entries disagreeing, for the writes in flight
//! when it struck. The startup scan that rebuilds the hash trees after an unclean stop
//! (`trees.rs`) also feeds `verify.rs`: per ready index and per 4,096 buckets of the
//! token space it XORs the hashes of the entries the stored documents should have, then
//! reads the index and does the same for what it holds. Only buckets that differ are
//! repaired: their entries are deleted and recomputed from their documents (a token range
//! each). A building index is rebuilt from the start under a new id (its old entries are
//! deleted in the background). After a clean stop nothing is checked: the checkpoint
//! waited for every storage thread and flushed.

mod build;
mod catalog;
mod scan;
pub(crate) mod upkeep;
pub(crate) mod verify;

#[cfg(test)]
mod tests;

use std::fmt;

pub use build::BuildPace;
pub use catalog::IndexCatalog;
pub use scan::{IndexError, IndexHit, IndexPage, MAX_SCAN_LIMIT};

use ringdb_query::Path;

/// How far the background build of an index has come on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Keys of this replica's data scanned so far (every collection's: the data is in
    /// token order, not by collection).
    pub done: u64,
    /// Keys stored when the scan began (an estimate: writes during the build move it);
    /// never below `done`.
    pub total: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of about {} keys scanned", self.done, self.total)
    }
}

/// An index's state on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// Writes maintain it; documents stored before it was defined are still being indexed.
    Building(Progress),
    /// Every document this replica stores is indexed.
    Ready,
}

/// One index this replica maintains, for reporting (gossip, operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    /// Its collection.
    pub collection: String,
    /// Its path.
    pub path: Path,
    /// Its state here.
    pub state: IndexState,
}

/// The engine key of an entry of index `id`.
pub(crate) fn entry_engine_key(id: u64, entry: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + entry.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(entry);
    k
}

/// Where index `id`'s entries end in the engine: the first key of the next id.
pub(crate) fn id_end(id: u64) -> Option<Vec<u8>> {
    id.checked_add(1).map(|n| n.to_be_bytes().to_vec())
}
