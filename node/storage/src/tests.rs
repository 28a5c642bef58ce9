//! The storage pool end to end: durability across a reopen, hash-tree checkpoints and
//! rebuilds, group commit and overload.

use super::*;

fn mint(v: &'static str) -> Mint {
    Mint {
        actor: "n1.1".into(),
        context: CausalContext::new(),
        value: Some(Bytes::from_static(v.as_bytes())),
        timestamp_ms: 1,
        expires_ms: None,
    }
}

#[tokio::test]
async fn minted_writes_survive_reopen_of_sled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Arc::new(SledEngine::open(dir.path(), 1 << 20, 1000).unwrap());
        let s = Storage::start(engine, PoolConfig::default()).unwrap();
        s.mint("c", "k", mint("{\"a\":1}"), Durability::Durable)
            .await
            .unwrap();
        s.mint("c", "k", mint("{\"a\":2}"), Durability::Durable)
            .await
            .unwrap();
        assert_eq!(s.stats().keys.load(Ordering::Relaxed), 1);
    }
    // The old storage threads release sled's lock as they wind down after the drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let engine = loop {
        match SledEngine::open(dir.path(), 1 << 20, 1000) {
            Ok(e) => break Arc::new(e),
            Err(e) if std::time::Instant::now() > deadline => panic!("reopen: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let s = Storage::start(engine, PoolConfig::default()).unwrap();
    let set = s.read("c", "k").await.unwrap();
    assert_eq!(
        set.live_values().count(),
        2,
        "two blind writes are siblings"
    );
    assert_eq!(s.stats().keys.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn hash_trees_survive_a_clean_stop_and_are_rebuilt_after_a_crash() {
    let engine = Arc::new(MemEngine::default());
    let s = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
    for i in 0..300 {
        s.mint("c", &i.to_string(), mint("{}"), Durability::Memory)
            .await
            .unwrap();
    }
    s.mint("d", "x", mint("{}"), Durability::Memory)
        .await
        .unwrap();
    let roots = s.trees().roots();
    assert_eq!(roots.len(), 2);
    assert!(roots.iter().all(|(_, r)| *r != 0));
    // Crash: no checkpoint; the restart rebuilds the same trees from the data.
    let crashed = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
    assert_eq!(crashed.trees().roots(), roots);
    assert_eq!(crashed.stats().keys.load(Ordering::Relaxed), 301);
    // Clean stop: the checkpoint is loaded, and writes after it are refused.
    crashed.checkpoint().await.unwrap();
    let refused = crashed
        .mint("c", "late", mint("{}"), Durability::Memory)
        .await;
    assert!(matches!(refused, Err(StorageError::Stopped)), "{refused:?}");
    engine
        .put(
            &storage_key(token_for("c", "0"), "c", "0"),
            b"not a sibling set",
        )
        .unwrap();
    let restored = Storage::start(engine.clone(), PoolConfig::default()).unwrap();
    assert_eq!(
        restored.trees().roots(),
        roots,
        "the checkpoint, not a rescan (which would see the overwritten key), was used"
    );
    assert_eq!(restored.stats().keys.load(Ordering::Relaxed), 301);
    // The range hash over everything equals the root; a sub-range matches its keys.
    let all = restored.range_hash("c", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(all, roots[0].1);
    let t = token_for("c", "7");
    let keys = restored.key_hashes("c", t, t).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(restored.range_hash("c", t, t).await.unwrap(), keys[0].1);
}

/// An engine whose fsync takes 5 ms, like a real disk.
#[derive(Default)]
struct SlowFlush(MemEngine);

impl Engine for SlowFlush {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError> {
        self.0.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError> {
        self.0.delete(key)
    }
    fn flush(&self) -> Result<(), StorageError> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        Ok(())
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get_meta(key)
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.0.put_meta(key, value)
    }
    fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        self.0.for_each_data(visit)
    }
    fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.0.aux_put(space, key, value)
    }
    fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
        self.0.aux_delete(space, key)
    }
    fn aux_scan(&self, space: Space, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.0.aux_scan(space, prefix, limit)
    }
    fn next_id(&self) -> Result<u64, StorageError> {
        self.0.next_id()
    }
    fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.0.scan_data(from, to, limit)
    }
}

#[tokio::test]
async fn concurrent_durable_writes_share_flushes() {
    let s = Storage::start(Arc::new(SlowFlush::default()), PoolConfig::default()).unwrap();
    let futs = (0..200).map(|i| {
        let s = s.clone();
        async move {
            s.mint("c", &i.to_string(), mint("{}"), Durability::Durable)
                .await
        }
    });
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
    assert_eq!(s.stats().flushed_writes.load(Ordering::Relaxed), 200);
    let flushes = s.stats().flushes.load(Ordering::Relaxed);
    assert!(
        flushes <= 20,
        "200 concurrent writes took {flushes} flushes: group commit is not grouping"
    );
}

#[tokio::test]
async fn full_queue_is_overload_not_growth() {
    let s = Storage::start(
        Arc::new(MemEngine::default()),
        PoolConfig {
            threads: 1,
            queue_depth: 1,
        },
    )
    .unwrap();
    let futs = (0..500).map(|i| {
        let s = s.clone();
        async move {
            s.mint("c", &i.to_string(), mint("{}"), Durability::Memory)
                .await
        }
    });
    let results = futures::future::join_all(futs).await;
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(StorageError::Overloaded(1)))));
    assert!(results.iter().any(|r| r.is_ok()));
}
