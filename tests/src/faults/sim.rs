//! Seeded fault schedules over the simulated network, and the scenario that runs the
//! workload through them.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use ringdb_node::coordinator::validate::{context, context_token};
use ringdb_node::coordinator::{Coordinator, WriteOp};
use ringdb_node::ring::token_for;
use ringdb_node::storage::Durability;
use tokio::sync::RwLock;

use super::{keep_evidence, Summary};
use crate::history::workload::{self, Failure, Read, Store, WorkloadConfig};
use crate::history::{check, check_convergence, Level, Recorder, Violation, ViolationKind};
use crate::sim::{Link, SimCluster};

/// The collection the simulated workload uses.
const COLLECTION: &str = "sim";

/// How a cut link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Refused at once.
    Refused,
    /// Never answered.
    Blackhole,
}

impl Cut {
    fn link(self) -> Link {
        match self {
            Cut::Refused => Link::Refused,
            Cut::Blackhole => Link::Blackhole,
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// One node cut off from all others.
    Isolate {
        /// The node.
        node: String,
        /// How.
        cut: Cut,
    },
    /// Two groups that cannot reach each other.
    Halves {
        /// One side; the other is everyone else.
        side: Vec<String>,
        /// How.
        cut: Cut,
    },
    /// Two groups that cannot reach each other, and a node both can reach.
    Bridge {
        /// One group.
        a: Vec<String>,
        /// The node between them.
        bridge: String,
        /// The other group.
        b: Vec<String>,
    },
    /// Every message refused with probability `percent` / 100.
    Lossy {
        /// Loss rate in percent.
        percent: u32,
    },
    /// Messages to and from a node delayed.
    Slow {
        /// The node.
        node: String,
        /// Delay per message.
        ms: u64,
    },
    /// A node crashes; it restarts when the step ends.
    Crash {
        /// The node.
        node: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Isolate { node, cut } => write!(f, "isolate {node} ({cut:?})"),
            Fault::Halves { side, cut } => write!(f, "split {} | rest ({cut:?})", side.join(",")),
            Fault::Bridge { a, bridge, b } => {
                write!(f, "bridge {} <- {bridge} -> {}", a.join(","), b.join(","))
            }
            Fault::Lossy { percent } => write!(f, "lose {percent}% of messages"),
            Fault::Slow { node, ms } => write!(f, "slow {node} by {ms}ms"),
            Fault::Crash { node } => write!(f, "crash {node}"),
        }
    }
}

/// Faults held together for a while, then healed, then a calm spell.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The faults.
    pub faults: Vec<Fault>,
    /// How long they last.
    pub hold: Duration,
    /// How long everything is healthy afterwards.
    pub calm: Duration,
}

/// A seeded sequence of fault steps: the same seed always gives the same schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The seed it came from.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// `steps` steps over `nodes` from `seed`.
    pub fn generate(seed: u64, nodes: &[String], steps: usize) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let steps = (0..steps)
            .map(|_| {
                let mut faults = vec![Self::fault(&mut rng, nodes)];
                // Sometimes a second fault on top: loss or delay under a partition or crash.
                if rng.gen_bool(0.3) {
                    let extra = Self::fault(&mut rng, nodes);
                    if !faults.contains(&extra) {
                        faults.push(extra);
                    }
                }
                Step {
                    faults,
                    hold: Duration::from_millis(rng.gen_range(300..=1500)),
                    calm: Duration::from_millis(rng.gen_range(100..=600)),
                }
            })
            .collect();
        Schedule { seed, steps }
    }

    fn fault(rng: &mut StdRng, nodes: &[String]) -> Fault {
        let mut shuffled = nodes.to_vec();
        shuffled.shuffle(rng);
        let cut = if rng.gen_bool(0.5) {
            Cut::Refused
        } else {
            Cut::Blackhole
        };
        match rng.gen_range(0..6) {
            0 => Fault::Isolate {
                node: shuffled[0].clone(),
                cut,
            },
            1 => Fault::Halves {
                side: shuffled[..nodes.len() / 2].to_vec(),
                cut,
            },
            2 => {
                let rest = &shuffled[1..];
                let half = rest.len() / 2;
                Fault::Bridge {
                    bridge: shuffled[0].clone(),
                    a: rest[..half].to_vec(),
                    b: rest[half..].to_vec(),
                }
            }
            3 => Fault::Lossy {
                percent: rng.gen_range(10..=40),
            },
            4 => Fault::Slow {
                node: shuffled[0].clone(),
                ms: rng.gen_range(50..=700),
            },
            _ => Fault::Crash {
                node: shuffled[0].clone(),
            },
        }
    }

    /// Total time the steps take.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|s| s.hold + s.calm).sum()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule for seed {}:", self.seed)?;
        for (i, s) in self.steps.iter().enumerate() {
            let faults: Vec<String> = s.faults.iter().map(|x| x.to_string()).collect();
            write!(
                f,
                "\n  {i}: {} for {}ms, then calm {}ms",
                faults.join(" + "),
                s.hold.as_millis(),
                s.calm.as_millis()
            )?;
        }
        Ok(())
    }
}

