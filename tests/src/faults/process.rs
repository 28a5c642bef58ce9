//! Faults on real `ringdb` processes: `kill -9` and restart, `SIGSTOP` and `SIGCONT`, while
//! the workload runs through the real client. Also the pieces the Docker scenario shares:
//! the client-backed [`ClientStore`] and convergence through `ringdb admin repair`.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringdb_client::{Client, Consistency, Context, ReadOptions, Routing, WriteOptions};

use super::{keep_evidence, Summary};
use crate::history::workload::{self, Failure, Read, Store, WorkloadConfig};
use crate::history::{check, check_convergence, document_id, Level, Recorder, Violation};
use crate::{binary, Cluster};

/// The collection the real-process workloads use.
pub const COLLECTION: &str = "faults";

/// The workload's view of a real cluster, through the RingDB client.
pub struct ClientStore {
    client: Client,
}

impl ClientStore {
    /// Requests through `client`.
    pub fn new(client: Client) -> Self {
        ClientStore { client }
    }
}

fn consistency(l: Level) -> Consistency {
    match l {
        Level::One => Consistency::One,
        Level::Quorum => Consistency::Quorum,
        Level::All => Consistency::All,
    }
}

/// A client error as the workload sees it. The contract says which errors wrote nothing:
/// refusals before writing (`UNAVAILABLE`, `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...)
/// and requests that never reached a node. A timeout, an internal error or a connection
/// that broke after sending leaves a write's outcome unknown.
pub fn client_failure(e: ringdb_client::Error) -> Failure {
    use ringdb_client::Error as E;
    let definite = match &e {
        E::Timeout(_) | E::Internal(_) | E::Conflict(_) => false,
        E::Unreachable(m) => !m.contains("may or may not"),
        _ => true,
    };
    Failure {
        definite,
        message: e.to_string(),
    }
}

fn write_options(ctx: Option<String>, level: Level) -> WriteOptions {
    let opts = WriteOptions::new().consistency(consistency(level));
    match ctx {
        Some(t) => opts.context(Context::from_token(t)),
        None => opts,
    }
}

#[async_trait]
impl Store for ClientStore {
    async fn get(&self, _client: usize, key: &str, level: Level) -> Result<Read, Failure> {
        let opts = ReadOptions::new().consistency(consistency(level));
        let r = self
            .client
            .get_raw(COLLECTION, key, &opts)
            .await
            .map_err(client_failure)?;
        Ok(Read {
            values: r.values.iter().map(|b| b.to_vec()).collect(),
            context: r.context.token().to_string(),
        })
    }

    async fn put(
        &self,
        _client: usize,
        key: &str,
        doc: Vec<u8>,
        ctx: Option<String>,
        level: Level,
    ) -> Result<String, Failure> {
        let r = self
            .client
            .put_raw(COLLECTION, key, doc.into(), &write_options(ctx, level))
            .await
            .map_err(client_failure)?;
        Ok(r.context.token().to_string())
    }

    async fn delete(
        &self,
        _client: usize,
        key: &str,
        ctx: Option<String>,
        level: Level,
    ) -> Result<String, Failure> {
        let r = self
            .client
            .delete_with(COLLECTION, key, &write_options(ctx, level))
            .await
            .map_err(client_failure)?;
        Ok(r.context.token().to_string())
    }
}

/// One process fault.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcFault {
    /// `kill -9` the node, leave it down for `down`, start it again.
    Kill {
        /// Index of the node.
        node: usize,
        /// How long it stays down.
        down: Duration,
    },
    /// `SIGSTOP` the node for `hold`, then `SIGCONT`.
    Pause {
        /// Index of the node.
        node: usize,
        /// How long it stays frozen.
        hold: Duration,
    },
}

/// A seeded sequence of process faults, each followed by a calm spell.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSchedule {
    /// The seed it came from.
    pub seed: u64,
    /// Faults and the calm after each.
    pub steps: Vec<(ProcFault, Duration)>,
}

impl ProcSchedule {
    /// `steps` faults on a cluster of `nodes`; kills and pauses alternate, starting with a
    /// kill, so even a short schedule has both.
    pub fn generate(seed: u64, nodes: usize, steps: usize) -> ProcSchedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let steps = (0..steps)
            .map(|i| {
                let node = rng.gen_range(0..nodes);
                let fault = if i % 2 == 0 {
                    ProcFault::Kill {
                        node,
                        down: Duration::from_millis(rng.gen_range(300..=2500)),
                    }
                } else {
                    ProcFault::Pause {
                        node,
                        hold: Duration::from_millis(rng.gen_range(1000..=4000)),
                    }
                };
                (fault, Duration::from_millis(rng.gen_range(300..=1500)))
            })
            .collect();
        ProcSchedule { seed, steps }
    }
}

impl fmt::Display for ProcSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule for seed {}:", self.seed)?;
        for (i, (fault, calm)) in self.steps.iter().enumerate() {
            match fault {
                ProcFault::Kill { node, down } => write!(
                    f,
                    "\n  {i}: kill -9 n{} for {}ms",
                    node + 1,
                    down.as_millis()
                )?,
                ProcFault::Pause { node, hold } => write!(
                    f,
                    "\n  {i}: SIGSTOP n{} for {}ms",
                    node + 1,
                    hold.as_millis()
                )?,
            }
            write!(f, ", then calm {}ms", calm.as_millis())?;
        }
        Ok(())
    }
}

