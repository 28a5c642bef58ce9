//! Keeping a document's index entries in step with its stored sibling set; called by the
//! storage thread that owns the key, from `worker::write_through` only (for writes) and
//! from the build job (for documents stored before their index existed).

use bytes::Bytes;
use ringdb_query::index::{changes, entries};
use ringdb_query::Path;
use serde_json::Value;

use super::catalog::IndexCatalog;
use super::entry_engine_key;
use crate::keys::address_of;
use crate::{Engine, Space, StorageError};

/// The documents among stored live values; bytes that are not JSON index nothing.
pub(crate) fn documents(live: &[Bytes]) -> Vec<Value> {
    live.iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .collect()
}

/// Apply to every index of the key's collection the entry changes of its stored live
/// values going from `before` to `after` (empty: absent or only tombstones).
pub(crate) fn follow(
    engine: &dyn Engine,
    catalog: &IndexCatalog,
    storage_key: &[u8],
    before: &[Bytes],
    after: &[Bytes],
) -> Result<(), StorageError> {
    if before == after {
        return Ok(());
    }
    let Some((collection, key)) = address_of(storage_key) else {
        return Ok(());
    };
    let Some(indexes) = catalog.maintained(collection) else {
        return Ok(());
    };
    let (old, new) = (documents(before), documents(after));
    for index in indexes.iter() {
        let (remove, add) = changes(
            &entries(&index.path, key, &old),
            &entries(&index.path, key, &new),
        );
        for e in remove {
            engine.aux_delete(Space::Index, &entry_engine_key(index.id, &e))?;
        }
        for e in add {
            engine.aux_put(Space::Index, &entry_engine_key(index.id, &e), &[])?;
        }
    }
    Ok(())
}

/// Index one stored document in the given indexes from its current live values (the
/// build). Entries already there are written again, which changes nothing.
pub(crate) fn index_document(
    engine: &dyn Engine,
    storage_key: &[u8],
    live: &[Bytes],
    targets: &[(u64, Path)],
) -> Result<(), StorageError> {
    let Some((_, key)) = address_of(storage_key) else {
        return Ok(());
    };
    let docs = documents(live);
    for (id, path) in targets {
        for e in entries(path, key, &docs) {
            engine.aux_put(Space::Index, &entry_engine_key(*id, &e), &[])?;
        }
    }
    Ok(())
}
