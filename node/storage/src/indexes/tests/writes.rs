//! Entries follow mint, merge (siblings), delete, purge and TTL expiry, and a build
//! racing writes to the same keys leaves the index exact.

use super::*;

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
