//! Benchmark: how fast gossip spreads membership and news of a failure, in-process.
//!
//! `cargo run --release -p ringdb-tests --bin gossip-convergence [-- SIZES...]` prints, for
//! each cluster size, the gossip rounds and seconds until every node knows every node (from
//! one seed each), and until every node has marked an isolated node down.

use std::time::{Duration, Instant};

use ringdb_tests::sim::{Link, SimCluster};

const INTERVAL_MS: u64 = 50;

async fn measure(n: usize) -> (f64, f64) {
    // Nodes start one at a time; measure from the last start until all views agree.
    let cluster = SimCluster::start_unsettled(n, 3, INTERVAL_MS).await;
    let started = Instant::now();
    while !cluster.views_are(|_, _| true) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let converge = started.elapsed().as_secs_f64();
    let victim = format!("n{n}");
    cluster
        .net
        .isolate(&victim, &cluster.ids(), Link::Blackhole);
    let cut = Instant::now();
    while !cluster.views_are(|o, t| o == t || (o != victim && t != victim)) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (converge, cut.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![3, 10, 50]
    } else {
        sizes
    };
    println!("gossip interval {INTERVAL_MS} ms, phi threshold 8");
    println!(
        "{:>6} {:>16} {:>10} {:>20} {:>10}",
        "nodes", "converge rounds", "seconds", "detect-down rounds", "seconds"
    );
    for n in sizes {
        let (c, d) = measure(n).await;
        let rounds = |s: f64| s * 1000.0 / INTERVAL_MS as f64;
        println!(
            "{n:>6} {:>16.1} {c:>10.2} {:>20.1} {d:>10.2}",
            rounds(c),
            rounds(d)
        );
    }
}
