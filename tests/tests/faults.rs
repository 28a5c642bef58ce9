//! The fault-injection and consistency suite at CI size: the workload runs through seeded
//! fault schedules (simulated network, real processes, Docker), then the history is
//! checked: no acknowledged write lost, no superseded or deleted version returned,
//! siblings bounded by the concurrent writers, replicas converged after repair.
//!
//! Every run prints one summary line and its seed; `RINGDB_SEED=<seed>` reruns one seed.
//! Longer runs: `cargo run --release -p ringdb-tests --bin soak -- --minutes 30`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ringdb_tests::faults::sim::{Schedule, SimScenario, SimStore};
use ringdb_tests::faults::{docker, process, seeds, sim};
use ringdb_tests::history::workload::{self, Failure, Read, Store, WorkloadConfig};
use ringdb_tests::history::{check, document, document_id, Kind, Level, Outcome, Recorder};
use ringdb_tests::sim::SimCluster;
use tokio::sync::Mutex;

/// The scenarios run one at a time: side by side on two cores, their timeouts would
/// measure each other rather than the faults.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[test]
fn a_seed_always_gives_the_same_schedule() {
    let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    let a = Schedule::generate(7, &nodes, 20);
    assert_eq!(a, Schedule::generate(7, &nodes, 20));
    assert_ne!(a, Schedule::generate(8, &nodes, 20));
    let kinds: std::collections::BTreeSet<String> = (0..50u64)
        .flat_map(|s| Schedule::generate(s, &nodes, 10).steps)
        .flat_map(|s| s.faults)
        .map(|f| f.to_string().split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["bridge", "crash", "isolate", "lose", "slow", "split"],
        "every kind of fault comes up"
    );
    let p = process::ProcSchedule::generate(7, 3, 4);
    assert_eq!(p, process::ProcSchedule::generate(7, 3, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_partitions_loss_delays_and_crashes_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    for seed in seeds(&[2, 3]) {
        let summary = sim::run(&SimScenario::short(seed)).await;
        println!("{summary}");
        summary.assert_clean(&format!(
            "RINGDB_SEED={seed} cargo test -p ringdb-tests --test faults simulated_"
        ));
        assert!(summary.report.acknowledged > 100, "{summary}");
    }
}

/// Runs that once found a bug (docs/testing.md lists them), at the size that found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_seeds() {
    let _serial = ONE_AT_A_TIME.lock().await;
    if std::env::var("RINGDB_SEED").is_ok() {
        return;
    }
    // Sim seed 1, CI size: an anti-entropy pass blocked forever on a black-holed peer, so
    // the cluster never converged (fixed in repair/mod.rs: exchanges time out).
    let summary = sim::run(&SimScenario::short(1)).await;
    println!("{summary}");
    summary.assert_clean("cargo test -p ringdb-tests --test faults regression_seeds");
    // Process seed 103, soak size: a delete with the context of a read that found nothing
    // deleted writes its client never saw (fixed in the client; see the test below).
    let summary = process::run(&process::ProcScenario::soak(103)).await;
    println!("{summary}");
    summary.assert_clean(
        "cargo run --release -p ringdb-tests --bin soak -- --seed 103 --runs 1 --scenarios process",
    );
}

/// A store that hides one acknowledged write from every read: the checker must notice.
struct Forgetful {
    inner: SimStore,
    forgotten: AtomicU64,
}

#[async_trait]
impl Store for Forgetful {
    async fn get(&self, client: usize, key: &str, level: Level) -> Result<Read, Failure> {
        let mut r = self.inner.get(client, key, level).await?;
        let f = self.forgotten.load(Ordering::SeqCst);
        r.values.retain(|v| document_id(v) != f);
        Ok(r)
    }
    async fn put(
        &self,
        client: usize,
        key: &str,
        doc: Vec<u8>,
        ctx: Option<String>,
        level: Level,
    ) -> Result<String, Failure> {
        self.inner.put(client, key, doc, ctx, level).await
    }
    async fn delete(
        &self,
        client: usize,
        key: &str,
        ctx: Option<String>,
        level: Level,
    ) -> Result<String, Failure> {
        self.inner.delete(client, key, ctx, level).await
    }
}

/// A real history with one planted loss: a write acknowledged at `ALL` that reads then
/// never return. The checker finds exactly that one, and nothing in the honest rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_planted_lost_write_in_a_real_history() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Arc::new(tokio::sync::RwLock::new(SimCluster::start(3, 3).await));
    let store = Arc::new(Forgetful {
        inner: SimStore::new(cluster, std::time::Duration::from_millis(500)),
        forgotten: AtomicU64::new(0),
    });
    let recorder = Recorder::new(3);
    let cfg = WorkloadConfig::new(42, 4, 3);
    let running = workload::start(store.clone(), &recorder, &cfg);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let id = recorder.next_document_id();
    let kind = Kind::Put { id, context: None };
    let op = recorder.invoke(0, "planted", kind, Level::All);
    let put = store
        .put(0, "planted", document(id, 0), None, Level::All)
        .await;
    recorder.complete(op, Outcome::Ok, Vec::new(), String::new());
    put.expect("the planted write is acknowledged");
    store.forgotten.store(id, Ordering::SeqCst);

    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    running.stop().await;
    let mut keys = cfg.keys.clone();
    keys.push("planted".into());
    workload::read_all(store, &recorder, 99, &keys, Level::All).await;
    let report = check(&recorder.history());
    assert_eq!(report.total(), 1, "{}", report.describe(5));
    assert_eq!(report.lost(), 1, "{}", report.describe(5));
    assert_eq!(report.violations[0].key, "planted");
    assert!(
        report.acknowledged > 50,
        "the honest part did work: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_sigstop_of_real_processes_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    for seed in seeds(&[11]) {
        let summary = process::run(&process::ProcScenario::short(seed)).await;
        println!("{summary}");
        summary.assert_clean(&format!(
            "RINGDB_SEED={seed} cargo test -p ringdb-tests --test faults kill_9"
        ));
        assert!(summary.report.acknowledged > 50, "{summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_network_partition_loses_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    if let Err(why) = docker::available().await {
        assert!(
            std::env::var("RINGDB_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "RINGDB_REQUIRE_DOCKER=1 but docker is unavailable: {why}"
        );
        println!(
            "SKIPPED: docker is unavailable ({why}); set RINGDB_REQUIRE_DOCKER=1 to fail instead"
        );
        return;
    }
    for seed in seeds(&[21]) {
        let summary = docker::run(&docker::DockerScenario::short(seed))
            .await
            .unwrap_or_else(|e| panic!("docker scenario could not run: {e}"));
        println!("{summary}");
        summary.assert_clean(&format!(
            "RINGDB_SEED={seed} cargo test -p ringdb-tests --test faults a_docker"
        ));
        assert!(summary.report.acknowledged > 30, "{summary}");
    }
}

/// Found by the fault suite (process seed 103, soak size): a client read a key that did not
/// exist yet, another client's write to it was acknowledged, then the first client deleted
/// "exactly what it saw" with its read's context. The read's context was empty (it saw
/// nothing); `WriteOptions::context` dropped it, the delete went out without a context,
/// and the coordinator read first and deleted the other client's write, which the deleting
/// client never saw: an acknowledged write silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_with_the_context_of_a_read_that_found_nothing_deletes_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = ringdb_tests::Cluster::start(3).await;
    let (a, b) = (cluster.client().await, cluster.client().await);
    let seen = a.get("faults", "k").await.unwrap();
    assert!(seen.is_empty());
    b.put("faults", "k", &serde_json::json!({"by": "b"}))
        .await
        .unwrap();
    let opts = ringdb_client::WriteOptions::new().context(seen.context);
    a.delete_with("faults", "k", &opts).await.unwrap();
    let after = b.get("faults", "k").await.unwrap();
    assert_eq!(
        after.values,
        vec![serde_json::json!({"by": "b"})],
        "deleting what a read saw (nothing) removed a write the reader never saw"
    );
}