/// Set the links for `faults` (loss and delay first, so cuts override them) and crash
/// the nodes they crash; returns the crashed nodes.
fn apply(c: &mut SimCluster, faults: &[Fault]) -> Vec<String> {
    let ids = c.ids();
    let cut = |c: &SimCluster, a: &[String], b: &[String], link: Link| {
        for x in a {
            for y in b {
                c.net.set(x, y, link);
                c.net.set(y, x, link);
            }
        }
    };
    let mut ordered: Vec<&Fault> = faults.iter().collect();
    ordered.sort_by_key(|f| !matches!(f, Fault::Lossy { .. } | Fault::Slow { .. }));
    let mut crashed = Vec::new();
    for f in ordered {
        match f {
            Fault::Lossy { percent } => c.net.set_all(&ids, Link::Lossy(*percent as f64 / 100.0)),
            Fault::Slow { node, ms } => {
                let d = Link::Slow(Duration::from_millis(*ms));
                cut(c, std::slice::from_ref(node), &ids, d);
            }
            Fault::Isolate { node, cut: how } => c.net.isolate(node, &ids, how.link()),
            Fault::Halves { side, cut: how } => {
                let rest: Vec<String> = ids.iter().filter(|i| !side.contains(i)).cloned().collect();
                cut(c, side, &rest, how.link());
            }
            Fault::Bridge { a, b, .. } => cut(c, a, b, Link::Refused),
            Fault::Crash { node } => {
                if c.node(node).is_running() {
                    c.crash(node);
                    crashed.push(node.clone());
                }
            }
        }
    }
    crashed
}

