//! Anti-entropy benchmark: how long and how many bytes it takes two replicas to find and
//! repair `--divergent` differing keys among `--keys`, in process over the simulated network
//! (in-memory engines, so it measures the algorithm, not the disk).
//!
//! `cargo run --release -p ringdb-tests --example aae_bench -- --keys 1000000 --divergent 1000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringdb_node::storage::{Durability, Mint};
use ringdb_node::version::{CausalContext, SiblingSet};
use ringdb_tests::sim::SimCluster;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keys = arg("--keys", 1_000_000);
    let divergent = arg("--divergent", 1_000);
    let c = Arc::new(SimCluster::start_with(2, 2, |cfg| cfg.aae.interval = Duration::ZERO).await);
    let (a, b) = (
        c.node("n1").coordinator.storage().clone(),
        c.node("n2").coordinator.storage().clone(),
    );
    let doc = Bytes::from(format!("{{\"payload\":\"{}\"}}", "x".repeat(90)));
    let started = Instant::now();
    let mut data_bytes = 0u64;
    let chunks: Vec<Vec<usize>> = (0..keys)
        .collect::<Vec<_>>()
        .chunks(2048)
        .map(|c| c.to_vec())
        .collect();
    for chunk in chunks {
        let writes = chunk.into_iter().map(|i| {
            let (a, b, doc) = (a.clone(), b.clone(), doc.clone());
            async move {
                let key = format!("key-{i}");
                let m = a
                    .mint(
                        "sim",
                        &key,
                        Mint {
                            actor: "n1.1".into(),
                            context: CausalContext::new(),
                            value: Some(doc),
                            timestamp_ms: 1,
                            expires_ms: None,
                        },
                        Durability::Memory,
                    )
                    .await
                    .unwrap();
                let len = m.stored.len() as u64;
                // The second replica diverges on the first `divergent` keys: it never got them.
                if i >= divergent {
                    let set = SiblingSet::decode(&m.stored).unwrap();
                    b.merge("sim", &key, set, Durability::Memory).await.unwrap();
                }
                len + key.len() as u64
            }
        });
        data_bytes += futures::future::join_all(writes).await.iter().sum::<u64>();
    }
    eprintln!(
        "loaded {keys} keys ({:.1} MB) in {:.1} s",
        data_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let report = c.node("n1").anti_entropy.pass(None).await;
    let again = c.node("n1").anti_entropy.pass(None).await;
    println!(
        "{{\"keys\": {keys}, \"divergent\": {divergent}, \"repaired\": {}, \"seconds\": {:.2}, \"bytes_exchanged\": {}, \"data_bytes\": {data_bytes}, \"bytes_ratio\": {:.5}, \"clean_pass_seconds\": {:.2}, \"clean_pass_bytes\": {}}}",
        report.keys_repaired,
        report.elapsed.as_secs_f64(),
        report.bytes_exchanged,
        report.bytes_exchanged as f64 / data_bytes as f64,
        again.elapsed.as_secs_f64(),
        again.bytes_exchanged,
    );
    assert_eq!(report.keys_repaired as usize, divergent);
    assert_eq!(again.keys_repaired, 0);
}
