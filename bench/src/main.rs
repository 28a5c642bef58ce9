//! `ringdb-bench`: a YCSB-style closed-loop load generator built on the client library.
//!
//! Each of `--concurrency` tasks keeps one request in flight. Updates carry the last
//! context this process saw for the key, as a real application would, so siblings stay
//! bounded by truly concurrent writers. The last stdout line is one JSON object.
//!
//! `ringdb-bench querydata ...` prints the query benchmark's data instead, `queryload` loads
//! it into a cluster, `query --kind K` runs one query kind and `index` creates indexes (see
//! `querycli`).

mod keys;
mod querybench;
mod querycli;
mod querydata;
mod queryload;
mod queryspec;

/// glibc malloc spent ~15% of CPU under load (cross-thread frees); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use ringdb_client::{Client, Consistency, Context, Durability, ReadOptions, Routing, WriteOptions};

use keys::{record, KeyChooser};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    /// Insert `--records` documents.
    Load,
    /// 50% reads, 50% updates.
    A,
    /// 95% reads, 5% updates.
    B,
    /// Reads only.
    C,
    /// 50% reads, 50% read-modify-write with the read's context.
    F,
}

/// Which node coordinates each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoutingArg {
    /// A replica of the key (its primary first), from the ring the client fetched.
    Token,
    /// The given hosts in rotation, whoever owns the key.
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Distribution {
    Zipfian,
    Uniform,
}

#[derive(Parser, Debug)]
#[command(
    name = "ringdb-bench",
    version,
    about = "YCSB-style benchmark for RingDB"
)]
struct Args {
    /// A query benchmark tool; without one, the YCSB workload runs.
    #[command(subcommand)]
    tool: Option<querycli::Command>,
    /// Nodes to connect to, HOST:PORT,...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403"
    )]
    hosts: Vec<String>,
    /// The cluster CA (PEM): connect with TLS and verify nodes against it.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Access token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, env = "RINGDB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Which workload to run.
    #[arg(long, value_enum, default_value_t = Workload::A)]
    workload: Workload,
    /// Records in the data set (inserted by `load`, addressed by the others).
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Seconds to run (ignored by `load`, which stops when every record is in).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many operations instead of after `--duration`.
    #[arg(long)]
    operations: Option<u64>,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Read consistency level.
    #[arg(long, default_value = "QUORUM")]
    read_consistency: Consistency,
    /// Write consistency level.
    #[arg(long, default_value = "QUORUM")]
    write_consistency: Consistency,
    /// Write durability: DURABLE (fsync) or MEMORY.
    #[arg(long, default_value = "DURABLE")]
    durability: Durability,
    /// Key popularity.
    #[arg(long, value_enum, default_value_t = Distribution::Zipfian)]
    distribution: Distribution,
    /// Collection to use.
    #[arg(long, default_value = "usertable")]
    collection: String,
    /// Fields per record (each about 100 bytes).
    #[arg(long, default_value_t = 10)]
    fields: usize,
    /// How the client picks coordinators: `token` (a replica of the key) or `fixed`
    /// (the given hosts in rotation).
    #[arg(long, value_enum, default_value_t = RoutingArg::Token)]
    routing: RoutingArg,

    /// Whether the client multiplexes requests on one stream per node (`on`) or makes a
    /// gRPC call per request (`off`).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pipelining: Switch,

    /// Target operations per second across all workers (0: as fast as the cluster answers).
    /// Operations start on a fixed schedule; an operation that starts late because earlier
    /// ones were slow counts its latency from its scheduled start, so a stall shows in the
    /// percentiles instead of silently pausing the load.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Insert,
    Read,
    Update,
    ReadModifyWrite,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Read => "READ",
            Op::Update => "UPDATE",
            Op::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

/// Latencies and errors one task collected; merged at the end.
struct Tally {
    all: Histogram<u64>,
    by_op: BTreeMap<Op, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            all: hist(),
            by_op: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, op: Op, micros: u64) {
        let _ = self.all.record(micros.max(1));
        let _ = self
            .by_op
            .entry(op)
            .or_insert_with(hist)
            .record(micros.max(1));
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.all.add(&other.all);
        for (op, h) in other.by_op {
            let _ = self.by_op.entry(op).or_insert_with(hist).add(&h);
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }
}

/// A latency histogram in microseconds, 1 µs to 60 s.
fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Contexts last seen per key, so updates supersede what this process knows about.
struct Contexts(Vec<Mutex<std::collections::HashMap<u64, Context>>>);

