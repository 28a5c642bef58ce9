//! `ringdb-bench query`: the RingDB side of the query benchmark. Runs one query kind of
//! [`crate::queryspec`] against a cluster through the Rust client's `find` and `count`, the
//! same queries pgbench sends to PostgreSQL: worker `c` of `C` runs queries `c`, `c + C`,
//! `c + 2C`, ... in a closed loop for `--duration` seconds.
//!
//! Every answer is checked: a FIND must return [`Queries::expected_rows`] documents (a range
//! query the first 100 in score order, see [`range_misorder`]) and a COUNT must answer
//! [`Queries::expected_count`]. A wrong answer is an error
//! (`WRONG_ROWS`), counted and reported like a failed call, and its latency is not
//! recorded. The last stdout line is one JSON object, like the YCSB workloads'.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use ringdb_client::{Client, Consistency, Error};
use serde_json::json;

use crate::querydata::Dataset;
use crate::queryspec::{Queries, Query, QueryKind};
use crate::{hist, ms};

/// The error code a wrong answer is counted under.
pub const WRONG_ROWS: &str = "WRONG_ROWS";

/// Arguments of `ringdb-bench query`.
#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    /// Nodes to connect to, HOST:PORT,...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403"
    )]
    pub hosts: Vec<String>,
    /// Collection holding the query data (loaded by `ringdb-bench queryload`).
    #[arg(long, default_value = "docs")]
    pub collection: String,
    /// Documents in the loaded data set (the queries depend on it, not on the seed).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Which query kind to run.
    #[arg(long, value_enum)]
    pub kind: QueryKind,
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Queries in flight (one per worker), as pgbench's connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Replicas asked per token range.
    #[arg(long, default_value = "QUORUM")]
    pub read_consistency: Consistency,
    /// Send ALLOW FILTERING (needed while a query cannot read an index).
    #[arg(long)]
    pub allow_filtering: bool,
    /// Time the coordinator has per query (and per FIND page), in milliseconds (0: the
    /// server's default).
    #[arg(long, default_value_t = 0)]
    pub timeout_ms: u64,
}

/// What one query's answer says: how many rows, or the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A FIND returned this many documents.
    Rows(u64),
    /// A COUNT answered this number.
    Count(u64),
    /// A range query's documents were not the right ones in score order: why.
    Misordered(String),
}

/// Whether `answer` is right for `query`; `Err` explains what was wrong.
pub fn check(queries: &Queries, query: &Query, answer: Answer) -> Result<(), String> {
    let (want, got, what) = match answer {
        Answer::Count(n) => (queries.expected_count(), n, "count"),
        Answer::Rows(n) => (queries.expected_rows(query), n, "rows"),
        Answer::Misordered(why) => {
            return Err(format!(
                "query {} of {} ({}): {why}",
                query.i,
                query.kind.name(),
                query.ringsh("<collection>")
            ))
        }
    };
    if want == got {
        Ok(())
    } else {
        Err(format!(
            "query {} of {} ({}): {got} {what}, expected {want}",
            query.i,
            query.kind.name(),
            query.ringsh("<collection>")
        ))
    }
}

