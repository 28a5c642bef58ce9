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

use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, Transactional};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "none".into());
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