impl Contexts {
    fn new() -> Self {
        Contexts((0..64).map(|_| Mutex::new(Default::default())).collect())
    }
    fn get(&self, k: u64) -> Option<Context> {
        self.0[(k % 64) as usize].lock().ok()?.get(&k).cloned()
    }
    fn set(&self, k: u64, c: Context) {
        if let Ok(mut m) = self.0[(k % 64) as usize].lock() {
            m.insert(k, c);
        }
    }
}

struct Shared {
    args: Args,
    client: Client,
    contexts: Contexts,
    chooser: KeyChooser,
    next_insert: AtomicU64,
    done_ops: AtomicU64,
    stop: AtomicBool,
    progress: Mutex<Histogram<u64>>,
    progress_errors: AtomicU64,
}

fn key_name(k: u64) -> String {
    format!("user{k:010}")
}

async fn one(
    s: &Shared,
    op: Op,
    k: u64,
    rng: &mut rand::rngs::SmallRng,
) -> Result<(), ringdb_client::Error> {
    let c = &s.args.collection;
    let read = ReadOptions::new().consistency(s.args.read_consistency);
    let write = WriteOptions::new()
        .consistency(s.args.write_consistency)
        .durability(s.args.durability);
    match op {
        Op::Insert | Op::Update => {
            // An update replaces what is there, so it needs the current context: read first
            // when this process has none (an insert of a fresh key needs none).
            let ctx = match s.contexts.get(k) {
                Some(ctx) => Some(ctx),
                None if op == Op::Update => {
                    Some(s.client.get_raw(c, &key_name(k), &read).await?.context)
                }
                None => None,
            };
            let opts = match ctx {
                Some(ctx) => write.context(ctx),
                None => write,
            };
            let r = s
                .client
                .put_raw(
                    c,
                    &key_name(k),
                    Bytes::from(record(rng, s.args.fields)),
                    &opts,
                )
                .await?;
            s.contexts.set(k, r.context);
        }
        Op::Read => {
            let r = s.client.get_raw(c, &key_name(k), &read).await?;
            s.contexts.set(k, r.context);
        }
        Op::ReadModifyWrite => {
            let r = s.client.get_raw(c, &key_name(k), &read).await?;
            let w = s
                .client
                .put_raw(
                    c,
                    &key_name(k),
                    Bytes::from(record(rng, s.args.fields)),
                    &write.context(r.context),
                )
                .await?;
            s.contexts.set(k, w.context);
        }
    }
    Ok(())
}

