//! The index check after an unclean stop, fed by the startup scan that rebuilds the hash
//! trees (see the crate's `indexes` docs for why writes are not transactions).
//!
//! The token space is cut into 4,096 buckets (the top 12 bits of the order-preserving
//! token). For each ready index, the scan XORs the hash of every entry the stored
//! documents should have into their document's bucket; [`Check::finish`] then reads the
//! index and does the same for what it holds. A bucket whose two hashes differ is
//! repaired: its documents' entries are deleted and written again from the documents (one
//! token range each). A building index is rebuilt from the start under a new id.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use ringdb_core::merkle::entry_hash;
use ringdb_core::token::token_for;
use ringdb_core::version::SiblingSet;
use ringdb_query::index::entries;
use ringdb_query::value::split_entry;
use ringdb_query::Path;

use super::catalog::{IndexCatalog, Phase};
use super::upkeep::{documents, index_document};
use super::{entry_engine_key, id_end};
use crate::keys::{address_of, token_prefix};
use crate::{Engine, Space, StorageError};

const BUCKETS: usize = 1 << 12;

/// Rows read per engine call while checking.
const PAGE: usize = 4096;

/// The bucket of an engine key (its token's top 12 bits).
fn bucket_of_key(storage_key: &[u8]) -> usize {
    let top = [
        storage_key.first().copied().unwrap_or(0),
        storage_key.get(1).copied().unwrap_or(0),
    ];
    usize::from(u16::from_be_bytes(top) >> 4)
}

/// The bucket of a document.
fn bucket_of(collection: &str, key: &str) -> usize {
    bucket_of_key(&token_prefix(token_for(collection, key)))
}

fn entry_hash_of(entry: &[u8]) -> u64 {
    entry_hash(entry, &[])
}

/// One ready index and the hashes its entries should XOR to, per bucket.
struct Expect {
    id: u64,
    collection: String,
    path: Path,
    xor: Vec<u64>,
}

/// The check of every ready index, fed data entries by the startup scan.
pub(crate) struct Check {
    by_collection: HashMap<String, Vec<Expect>>,
}

impl Check {
    /// A check of the ready indexes in `catalog`.
    pub(crate) fn new(catalog: &IndexCatalog) -> Check {
        let mut by_collection: HashMap<String, Vec<Expect>> = HashMap::new();
        for r in catalog.in_phase(|p| *p == Phase::Ready) {
            by_collection
                .entry(r.collection.clone())
                .or_default()
                .push(Expect {
                    id: r.id,
                    collection: r.collection,
                    path: r.path,
                    xor: vec![0; BUCKETS],
                });
        }
        Check { by_collection }
    }

    /// Account for one stored document.
    pub(crate) fn observe(&mut self, storage_key: &[u8], value: &[u8]) {
        let Some((collection, key)) = address_of(storage_key) else {
            return;
        };
        let Some(expects) = self.by_collection.get_mut(collection) else {
            return;
        };
        let Ok(set) = SiblingSet::decode(&Bytes::copy_from_slice(value)) else {
            return;
        };
        let live: Vec<Bytes> = set.live_values().cloned().collect();
        let docs = documents(&live);
        let bucket = bucket_of_key(storage_key);
        for x in expects.iter_mut() {
            for e in entries(&x.path, key, &docs) {
                x.xor[bucket] ^= entry_hash_of(&entry_engine_key(x.id, &e));
            }
        }
    }

    /// After the scan: repair what differs, and rebuild building indexes from the start.
    pub(crate) fn finish(
        self,
        engine: &dyn Engine,
        catalog: &IndexCatalog,
    ) -> Result<(), StorageError> {
        for r in catalog.in_phase(|p| matches!(p, Phase::Building { .. })) {
            // Which documents it holds exactly is unknown after a crash.
            catalog.restart(r.id);
        }
        for x in self.by_collection.into_values().flatten() {
            repair(engine, &x)?;
        }
        Ok(())
    }
}

/// Visit every entry of index `id` (engine keys), page by page.
fn each_entry(
    engine: &dyn Engine,
    id: u64,
    visit: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let end = id_end(id);
    let mut from = id.to_be_bytes().to_vec();
    loop {
        let rows = engine.aux_range(Space::Index, &from, end.as_deref(), PAGE)?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        from = last.clone();
        from.push(0);
        for (k, _) in &rows {
            visit(k)?;
        }
        if rows.len() < PAGE {
            return Ok(());
        }
    }
}

/// Compare one ready index with its documents and repair the buckets that differ.
fn repair(engine: &dyn Engine, x: &Expect) -> Result<(), StorageError> {
    let mut actual = vec![0u64; BUCKETS];
    let mut garbage = 0u64;
    each_entry(engine, x.id, &mut |k| {
        match split_entry(k.get(8..).unwrap_or_default()) {
            Ok((_, key)) => actual[bucket_of(&x.collection, key)] ^= entry_hash_of(k),
            Err(_) => garbage += 1,
        }
        Ok(())
    })?;
    let differ: BTreeSet<usize> = (0..BUCKETS).filter(|b| actual[*b] != x.xor[*b]).collect();
    if differ.is_empty() && garbage == 0 {
        return Ok(());
    }
    tracing::warn!(
        collection = %x.collection,
        path = %x.path,
        buckets = differ.len(),
        garbage,
        "after an unclean stop, index entries disagreed with their documents; repairing those buckets"
    );
    let mut stale = Vec::new();
    each_entry(engine, x.id, &mut |k| {
        let bad = split_entry(k.get(8..).unwrap_or_default()).map_or(true, |(_, key)| {
            differ.contains(&bucket_of(&x.collection, key))
        });
        if bad {
            stale.push(k.to_vec());
        }
        Ok(())
    })?;
    for k in &stale {
        engine.aux_delete(Space::Index, k)?;
    }
    let target = [(x.id, x.path.clone())];
    for b in &differ {
        let first = ((*b as u16) << 4).to_be_bytes();
        let last = (((*b as u16) << 4) | 0xf).to_be_bytes();
        let mut from = first.to_vec();
        let mut to = last.to_vec();
        to.extend_from_slice(&[0xff; 14]);
        loop {
            let rows = engine.scan_data(&from, &to, PAGE)?;
            for (k, v) in &rows {
                if address_of(k).is_some_and(|(c, _)| c == x.collection) {
                    let set = SiblingSet::decode(&Bytes::copy_from_slice(v))?;
                    let live: Vec<Bytes> = set.live_values().cloned().collect();
                    index_document(engine, k, &live, &target)?;
                }
            }
            match rows.last() {
                Some((k, _)) if rows.len() == PAGE => {
                    from = k.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Find every index id with entries on disk and hand them to the catalog, which treats
/// those it does not know as orphans and allocates new ids above all of them.
pub(crate) fn adopt_ids_on_disk(
    engine: &dyn Engine,
    catalog: &IndexCatalog,
) -> Result<(), StorageError> {
    let mut ids = Vec::new();
    let mut from = Vec::new();
    loop {
        let rows = engine.aux_range(Space::Index, &from, None, 1)?;
        let Some((k, _)) = rows.first() else {
            break;
        };
        let mut head = [0u8; 8];
        let n = k.len().min(8);
        head[..n].copy_from_slice(&k[..n]);
        let id = u64::from_be_bytes(head);
        ids.push(id);
        match id_end(id) {
            Some(next) => from = next,
            None => break,
        }
    }
    catalog.adopt(&ids);
    Ok(())
}
