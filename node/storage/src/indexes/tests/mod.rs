//! Local indexes follow every path that changes a stored sibling set (`writes`), survive
//! restarts, crashes and drops (`restarts`), and answer scans (`scans`). Tests compare the
//! index with one recomputed from the stored documents; the helpers live here.

mod restarts;
mod scans;
mod writes;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringdb_core::clock::{Clock, ManualClock};
use ringdb_core::version::{CausalContext, SiblingSet};
use ringdb_query::index::{entries, entry_key};
use ringdb_query::{Condition, Op, Path};
use serde_json::{json, Value};

use super::{entry_engine_key, BuildPace, IndexError, IndexState};
use crate::keys::address_of;
use crate::{Durability, Engine, MemEngine, Mint, PoolConfig, Space, Storage};

pub(super) fn path(p: &str) -> Path {
    Path::parse(p).unwrap()
}

pub(super) fn doc(v: Value) -> Option<Bytes> {
    Some(Bytes::from(v.to_string()))
}

pub(super) fn write(value: Option<Bytes>, context: CausalContext, expires_ms: Option<u64>) -> Mint {
    Mint {
        actor: "n1.1".into(),
        context,
        value,
        timestamp_ms: 1,
        expires_ms,
    }
}

/// A storage on `engine` whose index upkeep runs unpaced in the background.
pub(super) fn start(
    engine: Arc<MemEngine>,
    clock: Arc<ManualClock>,
) -> (Storage, tokio::task::JoinHandle<()>) {
    let s = Storage::start_with_clock(engine, PoolConfig::default(), clock).unwrap();
    let upkeep = tokio::spawn(s.clone().run_index_upkeep(BuildPace {
        batch: 64,
        keys_per_sec: 0,
    }));
    (s, upkeep)
}

pub(super) fn fresh() -> (
    Storage,
    tokio::task::JoinHandle<()>,
    Arc<MemEngine>,
    Arc<ManualClock>,
) {
    let engine = Arc::new(MemEngine::default());
    let clock = Arc::new(ManualClock::new(1_000));
    let (s, upkeep) = start(engine.clone(), clock.clone());
    (s, upkeep, engine, clock)
}

pub(super) async fn wait_ready(s: &Storage, collection: &str, p: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.indexes().state_of(collection, p) != Some(IndexState::Ready) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "index {collection} ({p}) not ready: {:?}",
            s.indexes().state_of(collection, p)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every entry the index holds on this replica, paging through it.
pub(super) async fn held(s: &Storage, collection: &str, p: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (page, _) = s
            .index_entries(collection, p, after.as_deref(), 500)
            .await
            .unwrap();
        let done = page.len() < 500;
        after = page.last().cloned();
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The entries the index should hold: recomputed from every stored document.
pub(super) fn recomputed(engine: &MemEngine, collection: &str, p: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    engine
        .for_each_data(&mut |k, v| {
            let Some((c, key)) = address_of(k) else {
                return;
            };
            if c != collection {
                return;
            }
            let set = SiblingSet::decode(&Bytes::copy_from_slice(v)).unwrap();
            let docs: Vec<Value> = set
                .live_values()
                .filter_map(|b| serde_json::from_slice(b).ok())
                .collect();
            out.extend(entries(p, key, &docs));
        })
        .unwrap();
    out
}

/// Assert two entry sets are equal, printing only how they differ.
pub(super) fn assert_same(held: &BTreeSet<Vec<u8>>, want: &BTreeSet<Vec<u8>>, what: &str) {
    let extra: Vec<_> = held.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(held).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: {} stale entries (first {extra:?}), {} missing (first {missing:?})",
        held.difference(want).count(),
        want.difference(held).count()
    );
}

pub(super) fn e(v: Value, key: &str) -> Vec<u8> {
    entry_key(&v, key)
}
