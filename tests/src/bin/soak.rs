//! The fault suite for as long as asked: simulated schedules (partitions, bridges, loss,
//! delays, crashes) one after another, with real-process runs (`kill -9`, `SIGSTOP`) and,
//! when Docker is available, network partitions between containers mixed in. Prints one
//! summary line per run, every violation in detail with the seed to rerun it, and exits
//! non-zero if any run broke a promise.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p ringdb-tests --bin soak -- --minutes 30 [--seed 1000] [--scenarios sim,process,docker]
//! ```
//!
//! Run `i` (from 0) uses seed `--seed + i`; `--seed S --runs 1 --scenarios KIND` repeats
//! the run a failure names.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringdb_tests::faults::docker::{self, DockerScenario};
use ringdb_tests::faults::process::{self, ProcScenario};
use ringdb_tests::faults::sim::{self, SimScenario};
use ringdb_tests::faults::Summary;

struct Args {
    minutes: f64,
    runs: Option<u64>,
    seed: u64,
    sim: bool,
    process: bool,
    docker: bool,
}

const USAGE: &str =
    "usage: soak [--minutes M] [--runs N] [--seed S] [--scenarios sim,process,docker]";

fn parse() -> Result<Args, String> {
    let mut a = Args {
        minutes: 10.0,
        runs: None,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(0),
        sim: true,
        process: true,
        docker: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--minutes" => a.minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--runs" => a.runs = Some(value()?.parse().map_err(|e| format!("--runs: {e}"))?),
            "--scenarios" => {
                let v = value()?;
                let names: Vec<&str> = v.split(',').map(str::trim).collect();
                if let Some(bad) = names
                    .iter()
                    .find(|n| !["sim", "process", "docker"].contains(n))
                {
                    return Err(format!("unknown scenario {bad:?}\n{USAGE}"));
                }
                a.sim = names.contains(&"sim");
                a.process = names.contains(&"process");
                a.docker = names.contains(&"docker");
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut args = match parse() {
        Ok(a) => a,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.process || args.docker {
        if let Err(looked) = ringdb_tests::find_binary("ringdb") {
            eprintln!(
                "{} not found: run `cargo build --release --workspace --bins` first (or use --scenarios sim)",
                looked.display()
            );
            return ExitCode::from(2);
        }
    }
    if args.docker {
        if let Err(why) = docker::available().await {
            println!("docker scenarios SKIPPED: docker is unavailable ({why})");
            args.docker = false;
        }
    }
    if !(args.sim || args.process || args.docker) {
        eprintln!("no scenario to run");
        return ExitCode::from(2);
    }
    println!(
        "soak: {} minutes from seed {} (sim: {}, process: {}, docker: {})",
        args.minutes, args.seed, args.sim, args.process, args.docker
    );
    let until = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let (mut runs, mut failed) = (0u64, Vec::new());
    let mut i = 0u64;
    while Instant::now() < until && args.runs.is_none_or(|n| i < n) {
        let seed = args.seed + i;
        // Mostly simulations (fast, every fault kind); every fourth run a real-process
        // one, every eighth a Docker one, when enabled.
        let kind = match i % 8 {
            3 if args.process => "process",
            7 if args.docker => "docker",
            _ if args.sim => "sim",
            _ if args.process => "process",
            _ => "docker",
        };
        i += 1;
        let summary: Summary = match kind {
            "sim" => sim::run(&SimScenario::soak(seed)).await,
            "process" => process::run(&ProcScenario::soak(seed)).await,
            _ => match docker::run(&DockerScenario::soak(seed)).await {
                Ok(s) => s,
                Err(e) => {
                    println!("scenario=docker seed={seed} ERROR {e}");
                    failed.push(format!("docker seed {seed}: {e}"));
                    continue;
                }
            },
        };
        runs += 1;
        println!("{summary}");
        if !summary.is_clean() {
            println!("  violations: {}", summary.report.describe(20));
            if let Some(dir) = &summary.evidence {
                println!("  history and logs kept in {}", dir.display());
            }
            println!(
                "  rerun this run: soak --seed {seed} --runs 1 --scenarios {kind}; the CI-size run of its schedule: RINGDB_SEED={seed} cargo test -p ringdb-tests --test faults"
            );
            failed.push(format!("{kind} seed {seed}"));
        }
    }
    println!(
        "soak done: runs={runs} failed={} {}",
        failed.len(),
        failed.join("; ")
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