/// The workload's view of a simulated cluster: each request goes to a node in rotation,
/// as a client without a ring would send it; a crashed node refuses.
pub struct SimStore {
    cluster: Arc<RwLock<SimCluster>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl SimStore {
    /// Requests to `cluster`, each waiting at most `timeout` for its level.
    pub fn new(cluster: Arc<RwLock<SimCluster>>, timeout: Duration) -> Self {
        SimStore {
            cluster,
            next: AtomicUsize::new(0),
            timeout,
        }
    }

    async fn coordinator(&self) -> Result<Arc<Coordinator>, Failure> {
        let c = self.cluster.read().await;
        let node = &c.nodes[self.next.fetch_add(1, Ordering::Relaxed) % c.nodes.len()];
        if node.is_running() {
            Ok(node.coordinator.clone())
        } else {
            Err(Failure {
                definite: true,
                message: format!("{}: connection refused (crashed)", node.id),
            })
        }
    }

    fn op(
        &self,
        key: &str,
        value: Option<Bytes>,
        ctx: &Option<String>,
        level: Level,
    ) -> Result<WriteOp, Failure> {
        Ok(WriteOp {
            collection: COLLECTION.into(),
            key: key.into(),
            value,
            context: context(ctx.as_deref().unwrap_or(""), COLLECTION, key).map_err(failure)?,
            level: node_level(level),
            durability: Durability::Durable,
            timeout: self.timeout,
            expires_ms: None,
        })
    }
}

fn node_level(l: Level) -> ringdb_node::coordinator::Level {
    match l {
        Level::One => ringdb_node::coordinator::Level::One,
        Level::Quorum => ringdb_node::coordinator::Level::Quorum,
        Level::All => ringdb_node::coordinator::Level::All,
    }
}

/// A node error as the workload sees it: the contract says which ones wrote nothing.
fn failure(e: ringdb_node::error::Error) -> Failure {
    use ringdb_node::error::Error as E;
    let definite = matches!(
        e,
        E::InvalidArgument(_) | E::Unavailable(_) | E::Overloaded(_)
    );
    Failure {
        definite,
        message: e.to_string(),
    }
}

#[async_trait]
impl Store for SimStore {
    async fn get(&self, _client: usize, key: &str, level: Level) -> Result<Read, Failure> {
        let c = self.coordinator().await?;
        let set = c
            .get(COLLECTION, key, node_level(level), self.timeout)
            .await
            .map_err(failure)?;
        Ok(Read {
            values: set.live_values().map(|b| b.to_vec()).collect(),
            context: context_token(COLLECTION, key, set.context()),
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
        let c = self.coordinator().await?;
        let op = self.op(key, Some(Bytes::from(doc)), &ctx, level)?;
        let reply = c.put(op).await.map_err(failure)?;
        Ok(context_token(COLLECTION, key, &reply.context))
    }

    async fn delete(
        &self,
        _client: usize,
        key: &str,
        ctx: Option<String>,
        level: Level,
    ) -> Result<String, Failure> {
        let c = self.coordinator().await?;
        let op = self.op(key, None, &ctx, level)?;
        let given = match &ctx {
            Some(_) => Some(op.context.clone()),
            None => None,
        };
        let reply = c.delete(op, given).await.map_err(failure)?;
        Ok(context_token(COLLECTION, key, &reply.context))
    }
}

/// A simulated scenario's shape.
#[derive(Debug, Clone)]
pub struct SimScenario {
    /// Seeds the schedule and the clients.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Replication factor.
    pub rf: usize,
    /// Fault steps.
    pub steps: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
}

impl SimScenario {
    /// The CI size: 5 nodes, N = 3, 6 fault steps (about 6 s), 6 clients on 8 keys.
    pub fn short(seed: u64) -> Self {
        SimScenario {
            seed,
            nodes: 5,
            rf: 3,
            steps: 6,
            clients: 6,
            keys: 8,
        }
    }

    /// The soak size: 12 fault steps (about 14 s), 8 clients on 10 keys.
    pub fn soak(seed: u64) -> Self {
        SimScenario {
            steps: 12,
            clients: 8,
            keys: 10,
            ..Self::short(seed)
        }
    }
}

/// Run the workload through the seed's schedule, heal, converge, read everything at `ALL`
/// and check the history.
pub async fn run(sc: &SimScenario) -> Summary {
    eprintln!(
        "sim scenario, seed {} (rerun: RINGDB_SEED={})",
        sc.seed, sc.seed
    );
    let cluster = SimCluster::start_seeded(sc.seed, sc.nodes, sc.rf, |cfg| {
        // Background anti-entropy runs during the faults too, giving up on a silent peer
        // sooner than in production (where it is 10 s) to keep runs short.
        cfg.aae.interval = Duration::from_millis(700);
        cfg.aae.request_timeout = Duration::from_secs(1);
    })
    .await;
    let schedule = Schedule::generate(sc.seed, &cluster.ids(), sc.steps);
    eprintln!("{schedule}");
    let cluster = Arc::new(RwLock::new(cluster));
    let store = Arc::new(SimStore::new(cluster.clone(), Duration::from_millis(500)));
    let recorder = Recorder::new(sc.rf);
    let cfg = WorkloadConfig::new(sc.seed, sc.clients, sc.keys);
    let running = workload::start(store.clone(), &recorder, &cfg);

    let began = Instant::now();
    for (i, step) in schedule.steps.iter().enumerate() {
        eprintln!("  [{:>6}ms] step {i}", began.elapsed().as_millis());
        let crashed = apply(&mut *cluster.write().await, &step.faults);
        tokio::time::sleep(step.hold).await;
        {
            let mut c = cluster.write().await;
            c.net.heal();
            for node in &crashed {
                c.restart(node).await;
            }
        }
        tokio::time::sleep(step.calm).await;
    }
    running.stop().await;
    eprintln!(
        "  [{:>6}ms] workload stopped; converging",
        began.elapsed().as_millis()
    );

    let healed = Instant::now();
    let diverged = converge(&cluster, &cfg.keys, sc.rf).await;
    let converge_ms = healed.elapsed().as_millis() as u64;
    eprintln!("  [{:>6}ms] converged", began.elapsed().as_millis());
    workload::read_all(store, &recorder, sc.clients, &cfg.keys, Level::All).await;
    let history = recorder.history();
    let mut summary = Summary::new("sim", sc.seed, check(&history), converge_ms, diverged);
    if !summary.is_clean() {
        summary.evidence = keep_evidence("sim", sc.seed, &history, &[]);
    }
    summary
}

/// Wait for every node to see every other up, then run anti-entropy passes on every node
/// until each key's replicas hold equal sibling sets; the differences left after 60 s.
async fn converge(cluster: &RwLock<SimCluster>, keys: &[String], rf: usize) -> Vec<Violation> {
    let c = cluster.read().await;
    c.wait_views(|_, _| true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for node in &c.nodes {
            node.anti_entropy.pass(None).await;
        }
        let ring = c.nodes[0].membership.ring();
        let mut states = Vec::new();
        for key in keys {
            let mut per_node = Vec::new();
            for r in ring.preference_list(token_for(COLLECTION, key), rf) {
                per_node.push((r.to_string(), c.node(r).local(key).await));
            }
            states.push((key.clone(), per_node));
        }
        let diverged = check_convergence(&states);
        if diverged.is_empty() || Instant::now() > deadline {
            debug_assert!(diverged.iter().all(|v| v.kind == ViolationKind::Diverged));
            return diverged;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