/// Latencies and errors of one worker; merged at the end.
pub struct Tally {
    /// Latencies of right answers, in microseconds.
    pub latencies: Histogram<u64>,
    /// Errors by code (a wrong answer is [`WRONG_ROWS`]).
    pub errors: BTreeMap<String, u64>,
    /// The first wrong answers' descriptions, for the report.
    pub wrong: Vec<String>,
    /// The first error message of each code, for the report.
    pub first_errors: BTreeMap<String, String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies: hist(),
            errors: BTreeMap::new(),
            wrong: Vec::new(),
            first_errors: BTreeMap::new(),
        }
    }

    /// Count one query's outcome: its answer (checked) or its error code.
    pub fn record(
        &mut self,
        queries: &Queries,
        query: &Query,
        outcome: Result<Answer, &str>,
        micros: u64,
    ) -> bool {
        let verdict = outcome.map_err(str::to_owned).and_then(|a| {
            check(queries, query, a).map_err(|why| {
                if self.wrong.len() < 5 {
                    self.wrong.push(why);
                }
                WRONG_ROWS.to_owned()
            })
        });
        match verdict {
            Ok(()) => {
                let _ = self.latencies.record(micros.max(1));
                true
            }
            Err(code) => {
                *self.errors.entry(code).or_default() += 1;
                false
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latencies.add(&other.latencies);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for w in other.wrong {
            if self.wrong.len() < 5 {
                self.wrong.push(w);
            }
        }
        for (code, message) in other.first_errors {
            self.first_errors.entry(code).or_insert(message);
        }
    }
}

/// Run one query through the client; the answer to check, or the error.
async fn ask(client: &Client, a: &QueryArgs, query: &Query) -> Result<Answer, Error> {
    let cond = format!("{} {} {}", query.kind.path(), query.op(), query.value());
    let timeout = (a.timeout_ms > 0).then(|| Duration::from_millis(a.timeout_ms));
    match query.kind {
        QueryKind::Count => {
            let mut c = client
                .count(&a.collection)
                .filter(&cond)
                .consistency(a.read_consistency);
            if a.allow_filtering {
                c = c.allow_filtering();
            }
            if let Some(t) = timeout {
                c = c.timeout(t);
            }
            c.run().await.map(|r| Answer::Count(r.count))
        }
        _ => {
            let mut f = client
                .find(&a.collection)
                .filter(&cond)
                .consistency(a.read_consistency);
            if let Some(limit) = query.limit() {
                f = f.limit(limit);
            }
            if a.allow_filtering {
                f = f.allow_filtering();
            }
            if let Some(t) = timeout {
                f = f.timeout(t);
            }
            let docs = f.all().await?;
            if query.kind == QueryKind::Range {
                let scores: Vec<Option<f64>> = docs
                    .iter()
                    .map(|d| d.values.first().and_then(|v| v["score"].as_f64()))
                    .collect();
                if let Some(why) = range_misorder(query.param, &scores) {
                    return Ok(Answer::Misordered(why));
                }
            }
            Ok(Answer::Rows(docs.len() as u64))
        }
    }
}

/// Why the documents of `score >= x LIMIT 100` (their scores in answer order) are not the
/// first ones in score order, if they are not: score ranks are a permutation of `0..records`,
/// so document `j` of the answer must have a score whose integer part is `x + j`.
pub fn range_misorder(x: u64, scores: &[Option<f64>]) -> Option<String> {
    scores.iter().enumerate().find_map(|(j, s)| match s {
        Some(s) if s.floor() == (x + j as u64) as f64 => None,
        other => Some(format!(
            "document {j} has score {other:?}, expected one in [{}, {})",
            x + j as u64,
            x + j as u64 + 1
        )),
    })
}

struct Shared {
    args: QueryArgs,
    client: Client,
    queries: Queries,
    stop: AtomicBool,
    progress: Mutex<Histogram<u64>>,
    progress_errors: AtomicU64,
}

async fn worker(s: Arc<Shared>, c: u64) -> Tally {
    let mut tally = Tally::new();
    let clients = s.args.concurrency as u64;
    let mut n = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        let query = s.queries.nth(s.args.kind, c + n * clients);
        n += 1;
        let t = Instant::now();
        let outcome = ask(&s.client, &s.args, &query).await;
        let us = t.elapsed().as_micros() as u64;
        if let Err(e) = &outcome {
            tally
                .first_errors
                .entry(e.code().to_owned())
                .or_insert_with(|| e.to_string());
        }
        let outcome = outcome.map_err(|e| e.code());
        if tally.record(&s.queries, &query, outcome, us) {
            if let Ok(mut h) = s.progress.lock() {
                let _ = h.record(us.max(1));
            }
        } else {
            s.progress_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    tally
}

/// Runs `ringdb-bench query`; prints the report, the JSON summary last.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.duration == 0 {
        bail!("--concurrency and --duration must be at least 1");
    }
    let queries = Queries::new(&Dataset::new(args.records, 1)?);
    let client = Client::builder(&args.hosts)
        .connect()
        .await
        .context("cannot connect")?;
    client.status().await.context("cluster not reachable")?;
    let shared = Arc::new(Shared {
        args,
        client,
        queries,
        stop: AtomicBool::new(false),
        progress: Mutex::new(hist()),
        progress_errors: AtomicU64::new(0),
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..shared.args.concurrency as u64)
        .map(|c| tokio::spawn(worker(shared.clone(), c)))
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
                    "[{:>4}s] {:>8} queries/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
                    start.elapsed().as_secs(),
                    h.len(),
                    ms(&h, 0.5),
                    ms(&h, 0.99),
                    s.progress_errors.swap(0, Ordering::Relaxed)
                );
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(shared.args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new();
    for t in tasks {
        total.merge(t.await.context("worker failed")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    reporter.abort();
    report(&shared.args, &total, elapsed);
    Ok(())
}

fn report(a: &QueryArgs, total: &Tally, elapsed: f64) {
    let h = &total.latencies;
    let ops = h.len();
    let errors: u64 = total.errors.values().sum();
    println!(
        "query {} ({})  records {}  concurrency {}  read {}  allow filtering {}  hosts {}",
        a.kind.name(),
        a.kind.label(),
        a.records,
        a.concurrency,
        a.read_consistency,
        a.allow_filtering,
        a.hosts.join(",")
    );
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "COUNT", "P50 ms", "P95 ms", "P99 ms", "P99.9 ms", "MAX ms"
    );
    println!(
        "{:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        ops,
        ms(h, 0.5),
        ms(h, 0.95),
        ms(h, 0.99),
        ms(h, 0.999),
        h.max() as f64 / 1000.0
    );
    for w in &total.wrong {
        println!("wrong answer: {w}");
    }
    for (code, message) in &total.first_errors {
        println!("first {code}: {message}");
    }
    println!(
        "throughput {:.0} queries/s over {elapsed:.1} s, errors {errors} {:?}",
        ops as f64 / elapsed,
        total.errors
    );
    let summary = json!({
        "workload": format!("query-{}", a.kind.name()),
        "kind": a.kind.name(),
        "records": a.records,
        "ops": ops,
        "duration_s": elapsed,
        "ops_per_sec": ops as f64 / elapsed,
        "p50_ms": ms(h, 0.5),
        "p95_ms": ms(h, 0.95),
        "p99_ms": ms(h, 0.99),
        "p999_ms": ms(h, 0.999),
        "errors": errors,
        "errors_by_code": total.errors,
        "wrong_answers": total.wrong,
        "first_errors": total.first_errors,
        "concurrency": a.concurrency,
        "read_consistency": a.read_consistency.to_string(),
        "allow_filtering": a.allow_filtering,
    });
    println!("{summary}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_row_count_is_an_error_and_a_right_one_a_latency() {
        let queries = Queries::new(&Dataset::new(2_000, 1).unwrap());
        let mut tally = Tally::new();
        let eq = queries.nth(QueryKind::Eq10, 4);
        let right = queries.expected_rows(&eq);
        assert!(tally.record(&queries, &eq, Ok(Answer::Rows(right)), 900));
        assert!(!tally.record(&queries, &eq, Ok(Answer::Rows(right - 1)), 800));
        let count = queries.nth(QueryKind::Count, 0);
        assert!(!tally.record(&queries, &count, Ok(Answer::Count(1)), 700));
        assert!(tally.record(
            &queries,
            &count,
            Ok(Answer::Count(queries.expected_count())),
            600
        ));
        assert!(!tally.record(&queries, &eq, Err("UNAVAILABLE"), 500));
        assert_eq!(tally.latencies.len(), 2);
        assert_eq!(tally.errors[WRONG_ROWS], 2);
        assert_eq!(tally.errors["UNAVAILABLE"], 1);
        assert_eq!(tally.wrong.len(), 2);
        assert!(
            tally.wrong[0].contains(&format!("{} rows, expected {right}", right - 1)),
            "{:?}",
            tally.wrong
        );
    }

    #[test]
    fn a_range_must_return_its_limit() {
        let queries = Queries::new(&Dataset::new(2_000, 1).unwrap());
        let q = queries.nth(QueryKind::Range, 9);
        assert!(check(&queries, &q, Answer::Rows(100)).is_ok());
        assert!(check(&queries, &q, Answer::Rows(99)).is_err());
        assert!(check(&queries, &q, Answer::Rows(101)).is_err());
        let x = q.param;
        let right: Vec<Option<f64>> = (0..100).map(|j| Some((x + j) as f64 + 0.25)).collect();
        assert_eq!(range_misorder(x, &right), None);
        let mut swapped = right.clone();
        swapped.swap(3, 4);
        let why = range_misorder(x, &swapped).unwrap();
        assert!(why.starts_with("document 3 has score"), "{why}");
        let mut missing = right;
        missing[7] = None;
        assert!(range_misorder(x, &missing).unwrap().contains("None"));
        assert!(check(&queries, &q, Answer::Misordered("x".into())).is_err());
    }
}
