//! Index range scans, collection scans in key order, and what a building index answers.

use super::*;

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
