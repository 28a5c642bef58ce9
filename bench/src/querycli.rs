//! The query benchmark's subcommands. `ringdb-bench querydata` prints the documents, queries
//! and PostgreSQL scripts, so that another program (`bench/queries.py`) loads and asks
//! exactly what [`crate::querydata`] and [`crate::queryspec`] define; it needs no cluster.
//! `queryload`, `query` and `index` talk to a cluster ([`crate::queryload`],
//! [`crate::querybench`]).
//!
//! Output goes to stdout, one item per line; an error (a closed pipe included) ends the
//! command with a message on stderr and a failure status, never a panic.

use std::io::Write;

use anyhow::Context as _;
use serde_json::json;

use crate::querydata::Dataset;
use crate::queryspec::{Queries, QueryKind};

/// The query benchmark's subcommands of `ringdb-bench` (without one, a YCSB workload runs).
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print the query benchmark's documents (JSON lines `{"key":..., "doc":...}`), its
    /// queries or its PostgreSQL scripts; needs no cluster.
    Querydata(QuerydataArgs),
    /// Load the query benchmark's documents into a collection and index the queried paths.
    Queryload(crate::queryload::LoadArgs),
    /// Run one query kind against a cluster for `--duration` seconds, checking every answer.
    Query(crate::querybench::QueryArgs),
    /// Create indexes on a collection and wait until they are ready.
    Index(crate::queryload::IndexArgs),
}

/// What `querydata` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// Documents `--from`.. (`--count` of them, default all) as `{"key":..., "doc":...}`.
    Documents,
    /// The query kinds, one JSON object each.
    Kinds,
    /// Queries `--from`.. of `--kind` (`--count`, default 10), one JSON object each.
    Queries,
    /// The PostgreSQL expression indexes, one statement per line.
    PgIndexes,
    /// The pgbench script running `--kind`'s queries.
    Pgbench,
    /// The pgbench script that stores `--kind`'s answers in table `query_check`.
    PgbenchCheck,
}

/// Arguments of `ringdb-bench querydata`.
#[derive(clap::Args, Debug)]
pub struct QuerydataArgs {
    /// Documents in the data set.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Seed of the documents (queries do not depend on it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Emit::Documents)]
    emit: Emit,
    /// Query kind for `--emit queries|pgbench|pgbench-check`.
    #[arg(long, value_enum)]
    kind: Option<QueryKind>,
    /// First document or query to print.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// How many documents or queries to print.
    #[arg(long)]
    count: Option<u64>,
    /// Collection named in the shell statements of `--emit queries`.
    #[arg(long, default_value = "docs")]
    collection: String,
}

/// Runs a subcommand; the exit status says whether it worked.
pub fn main(command: Command) -> std::process::ExitCode {
    let result = match command {
        Command::Querydata(args) => querydata(&args),
        Command::Queryload(args) => on_runtime(crate::queryload::run(args)),
        Command::Query(args) => on_runtime(crate::querybench::run(args)),
        Command::Index(args) => on_runtime(crate::queryload::run_index(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Run a subcommand that talks to a cluster on a fresh multi-threaded runtime.
fn on_runtime(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn querydata(a: &QuerydataArgs) -> anyhow::Result<()> {
    let data = Dataset::new(a.records, a.seed)?;
    let queries = Queries::new(&data);
    let kind = || {
        a.kind
            .with_context(|| format!("--emit {:?} needs --kind", a.emit).to_lowercase())
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = |v: &dyn std::fmt::Display| writeln!(out, "{v}");
    match a.emit {
        Emit::Documents => {
            let end = a
                .count
                .map_or(a.records, |c| a.from.saturating_add(c))
                .min(a.records);
            for i in a.from..end {
                let item = json!({"key": Dataset::key(i), "doc": data.document(i)});
                line(&item)?;
            }
        }
        Emit::Kinds => {
            for k in QueryKind::ALL {
                line(&json!({"kind": k.name(), "label": k.label(), "path": k.path()}))?;
            }
        }
        Emit::Queries => {
            let k = kind()?;
            for i in a.from..a.from.saturating_add(a.count.unwrap_or(10)) {
                line(&queries.describe(&queries.nth(k, i), &a.collection))?;
            }
        }
        Emit::PgIndexes => {
            for stmt in Queries::pg_indexes() {
                line(&format_args!("{stmt};"))?;
            }
        }
        Emit::Pgbench => write!(out, "{}", queries.pgbench_script(kind()?, false))?,
        Emit::PgbenchCheck => write!(out, "{}", queries.pgbench_script(kind()?, true))?,
    }
    out.flush().context("cannot write to stdout")
}
