//! Local indexes follow every path that changes a stored sibling set, survive restarts
//! and crashes, and a build racing writes to the same keys leaves the index exact: each
//! test compares the index with one recomputed from the stored documents.

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

fn path(p: &str) -> Path {
    Path::parse(p).unwrap()
}

fn doc(v: Value) -> Option<Bytes> {
    Some(Bytes::from(v.to_string()))
}

fn write(value: Option<Bytes>, context: CausalContext, expires_ms: Option<u64>) -> Mint {
    Mint {
        actor: "n1.1".into(),
        context,
        value,
        timestamp_ms: 1,
        expires_ms,
    }
}

/// A storage on `engine` whose index upkeep runs unpaced in the background.
fn start(
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

fn fresh() -> (
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

async fn wait_ready(s: &Storage, collection: &str, p: &Path) {
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
async fn held(s: &Storage, collection: &str, p: &Path) -> BTreeSet<Vec<u8>> {
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
fn recomputed(engine: &MemEngine, collection: &str, p: &Path) -> BTreeSet<Vec<u8>> {
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
fn assert_same(held: &BTreeSet<Vec<u8>>, want: &BTreeSet<Vec<u8>>, what: &str) {
    let extra: Vec<_> = held.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(held).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: {} stale entries (first {extra:?}), {} missing (first {missing:?})",
        held.difference(want).count(),
        want.difference(held).count()
    );
}

fn e(v: Value, key: &str) -> Vec<u8> {
    entry_key(&v, key)
}

#[tokio::test]
async fn entries_follow_mint_siblings_delete_and_purge() {
    let (s, upkeep, engine, _) = fresh();
    let (c, tags) = ("docs", path("tags[]"));
    s.indexes().define(&[(c.to_string(), tags.clone())]);
    wait_ready(&s, c, &tags).await;

    let m = s
        .mint(
            c,
            "k",
            write(doc(json!({"tags": ["a", "b"]})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    assert_eq!(
        held(&s, c, &tags).await,
        [e(json!("a"), "k"), e(json!("b"), "k")].into()
    );
    // Replacing what was read changes the entries.
    s.mint(
        c,
        "k",
        write(doc(json!({"tags": ["b", "c"]})), m.context, None),
        Durability::Memory,
    )
    .await
    .unwrap();
    assert_eq!(
        held(&s, c, &tags).await,
        [e(json!("b"), "k"), e(json!("c"), "k")].into()
    );
    // A concurrent version merged in from another replica: indexed under both siblings.
    let mut theirs = SiblingSet::new();
    theirs.apply_write(
        "n2.1",
        &CausalContext::new(),
        doc(json!({"tags": ["z"]})),
        2,
    );
    s.merge(c, "k", theirs, Durability::Memory).await.unwrap();
    assert_eq!(s.read(c, "k").await.unwrap().live_values().count(), 2);
    assert_eq!(
        held(&s, c, &tags).await,
        [e(json!("b"), "k"), e(json!("c"), "k"), e(json!("z"), "k")].into()
    );
    // A delete that saw both siblings leaves a tombstone: no entries.
    let seen = s.read(c, "k").await.unwrap().context().clone();
    s.mint(c, "k", write(None, seen, None), Durability::Memory)
        .await
        .unwrap();
    assert!(held(&s, c, &tags).await.is_empty());
    // Other collections and documents without the path index nothing.
    s.mint(
        "other",
        "k",
        write(doc(json!({"tags": ["a"]})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    s.mint(
        c,
        "plain",
        write(doc(json!({"x": 1})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    assert!(held(&s, c, &tags).await.is_empty());
    // A purge removes a key's entries with it (purge goes through the same path).
    s.mint(
        c,
        "p",
        write(doc(json!({"tags": [1]})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    assert_eq!(held(&s, c, &tags).await, [e(json!(1), "p")].into());
    let h = s.entry_hash_of(c, "p").await.unwrap().unwrap();
    assert!(s.purge_if(c, "p", h).await.unwrap());
    assert!(held(&s, c, &tags).await.is_empty());
    assert_same(
        &held(&s, c, &tags).await,
        &recomputed(&engine, c, &tags),
        "index vs documents",
    );
    upkeep.abort();
}

#[tokio::test]
async fn ttl_expiry_removes_entries_at_the_injected_clock() {
    let (s, upkeep, _, clock) = fresh();
    let (c, name) = ("sessions", path("user.name"));
    s.indexes().define(&[(c.to_string(), name.clone())]);
    wait_ready(&s, c, &name).await;
    let soon = clock.now_ms() + 5_000;
    s.mint(
        c,
        "s1",
        write(
            doc(json!({"user": {"name": "ann"}})),
            CausalContext::new(),
            Some(soon),
        ),
        Durability::Memory,
    )
    .await
    .unwrap();
    s.mint(
        c,
        "s2",
        write(
            doc(json!({"user": {"name": "bob"}})),
            CausalContext::new(),
            None,
        ),
        Durability::Memory,
    )
    .await
    .unwrap();
    assert_eq!(held(&s, c, &name).await.len(), 2);
    assert_eq!(
        s.sweep_expired(clock.now_ms(), 100).await.unwrap(),
        0,
        "not due yet"
    );
    clock.advance(Duration::from_secs(5));
    assert_eq!(s.sweep_expired(clock.now_ms(), 100).await.unwrap(), 1);
    assert_eq!(held(&s, c, &name).await, [e(json!("bob"), "s2")].into());
    upkeep.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_racing_writes_to_the_same_keys_leaves_the_index_exact() {
    let (s, upkeep, engine, _) = fresh();
    let (c, n) = ("items", path("n"));
    let keys: Vec<String> = (0..1500).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        s.mint(
            c,
            k,
            write(doc(json!({"n": i})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    s.mint(
        "noise",
        "x",
        write(doc(json!({"n": 1})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    s.indexes().define(&[(c.to_string(), n.clone())]);
    // Writers rewrite, add siblings to and delete the same keys while the build runs.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (s, keys, c) = (s.clone(), keys.clone(), c.to_string());
            tokio::spawn(async move {
                for round in 0..3u64 {
                    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 4 == w) {
                        let cur = s.read(&c, k).await.unwrap();
                        let v = (i as u64) * 10 + round;
                        match (i + round as usize) % 5 {
                            0 => {
                                s.mint(
                                    &c,
                                    k,
                                    write(None, cur.context().clone(), None),
                                    Durability::Memory,
                                )
                                .await
                                .unwrap();
                            }
                            1 => {
                                let mut theirs = SiblingSet::new();
                                theirs.apply_write(
                                    &format!("n{w}.9"),
                                    &CausalContext::new(),
                                    doc(json!({"n": [v]})),
                                    2,
                                );
                                s.merge(&c, k, theirs, Durability::Memory).await.unwrap();
                            }
                            _ => {
                                s.mint(
                                    &c,
                                    k,
                                    write(doc(json!({"n": v})), cur.context().clone(), None),
                                    Durability::Memory,
                                )
                                .await
                                .unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    wait_ready(&s, c, &n).await;
    let want = recomputed(&engine, c, &n);
    assert!(want.len() > 500, "the test writes enough: {}", want.len());
    assert_same(
        &held(&s, c, &n).await,
        &want,
        "after the build and the writers",
    );
    upkeep.abort();
}

#[tokio::test]
async fn a_clean_restart_keeps_the_index_and_resumes_a_build() {
    let engine = Arc::new(MemEngine::default());
    let clock = Arc::new(ManualClock::new(1_000));
    let s =
        Storage::start_with_clock(engine.clone(), PoolConfig::default(), clock.clone()).unwrap();
    let (c, a, b) = ("c", path("a"), path("b"));
    for i in 0..300 {
        s.mint(
            c,
            &format!("k{i}"),
            write(doc(json!({"a": i, "b": -i})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    s.indexes().define(&[(c.to_string(), a.clone())]);
    // Build `a` fully by hand, then define `b` and stop before its build starts.
    let upkeep = tokio::spawn(s.clone().run_index_upkeep(BuildPace {
        batch: 64,
        keys_per_sec: 0,
    }));
    wait_ready(&s, c, &a).await;
    upkeep.abort();
    let _ = upkeep.await;
    s.indexes()
        .define(&[(c.to_string(), a.clone()), (c.to_string(), b.clone())]);
    s.mint(
        c,
        "late",
        write(
            doc(json!({"a": 1000, "b": 1000})),
            CausalContext::new(),
            None,
        ),
        Durability::Memory,
    )
    .await
    .unwrap();
    s.checkpoint().await.unwrap();
    drop(s);

    let (s, upkeep) = start(engine.clone(), clock);
    assert_eq!(s.indexes().state_of(c, &a), Some(IndexState::Ready));
    assert_same(
        &held(&s, c, &a).await,
        &recomputed(&engine, c, &a),
        "index vs documents",
    );
    wait_ready(&s, c, &b).await;
    assert_same(
        &held(&s, c, &b).await,
        &recomputed(&engine, c, &b),
        "index vs documents",
    );
    assert_eq!(held(&s, c, &b).await.len(), 301);
    upkeep.abort();
}

#[tokio::test]
async fn after_a_crash_disagreeing_entries_are_repaired_and_builds_start_over() {
    let engine = Arc::new(MemEngine::default());
    let clock = Arc::new(ManualClock::new(1_000));
    let (s, upkeep) = start(engine.clone(), clock.clone());
    let (c, a, b) = ("c", path("a"), path("b"));
    s.indexes().define(&[(c.to_string(), a.clone())]);
    wait_ready(&s, c, &a).await;
    for i in 0..500 {
        s.mint(
            c,
            &format!("k{i}"),
            write(doc(json!({"a": i % 7, "b": i})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    let (id_a, _) = s.indexes().lookup(c, &a).unwrap();
    upkeep.abort();
    let _ = upkeep.await;
    // `b` is defined but its build never ran: at the crash it is building.
    s.indexes()
        .define(&[(c.to_string(), a.clone()), (c.to_string(), b.clone())]);
    s.mint(
        c,
        "k1",
        write(doc(json!({"a": 99, "b": 99})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    let (id_b, _) = s.indexes().lookup(c, &b).unwrap();
    // What a crash between a document write and its index writes leaves: a stale entry,
    // a missing one, and garbage. No checkpoint: the next start is unclean.
    s.run(move |e| {
        e.aux_put(
            Space::Index,
            &entry_engine_key(id_a, &entry_key(&json!(5), "k3")),
            &[],
        )?;
        e.aux_delete(
            Space::Index,
            &entry_engine_key(id_a, &entry_key(&json!(2), "k9")),
        )?;
        e.aux_put(
            Space::Index,
            &entry_engine_key(id_a, b"\xee not an entry"),
            &[],
        )
    })
    .await
    .unwrap();
    s.indexes().persist(engine.as_ref()).unwrap();
    drop(s);

    let (s, upkeep) = start(engine.clone(), clock);
    assert_eq!(s.indexes().state_of(c, &a), Some(IndexState::Ready));
    assert_same(
        &held(&s, c, &a).await,
        &recomputed(&engine, c, &a),
        "repaired at start",
    );
    let (new_b, _) = s.indexes().lookup(c, &b).unwrap();
    assert!(
        new_b > id_b,
        "the building index starts over under a new id"
    );
    wait_ready(&s, c, &b).await;
    assert_same(
        &held(&s, c, &b).await,
        &recomputed(&engine, c, &b),
        "index vs documents",
    );
    // The old id's entries are deleted in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = engine
            .aux_scan(Space::Index, &id_b.to_be_bytes(), 1)
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orphaned entries stay"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    upkeep.abort();
}

#[tokio::test]
async fn dropping_stops_upkeep_and_deletes_entries_and_redefining_rebuilds() {
    let (s, upkeep, engine, _) = fresh();
    let (c, a) = ("c", path("a"));
    s.indexes().define(&[(c.to_string(), a.clone())]);
    for i in 0..200 {
        s.mint(
            c,
            &format!("k{i}"),
            write(doc(json!({"a": i})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    wait_ready(&s, c, &a).await;
    let (id, _) = s.indexes().lookup(c, &a).unwrap();
    s.indexes().define(&[]);
    assert!(s.indexes().state_of(c, &a).is_none());
    assert!(matches!(
        s.index_entries(c, &a, None, 10).await,
        Err(IndexError::NoSuchIndex { .. })
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !engine
        .aux_scan(Space::Index, &id.to_be_bytes(), 1)
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries of a dropped index stay"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.indexes().define(&[(c.to_string(), a.clone())]);
    wait_ready(&s, c, &a).await;
    assert_eq!(held(&s, c, &a).await.len(), 200);
    upkeep.abort();
}

#[tokio::test]
async fn scans_read_ranges_in_entry_order_with_current_documents() {
    let (s, upkeep, _, _) = fresh();
    let (c, age) = ("people", path("age"));
    for (k, v) in [
        ("ann", json!(31)),
        ("bob", json!(25)),
        ("cy", json!(40)),
        ("dee", json!("x")),
        ("eve", json!(25.0)),
    ] {
        s.mint(
            c,
            k,
            write(doc(json!({"age": v})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    let ge30 = Condition::new(age.clone(), Op::Ge(json!(30)))
        .unwrap()
        .ranges();
    assert!(matches!(
        s.index_scan(c, &age, &ge30, None, 10).await,
        Err(IndexError::NoSuchIndex { .. })
    ));
    s.indexes().define(&[(c.to_string(), age.clone())]);
    wait_ready(&s, c, &age).await;
    let hits = s.index_scan(c, &age, &ge30, None, 10).await.unwrap();
    let got: Vec<(Value, &str)> = hits
        .iter()
        .map(|h| (h.value.clone(), h.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [(json!(31), "ann"), (json!(40), "cy")],
        "numbers only, by value"
    );
    let set = SiblingSet::decode(&hits[0].siblings).unwrap();
    assert_eq!(set.live_values().count(), 1);
    // Equality across representations, then a limit and a resume point.
    let eq25 = Condition::new(age.clone(), Op::Eq(json!(25)))
        .unwrap()
        .ranges();
    let hits = s.index_scan(c, &age, &eq25, None, 1).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, "bob");
    let rest = s
        .index_scan(c, &age, &eq25, Some(&hits[0].entry), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
        ["eve"]
    );
    // Key order without an index, after a resume key; tombstones are left out.
    let m = s.read(c, "cy").await.unwrap();
    s.mint(
        c,
        "cy",
        write(None, m.context().clone(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    let all = s.collection_scan(c, Some("ann"), 10).await.unwrap();
    let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["bob", "dee", "eve"]);
    assert_eq!(s.collection_scan(c, None, 2).await.unwrap().len(), 2);
    upkeep.abort();
}

#[tokio::test]
async fn a_building_index_refuses_scans_with_its_progress() {
    let engine = Arc::new(MemEngine::default());
    let s = Storage::start(engine, PoolConfig::default()).unwrap();
    let (c, a) = ("c", path("a"));
    for i in 0..10 {
        s.mint(
            c,
            &format!("k{i}"),
            write(doc(json!({"a": i})), CausalContext::new(), None),
            Durability::Memory,
        )
        .await
        .unwrap();
    }
    s.indexes().define(&[(c.to_string(), a.clone())]);
    let all = Condition::new(a.clone(), Op::Exists).unwrap().ranges();
    match s.index_scan(c, &a, &all, None, 10).await {
        Err(IndexError::IndexNotReady { progress, .. }) => assert_eq!(progress.done, 0),
        other => panic!("expected IndexNotReady, got {other:?}"),
    }
    // Writes maintain a building index at once: only the build fills in old documents.
    s.mint(
        c,
        "new",
        write(doc(json!({"a": 77})), CausalContext::new(), None),
        Durability::Memory,
    )
    .await
    .unwrap();
    let (entries, state) = s.index_entries(c, &a, None, 100).await.unwrap();
    assert_eq!(entries, vec![e(json!(77), "new")]);
    assert!(matches!(state, IndexState::Building(_)));
}
