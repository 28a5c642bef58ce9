//! A clean restart keeps indexes and resumes builds; a crash is repaired at start; a
//! dropped index is deleted and can be defined again.

use super::*;

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
