//! What keeping an index in step with a document costs on sled, for the choice made in
//! `indexes/mod.rs`: separate writes (and a check after an unclean stop) or one sled
//! transaction per document write.
//!
//! Each of `--threads` threads (like the storage threads) writes its own keys: read the
//! key, write a 1 KiB document, and for `plain`/`txn` also remove one index entry and add
//! one (an update that changes the indexed value). `none` writes the document only.
//! Run each mode in its own process: sled switches every later operation of a process to a
//! global lock once a transaction has run.
//!
//! ```sh
//! cargo run --release -p ringdb-storage --example index_write_cost -- none
//! cargo run --release -p ringdb-storage --example index_write_cost -- plain
//! cargo run --release -p ringdb-storage --example index_write_cost -- txn
//! ```
//!
//! `storage K` measures the real write path instead: the storage pool on sled with K ready
//! indexes on the collection, 64 writers each replacing its own documents (1 KiB, every
//! indexed value changing on each write), memory durability:
//!
//! ```sh
//! cargo run --release -p ringdb-storage --example index_write_cost -- storage 0
//! cargo run --release -p ringdb-storage --example index_write_cost -- storage 3
//! ```

use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, Transactional};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "none".into());
    if mode == "storage" {
        let indexes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
        let writes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
        storage_path(indexes, writes);
        return;
    }
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let per_thread: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let dir = std::env::temp_dir().join(format!("ringdb-index-cost-{}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(256 << 20)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(Some(1000))
        .open()
        .expect("open sled");
    let data = db.open_tree("data").expect("data tree");
    let index = db.open_tree("index").expect("index tree");
    let doc = vec![b'x'; 1024];
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (data, index, doc, mode) = (&data, &index, &doc, mode.as_str());
            s.spawn(move || {
                for i in 0..per_thread {
                    let key = format!("{t:02}-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let old = format!("\x01idx-old-{i:08}{key}");
                    let new = format!("\x01idx-new-{i:08}{key}");
                    let _ = data.get(key.as_bytes()).expect("get");
                    match mode {
                        "none" => {
                            data.insert(key.as_bytes(), doc.as_slice()).expect("put");
                        }
                        "plain" => {
                            data.insert(key.as_bytes(), doc.as_slice()).expect("put");
                            index.remove(old.as_bytes()).expect("remove");
                            index.insert(new.as_bytes(), &[]).expect("insert");
                        }
                        "txn" => {
                            (data, index)
                                .transaction(|(d, x)| {
                                    d.insert(key.as_bytes(), doc.as_slice())?;
                                    x.remove(old.as_bytes())?;
                                    x.insert(new.as_bytes(), &[])?;
                                    Ok::<(), ConflictableTransactionError<()>>(())
                                })
                                .expect("transaction");
                        }
                        other => panic!("unknown mode {other}: none, plain or txn"),
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let writes = threads as u64 * per_thread;
    println!(
        "mode={mode} threads={threads} writes={writes} seconds={elapsed:.2} writes_per_sec={:.0}",
        writes as f64 / elapsed
    );
    drop((data, index, db));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real write path: mints through the storage pool with `indexes` ready indexes.
fn storage_path(indexes: usize, writes: u64) {
    use bytes::Bytes;
    use ringdb_core::version::CausalContext;
    use ringdb_storage::{Durability, IndexState, Mint, PoolConfig, SledEngine, Storage};

    let dir = std::env::temp_dir().join(format!("ringdb-index-path-{}", std::process::id()));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let per_writer = writes / 64;
    let elapsed = rt.block_on(async {
        let engine = SledEngine::open(&dir, 256 << 20, 1000).expect("open sled");
        let s = Storage::start(std::sync::Arc::new(engine), PoolConfig::default()).expect("start");
        let paths: Vec<(String, ringdb_query::Path)> = ["a", "b.c", "tags[]"]
            .iter()
            .take(indexes)
            .map(|p| ("c".to_string(), ringdb_query::Path::parse(p).expect("path")))
            .collect();
        s.indexes().define(&paths);
        let upkeep = tokio::spawn(s.clone().run_index_upkeep(Default::default()));
        while paths
            .iter()
            .any(|(c, p)| s.indexes().state_of(c, p) != Some(IndexState::Ready))
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let pad = "x".repeat(900);
        let started = Instant::now();
        let tasks: Vec<_> = (0..64u64)
            .map(|w| {
                let (s, pad) = (s.clone(), pad.clone());
                tokio::spawn(async move {
                    let mut contexts: Vec<CausalContext> = vec![CausalContext::new(); 100];
                    for i in 0..per_writer {
                        let slot = (i % 100) as usize;
                        let doc = serde_json::json!({
                            "a": i, "b": {"c": format!("v{i}")}, "tags": [i % 7, i % 11], "pad": pad,
                        });
                        let m = s
                            .mint(
                                "c",
                                &format!("w{w}-{slot}"),
                                Mint {
                                    actor: "n1.1".into(),
                                    context: contexts[slot].clone(),
                                    value: Some(Bytes::from(doc.to_string())),
                                    timestamp_ms: 1,
                                    expires_ms: None,
                                },
                                Durability::Memory,
                            )
                            .await
                            .expect("mint");
                        contexts[slot] = m.context;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
        let elapsed = started.elapsed().as_secs_f64();
        upkeep.abort();
        elapsed
    });
    let total = per_writer * 64;
    println!(
        "mode=storage indexes={indexes} writes={total} seconds={elapsed:.2} writes_per_sec={:.0}",
        total as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
}