async fn worker(s: Arc<Shared>, seed: u64) -> Tally {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut tally = Tally::new();
    // Paced: each worker owns an equal share of the rate, starting at a random offset so
    // the workers do not fire together.
    let interval = (s.args.rate > 0.0)
        .then(|| Duration::from_secs_f64(s.args.concurrency as f64 / s.args.rate));
    let mut next_start =
        interval.map(|i| tokio::time::Instant::now() + i.mul_f64(rng.gen::<f64>()));
    while !s.stop.load(Ordering::Relaxed) {
        let (op, k) = match s.args.workload {
            Workload::Load => {
                let i = s.next_insert.fetch_add(1, Ordering::Relaxed);
                if i >= s.args.records {
                    break;
                }
                (Op::Insert, i)
            }
            w => {
                let k = s.chooser.next(&mut rng);
                let p: f64 = rng.gen();
                let op = match w {
                    Workload::A if p < 0.5 => Op::Update,
                    Workload::B if p < 0.05 => Op::Update,
                    Workload::F if p < 0.5 => Op::ReadModifyWrite,
                    _ => Op::Read,
                };
                (op, k)
            }
        };
        if let Some(limit) = s.args.operations {
            if s.done_ops.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let t = match (next_start.as_mut(), interval) {
            (Some(at), Some(every)) => {
                let scheduled = *at;
                *at += every;
                if tokio::time::Instant::now() < scheduled {
                    // On time: the timer's millisecond granularity is not the cluster's
                    // latency, so count from when the operation actually starts.
                    tokio::time::sleep_until(scheduled).await;
                    Instant::now()
                } else {
                    // Behind schedule because earlier operations were slow: count from
                    // the scheduled start (no coordinated omission).
                    scheduled.into_std()
                }
            }
            _ => Instant::now(),
        };
        match one(&s, op, k, &mut rng).await {
            Ok(()) => {
                let us = t.elapsed().as_micros() as u64;
                tally.record(op, us);
                if let Ok(mut h) = s.progress.lock() {
                    let _ = h.record(us.max(1));
                }
            }
            Err(e) => {
                *tally.errors.entry(e.code().to_string()).or_default() += 1;
                s.progress_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    tally
}

/// The quantile `q` of `h`, in milliseconds.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.records == 0 {
        bail!("--concurrency and --records must be at least 1");
    }
    let routing = match args.routing {
        RoutingArg::Token => Routing::TokenAware,
        RoutingArg::Fixed => Routing::RoundRobin,
    };
    let mut builder = Client::builder(&args.hosts)
        .routing(routing)
        .pipelining(args.pipelining == Switch::On);
    if let Some(ca) = &args.tls_ca {
        builder = builder.tls_ca_file(ca)?;
    }
    if let Some(t) = &args.token {
        builder = builder.token(t);
    }
    let client = builder.connect().await.context("cannot connect")?;
    client.status().await.context("cluster not reachable")?;
    if routing == Routing::TokenAware {
        client
            .refresh_ring()
            .await
            .context("cannot fetch the ring for token-aware routing")?;
    }
    let chooser = match args.distribution {
        Distribution::Zipfian => KeyChooser::zipfian(args.records, 0.99),
        Distribution::Uniform => KeyChooser::uniform(args.records),
    };
    let shared = Arc::new(Shared {
        client,
        contexts: Contexts::new(),
        chooser,
        next_insert: AtomicU64::new(0),
        done_ops: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        progress: Mutex::new(hist()),
        progress_errors: AtomicU64::new(0),
        args,
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..shared.args.concurrency)
        .map(|i| tokio::spawn(worker(shared.clone(), 0x5eed + i as u64)))
        .collect();
    let reporter = {
        let s = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let h = match s.progress.lock() {
                    Ok(mut h) => std::mem::replace(&mut *h, hist()),
                    Err(_) => break,
                };
                eprintln!(
                    "[{:>4}s] {:>8} ops/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                    start.elapsed().as_secs(),
                    h.len(),
                    ms(&h, 0.5),
                    ms(&h, 0.99),
                    s.progress_errors.swap(0, Ordering::Relaxed)
                );
            }
        })
    };
    if shared.args.workload != Workload::Load && shared.args.operations.is_none() {
        tokio::time::sleep(Duration::from_secs(shared.args.duration)).await;
        shared.stop.store(true, Ordering::Relaxed);
    }
    let mut total = Tally::new();
    for t in tasks {
        total.merge(t.await.context("worker failed")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    reporter.abort();
    let ops = total.all.len();
    let errors: u64 = total.errors.values().sum();
    let a = &shared.args;
    println!(
        "workload {:?}  records {}  concurrency {}  read {}  write {}  durability {:?}  routing {:?}  hosts {}",
        a.workload,
        a.records,
        a.concurrency,
        a.read_consistency,
        a.write_consistency,
        a.durability,
        a.routing,
        a.hosts.join(",")
    );
    println!(
        "{:<18} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "OPERATION", "COUNT", "P50 ms", "P95 ms", "P99 ms", "P99.9 ms", "MAX ms"
    );
    let mut rows: Vec<(&str, &Histogram<u64>)> =
        total.by_op.iter().map(|(op, h)| (op.name(), h)).collect();
    rows.push(("ALL", &total.all));
    for (name, h) in rows {
        println!(
            "{:<18} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            h.len(),
            ms(h, 0.5),
            ms(h, 0.95),
            ms(h, 0.99),
            ms(h, 0.999),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "throughput {:.0} ops/s over {elapsed:.1} s, errors {errors} {:?}",
        ops as f64 / elapsed,
        total.errors
    );
    let summary = serde_json::json!({
        "workload": format!("{:?}", a.workload).to_lowercase(),
        "ops": ops,
        "duration_s": elapsed,
        "ops_per_sec": ops as f64 / elapsed,
        "p50_ms": ms(&total.all, 0.5),
        "p95_ms": ms(&total.all, 0.95),
        "p99_ms": ms(&total.all, 0.99),
        "p999_ms": ms(&total.all, 0.999),
        "errors": errors,
        "errors_by_code": total.errors,
        "concurrency": a.concurrency,
        "read_consistency": a.read_consistency.to_string(),
        "write_consistency": a.write_consistency.to_string(),
        "routing": format!("{:?}", a.routing).to_lowercase(),
        "pipelining": a.pipelining == Switch::On,
        "target_rate": a.rate,
    });
    println!("{summary}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if let Some(tool) = args.tool.take() {
        return querycli::main(tool);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
