//! The workload: concurrent clients doing random gets, puts with and without contexts, and
//! deletes with and without contexts on a few keys (so they collide), each operation
//! recorded in a [`Recorder`]. The cluster is reached through a [`Store`], implemented for
//! the in-process simulation and for the real client.
//!
//! A client's choices come from a generator seeded by the run's seed and the client's
//! number; what it does next also depends on what its reads returned, so a rerun with the
//! same seed makes the same kinds of choices but not necessarily the same operations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use super::{document, document_id, Kind, Level, OpId, Outcome, Recorder};

/// Why a request failed, and whether it definitely had no effect.
#[derive(Debug, Clone)]
pub struct Failure {
    /// True when nothing can have been written (refused before writing, never sent).
    pub definite: bool,
    /// What the cluster or the transport said.
    pub message: String,
}

/// What a read returned.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// The live siblings' JSON.
    pub values: Vec<Vec<u8>>,
    /// The context token to write with.
    pub context: String,
}

/// A cluster the workload can talk to. `client` is the workload client's number, for
/// stores that route each client differently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read `key` at `level`.
    async fn get(&self, client: usize, key: &str, level: Level) -> Result<Read, Failure>;
    /// Write `doc` to `key` at `level`, with a context token or none; returns the new
    /// context token.
    async fn put(
        &self,
        client: usize,
        key: &str,
        doc: Vec<u8>,
        context: Option<String>,
        level: Level,
    ) -> Result<String, Failure>;
    /// Delete `key` at `level`, with a context token or none (the coordinator reads first).
    async fn delete(
        &self,
        client: usize,
        key: &str,
        context: Option<String>,
        level: Level,
    ) -> Result<String, Failure>;
}

/// How a workload runs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// The keys they use.
    pub keys: Vec<String>,
    /// Seeds every client's choices.
    pub seed: u64,
    /// The harness gives up on a request after this long (a write is then of unknown outcome).
    pub op_timeout: Duration,
    /// Each client pauses up to this long between operations.
    pub max_think: Duration,
}

impl WorkloadConfig {
    /// `clients` clients on keys `k0..k{keys}`.
    pub fn new(seed: u64, clients: usize, keys: usize) -> Self {
        WorkloadConfig {
            clients,
            keys: (0..keys).map(|i| format!("k{i}")).collect(),
            seed,
            op_timeout: Duration::from_secs(3),
            max_think: Duration::from_millis(10),
        }
    }
}

/// A workload in progress.
pub struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Ask every client to stop after its current operation, and wait for them.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("workload client panicked");
        }
    }
}

/// Start `cfg.clients` clients against `store`, recording into `recorder`.
pub fn start(store: Arc<dyn Store>, recorder: &Recorder, cfg: &WorkloadConfig) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..cfg.clients)
        .map(|id| {
            let mut client = Client {
                id,
                store: store.clone(),
                rec: recorder.clone(),
                timeout: cfg.op_timeout,
                rng: StdRng::seed_from_u64(
                    cfg.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
                last_read: HashMap::new(),
                last_context: HashMap::new(),
            };
            let (keys, think, stop) = (cfg.keys.clone(), cfg.max_think, stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let key = keys[client.rng.gen_range(0..keys.len())].clone();
                    client.one(&key).await;
                    let pause = client.rng.gen_range(0..=think.as_micros() as u64);
                    tokio::time::sleep(Duration::from_micros(pause)).await;
                }
            })
        })
        .collect();
    Running { stop, tasks }
}

/// Read every key once at `level` as client `client` (after the faults, to check what
/// survived); recorded like any other read.
pub async fn read_all(
    store: Arc<dyn Store>,
    recorder: &Recorder,
    client: usize,
    keys: &[String],
    level: Level,
) {
    let mut c = Client {
        id: client,
        store,
        rec: recorder.clone(),
        timeout: Duration::from_secs(10),
        rng: StdRng::seed_from_u64(0),
        last_read: HashMap::new(),
        last_context: HashMap::new(),
    };
    for key in keys {
        c.get(key, level).await;
    }
}

/// A context and the operation that returned it.
type Ctx = (OpId, String);

struct Client {
    id: usize,
    store: Arc<dyn Store>,
    rec: Recorder,
    timeout: Duration,
    rng: StdRng,
    /// Per key, this client's last successful read.
    last_read: HashMap<String, Ctx>,
    /// Per key, the context of this client's last successful read or put.
    last_context: HashMap<String, Ctx>,
}

