//! `ringdb-bench queryload`: writes the query benchmark's documents ([`crate::querydata`])
//! into a RingDB collection and creates the indexes of [`crate::queryspec::INDEXES`], then
//! waits until every node reports them ready. `ringdb-bench index` creates indexes alone
//! (the YCSB write-cost runs index a collection before loading it).
//!
//! The load is `--concurrency` workers sharing the client's pipelined streams, each taking
//! the next record number; every write is durable at the given level. Indexes are created
//! before the load (`--index-first`: every write maintains them) or after it (the default,
//! as PostgreSQL's side does: the nodes build them in the background). The last stdout
//! line is one JSON object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use ringdb_client::{Client, Consistency, Durability, IndexState, WriteOptions};
use serde_json::json;

use crate::querydata::Dataset;
use crate::queryspec::INDEXES;

/// Arguments of `ringdb-bench queryload`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Nodes to connect to, HOST:PORT,...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403"
    )]
    pub hosts: Vec<String>,
    /// Collection to load (created with `--replication` if it does not exist).
    #[arg(long, default_value = "docs")]
    pub collection: String,
    /// Replicas per key of the collection when this creates it (0: the cluster default).
    #[arg(long, default_value_t = 0)]
    pub replication: u32,
    /// Documents to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Seed of the documents (the same as PostgreSQL's side).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Writes in flight.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Write consistency level.
    #[arg(long, default_value = "QUORUM")]
    pub write_consistency: Consistency,
    /// Write durability: DURABLE (fsync) or MEMORY.
    #[arg(long, default_value = "DURABLE")]
    pub durability: Durability,
    /// Create the indexes before writing (every write maintains them) instead of after.
    #[arg(long)]
    pub index_first: bool,
    /// Do not create indexes.
    #[arg(long)]
    pub no_indexes: bool,
    /// Seconds to wait for the indexes to be ready.
    #[arg(long, default_value_t = 1800)]
    pub index_timeout: u64,
}

/// Arguments of `ringdb-bench index`.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArgs {
    /// Nodes to connect to, HOST:PORT,...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403"
    )]
    pub hosts: Vec<String>,
    /// Collection to index (created with the default options if it does not exist).
    #[arg(long, default_value = "usertable")]
    pub collection: String,
    /// Paths to index, comma-separated (`field0,field1`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub paths: Vec<String>,
    /// Seconds to wait for the indexes to be ready.
    #[arg(long, default_value_t = 600)]
    pub index_timeout: u64,
}

async fn connect(hosts: &[String]) -> anyhow::Result<Client> {
    let client = Client::builder(hosts)
        .connect()
        .await
        .context("cannot connect")?;
    client.status().await.context("cluster not reachable")?;
    client
        .refresh_ring()
        .await
        .context("cannot fetch the ring for token-aware routing")?;
    Ok(client)
}

/// Create indexes on `paths` of `collection` (those that exist are kept) and wait until
/// the cluster reports every one ready; returns the seconds waited.
pub async fn index_and_wait(
    client: &Client,
    collection: &str,
    paths: &[&str],
    timeout: Duration,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    for path in paths {
        client
            .create_index(collection, path, true)
            .await
            .with_context(|| format!("cannot create the index on {collection}.{path}"))?;
    }
    let mut last_report = Instant::now();
    loop {
        let listed = client
            .indexes(Some(collection))
            .await
            .context("cannot list the indexes")?;
        let pending: Vec<String> = paths
            .iter()
            .filter_map(|p| match listed.iter().find(|i| i.path == *p) {
                Some(i) if i.state == IndexState::Ready => None,
                Some(i) => Some(format!("{p} {:?}", i.state)),
                None => Some(format!("{p} not listed")),
            })
            .collect();
        if pending.is_empty() {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > timeout {
            bail!(
                "indexes not ready after {} s: {}",
                timeout.as_secs(),
                pending.join(", ")
            );
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("waiting for indexes: {}", pending.join(", "));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `ringdb-bench index`.
pub async fn run_index(a: IndexArgs) -> anyhow::Result<()> {
    let client = connect(&a.hosts).await?;
    let paths: Vec<&str> = a.paths.iter().map(String::as_str).collect();
    let waited = index_and_wait(
        &client,
        &a.collection,
        &paths,
        Duration::from_secs(a.index_timeout),
    )
    .await?;
    println!(
        "{}",
        json!({"collection": a.collection, "indexes": a.paths, "ready_after_s": waited})
    );
    Ok(())
}

/// Runs `ringdb-bench queryload`; prints the JSON summary last.
pub async fn run(a: LoadArgs) -> anyhow::Result<()> {
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let data = Arc::new(Dataset::new(a.records, a.seed)?);
    let client = connect(&a.hosts).await?;
    client
        .create_collection(&a.collection, a.replication, true)
        .await
        .with_context(|| format!("cannot create collection {}", a.collection))?;
    let paths: Vec<&str> = if a.no_indexes {
        Vec::new()
    } else {
        INDEXES.iter().map(|(p, _)| *p).collect()
    };
    let timeout = Duration::from_secs(a.index_timeout);
    let mut index_s = 0.0;
    if a.index_first && !paths.is_empty() {
        index_s += index_and_wait(&client, &a.collection, &paths, timeout).await?;
    }
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let opts = WriteOptions::new()
        .consistency(a.write_consistency)
        .durability(a.durability);
    let workers: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (client, data, next, written, bytes, opts) = (
                client.clone(),
                data.clone(),
                next.clone(),
                written.clone(),
                bytes.clone(),
                opts.clone(),
            );
            let collection = a.collection.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= data.records() {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let doc = serde_json::to_vec(&data.document(i))?;
                    let key = Dataset::key(i);
                    let size = doc.len() as u64;
                    // The client already retries what is worth retrying; a write that still
                    // fails makes the data set incomplete, so the load fails.
                    client
                        .put_raw(&collection, &key, Bytes::from(doc), &opts)
                        .await
                        .with_context(|| format!("writing {key}"))?;
                    written.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(size, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let progress = {
        let written = written.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "[{:>4}s] {} documents written",
                    start.elapsed().as_secs(),
                    written.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut failure = None;
    for w in workers {
        if let Err(e) = w.await.context("load worker failed")? {
            failure.get_or_insert(e);
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    let load_s = start.elapsed().as_secs_f64();
    if !a.index_first && !paths.is_empty() {
        index_s += index_and_wait(&client, &a.collection, &paths, timeout).await?;
    }
    let summary = json!({
        "workload": "queryload",
        "collection": a.collection,
        "records": a.records,
        "seed": a.seed,
        "load_s": load_s,
        "writes_per_sec": a.records as f64 / load_s,
        "document_bytes": bytes.load(Ordering::Relaxed),
        "indexes": paths,
        "index_first": a.index_first,
        "index_s": index_s,
        "concurrency": a.concurrency,
        "write_consistency": a.write_consistency.to_string(),
        "durability": format!("{:?}", a.durability),
    });
    println!(
        "loaded {} documents in {load_s:.1} s ({:.0}/s); indexes {:?} ready {index_s:.1} s after {}",
        a.records,
        a.records as f64 / load_s,
        paths,
        if a.index_first {
            "creation (before the load)"
        } else {
            "the load"
        }
    );
    println!("{summary}");
    Ok(())
}