/// A real-process scenario's shape.
#[derive(Debug, Clone)]
pub struct ProcScenario {
    /// Seeds the schedule and the clients.
    pub seed: u64,
    /// Fault steps (kills and pauses alternate).
    pub steps: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
}

impl ProcScenario {
    /// The CI size: 3 nodes, a kill and a pause (about 6 s of faults), 4 clients on 6 keys.
    pub fn short(seed: u64) -> Self {
        ProcScenario {
            seed,
            steps: 2,
            clients: 4,
            keys: 6,
        }
    }

    /// The soak size: 6 kills and pauses (about 20 s), 6 clients on 8 keys.
    pub fn soak(seed: u64) -> Self {
        ProcScenario {
            steps: 6,
            clients: 6,
            keys: 8,
            ..Self::short(seed)
        }
    }
}

/// Start 3 nodes, run the workload through the seed's kills and pauses, then heal,
/// repair, read everything at `ALL` and check.
pub async fn run(sc: &ProcScenario) -> Summary {
    eprintln!(
        "process scenario, seed {} (rerun: RINGDB_SEED={})",
        sc.seed, sc.seed
    );
    let schedule = ProcSchedule::generate(sc.seed, 3, sc.steps);
    eprintln!("{schedule}");
    let mut cluster = Cluster::start_with(3, &["--aae-interval-secs", "3"]).await;
    let store = std::sync::Arc::new(ClientStore::new(cluster.client().await));
    let recorder = Recorder::new(3);
    let mut cfg = WorkloadConfig::new(sc.seed, sc.clients, sc.keys);
    cfg.op_timeout = Duration::from_secs(4);
    let running = workload::start(store.clone(), &recorder, &cfg);
    // Let the workload get going before the first fault.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (fault, calm) in &schedule.steps {
        match fault {
            ProcFault::Kill { node, down } => {
                cluster.nodes[*node].kill9();
                tokio::time::sleep(*down).await;
                cluster.nodes[*node].restart().await;
            }
            ProcFault::Pause { node, hold } => {
                cluster.nodes[*node].pause();
                tokio::time::sleep(*hold).await;
                cluster.nodes[*node].resume();
            }
        }
        tokio::time::sleep(*calm).await;
    }
    running.stop().await;

    let healed = Instant::now();
    cluster.wait_all_up().await;
    let nodes: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.address.clone()))
        .collect();
    let diverged = converge(&nodes, &cfg.keys).await;
    let converge_ms = healed.elapsed().as_millis() as u64;
    workload::read_all(store, &recorder, sc.clients, &cfg.keys, Level::All).await;
    let history = recorder.history();
    let mut summary = Summary::new("process", sc.seed, check(&history), converge_ms, diverged);
    if !summary.is_clean() {
        let logs: Vec<(String, &std::path::Path)> = cluster
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.log.as_path()))
            .collect();
        summary.evidence = keep_evidence("process", sc.seed, &history, &logs);
    }
    summary
}

/// One replica's copy of a key as `LocalGet` shows it: the workload ids of its live
/// siblings and its context token (which covers tombstones and superseded versions too).
type Local = Result<(Vec<u64>, String), String>;

/// Run `ringdb admin repair` on every node but the last (between them they compare every
/// pair) until every node's copy of every key and every node's hash-tree root agree. `nodes`
/// are (id, address the host reaches it at); every node must replicate every key (N =
/// number of nodes). Returns what still differs after 90 s.
pub async fn converge(nodes: &[(String, String)], keys: &[String]) -> Vec<Violation> {
    let mut clients = Vec::new();
    for (id, address) in nodes {
        let c = Client::builder([address.as_str()])
            .routing(Routing::RoundRobin)
            .connect()
            .await
            .expect("client");
        clients.push((id.clone(), address.clone(), c));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for (_, address, _) in &clients[..clients.len() - 1] {
            // A range that could not be compared makes it exit non-zero; the next round retries.
            let _ = admin(&["admin", "repair", "--host", address]).await;
        }
        let mut states: Vec<(String, Vec<(String, Local)>)> = Vec::new();
        let mut roots = Vec::new();
        for (id, address, _) in &clients {
            let root = admin(&["admin", "repair-status", "--json", "--host", address])
                .await
                .and_then(|out| {
                    serde_json::from_str::<serde_json::Value>(out.trim()).map_err(|e| e.to_string())
                })
                .map(|v| (vec![], v["roots"][COLLECTION].to_string()));
            roots.push((id.clone(), root));
        }
        states.push(("<hash-tree roots>".to_string(), roots));
        for key in keys {
            let mut per_node = Vec::new();
            for (id, _, c) in &clients {
                let local = c
                    .local_get(COLLECTION, key)
                    .await
                    .map(|r| {
                        let ids = r
                            .values
                            .iter()
                            .map(|v| document_id(v.to_string().as_bytes()))
                            .collect();
                        (ids, r.context.token().to_string())
                    })
                    .map_err(|e| e.to_string());
                per_node.push((id.clone(), local));
            }
            states.push((key.clone(), per_node));
        }
        let diverged = check_convergence(&states);
        if diverged.is_empty() || Instant::now() > deadline {
            return diverged;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Run `ringdb <args>`; its stdout, or why it failed.
async fn admin(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(binary("ringdb"))
        .args(args)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