impl Client {
    fn write_level(&mut self) -> Level {
        match self.rng.gen_range(0..10) {
            0 => Level::One,
            1 => Level::All,
            _ => Level::Quorum,
        }
    }

    fn read_level(&mut self) -> Level {
        match self.rng.gen_range(0..20) {
            0 | 1 => Level::One,
            2..=4 => Level::All,
            _ => Level::Quorum,
        }
    }

    /// One random operation (or a read followed by a write) on `key`.
    async fn one(&mut self, key: &str) {
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=34 => {
                let level = self.read_level();
                self.get(key, level).await;
            }
            35..=51 => {
                let ctx = self.last_read.get(key).cloned();
                self.put(key, ctx).await;
            }
            52..=65 => self.put(key, None).await,
            66..=75 => {
                let ctx = self.last_context.get(key).cloned();
                self.put(key, ctx).await;
            }
            76..=85 => {
                // Read-modify-write, as an application resolving siblings would.
                let level = self.read_level();
                if let Some(ctx) = self.get(key, level).await {
                    self.put(key, Some(ctx)).await;
                }
            }
            86..=96 => {
                let ctx = self.last_read.get(key).cloned();
                if ctx.is_some() {
                    self.delete(key, ctx).await;
                } else {
                    let level = self.read_level();
                    self.get(key, level).await;
                }
            }
            _ => self.delete(key, None).await,
        }
    }

    async fn get(&mut self, key: &str, level: Level) -> Option<Ctx> {
        let op = self.rec.invoke(self.id, key, Kind::Get, level);
        let result = tokio::time::timeout(self.timeout, self.store.get(self.id, key, level)).await;
        match result {
            Ok(Ok(read)) => {
                let ids = read.values.iter().map(|v| document_id(v)).collect();
                self.rec.complete(op, Outcome::Ok, ids, String::new());
                let ctx = (op, read.context);
                self.last_read.insert(key.to_string(), ctx.clone());
                self.last_context.insert(key.to_string(), ctx.clone());
                Some(ctx)
            }
            Ok(Err(f)) => {
                self.rec
                    .complete(op, Outcome::Failed, Vec::new(), f.message);
                None
            }
            Err(_) => {
                self.rec
                    .complete(op, Outcome::Failed, Vec::new(), "no answer in time".into());
                None
            }
        }
    }

    async fn put(&mut self, key: &str, ctx: Option<Ctx>) {
        let level = self.write_level();
        let id = self.rec.next_document_id();
        let (source, token) = match ctx {
            Some((op, token)) => (Some(op), Some(token)),
            None => (None, None),
        };
        let op = self.rec.invoke(
            self.id,
            key,
            Kind::Put {
                id,
                context: source,
            },
            level,
        );
        let doc = document(id, self.id);
        let result = tokio::time::timeout(
            self.timeout,
            self.store.put(self.id, key, doc, token, level),
        )
        .await;
        if let Some(context) = self.finish_write(op, result) {
            self.last_context.insert(key.to_string(), (op, context));
        }
    }

    async fn delete(&mut self, key: &str, ctx: Option<Ctx>) {
        let level = self.write_level();
        let (source, token) = match ctx {
            Some((op, token)) => (Some(op), Some(token)),
            None => (None, None),
        };
        let op = self
            .rec
            .invoke(self.id, key, Kind::Delete { context: source }, level);
        let result =
            tokio::time::timeout(self.timeout, self.store.delete(self.id, key, token, level)).await;
        // A delete's context is not used again: what a blind delete's returned context
        // covers is not known to the checker.
        if self.finish_write(op, result).is_some() {
            self.last_read.remove(key);
            self.last_context.remove(key);
        }
    }

    fn finish_write(
        &mut self,
        op: OpId,
        result: Result<Result<String, Failure>, tokio::time::error::Elapsed>,
    ) -> Option<String> {
        match result {
            Ok(Ok(context)) => {
                self.rec
                    .complete(op, Outcome::Ok, Vec::new(), String::new());
                Some(context)
            }
            Ok(Err(f)) => {
                let outcome = if f.definite {
                    Outcome::Failed
                } else {
                    Outcome::Unknown
                };
                self.rec.complete(op, outcome, Vec::new(), f.message);
                None
            }
            Err(_) => {
                self.rec.complete(
                    op,
                    Outcome::Unknown,
                    Vec::new(),
                    format!("no answer in {:?}", self.timeout),
                );
                None
            }
        }
    }
}
