//! In-process clusters: real nodes (coordinator, storage threads, probes, internode service
//! handlers) over an in-memory engine, connected by a simulated network whose links a test
//! can cut, black-hole, slow down or make lossy, for all messages or only some kinds
//! ([`Filter`]), with every random decision following from the cluster's seed.
//!
//! Requests are delivered to the destination's `InternodeService::handle`, the dispatch its
//! gRPC server and pipeline use, so everything but sockets and HTTP/2 is the production
//! code path.
//!
//! A node can also crash and restart ([`SimCluster::crash`], [`SimCluster::restart`]): its
//! background tasks stop, its storage and outgoing messages are fenced off at once (so work
//! still in flight inside it cannot write or send, as in a killed process), peers' messages
//! to it are refused, and a restart assembles a new incarnation over the same in-memory data.
//! The in-memory engine keeps everything applied, so a simulated crash models a node whose
//! writes were all on disk; losing unflushed writes is left to the real-process tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringdb_node::coordinator::{Coordinator, Level, WriteOp};
use ringdb_node::server::{assemble, Assembled, NodeConfig};
use ringdb_node::storage::{Durability, Engine, MemEngine, Pairs, Space, StorageError};
use ringdb_node::transport::Transport;
use ringdb_node::version::{CausalContext, SiblingSet};
use tokio::task::JoinHandle;

mod net;

pub use net::{Action, Fate, Filter, FilterId, Link, LinkLog, SimNet, SimTransport};

/// An in-memory engine that stops working the moment its node crashes, so requests still
/// running inside a crashed incarnation cannot change its data; the data itself outlives
/// the crash and is used by the next incarnation.
struct FencedEngine {
    inner: Arc<MemEngine>,
    alive: Arc<AtomicBool>,
}

impl FencedEngine {
    fn check(&self) -> Result<(), StorageError> {
        if self.alive.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StorageError::Io("node crashed (simulated)".into()))
        }
    }
}

impl Engine for FencedEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.check()?;
        self.inner.get(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<Option<usize>, StorageError> {
        self.check()?;
        self.inner.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<Option<usize>, StorageError> {
        self.check()?;
        self.inner.delete(key)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.check()?;
        self.inner.flush()
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.check()?;
        self.inner.get_meta(key)
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        self.inner.put_meta(key, value)
    }
    fn for_each_data(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        self.check()?;
        self.inner.for_each_data(visit)
    }
    fn aux_put(&self, space: Space, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        self.inner.aux_put(space, key, value)
    }
    fn aux_delete(&self, space: Space, key: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        self.inner.aux_delete(space, key)
    }
    fn aux_scan(&self, space: Space, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.check()?;
        self.inner.aux_scan(space, prefix, limit)
    }
    fn next_id(&self) -> Result<u64, StorageError> {
        self.check()?;
        self.inner.next_id()
    }
    fn scan_data(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.check()?;
        self.inner.scan_data(from, to, limit)
    }
}

/// A node running in this process.
pub struct SimNode {
    /// Its id, which is also its simulated address.
    pub id: String,
    /// Its coordinator: tests call it as the client service would.
    pub coordinator: Arc<Coordinator>,
    /// Its membership view.
    pub membership: Arc<ringdb_node::cluster::Membership>,
    /// Its anti-entropy: tests run passes directly.
    pub anti_entropy: Arc<ringdb_node::repair::AntiEntropy>,
    /// Its queries: tests call them as the client service would.
    pub queries: Arc<ringdb_node::query::QueryEngine>,
    background: Vec<JoinHandle<()>>,
    /// Its data, which survives a crash.
    data: Arc<MemEngine>,
    /// Cleared when this incarnation crashes.
    alive: Arc<AtomicBool>,
    config: NodeConfig,
}

impl SimNode {
    /// Write at `level` through this node, with `context` (empty for a blind write).
    pub async fn put(
        &self,
        key: &str,
        json: &str,
        context: CausalContext,
        level: Level,
    ) -> ringdb_node::error::Result<CausalContext> {
        self.put_expiring(key, json, context, level, None).await
    }

    /// Write that expires at `expires_ms` (wall clock), as a TTL'd PUT does.
    pub async fn put_expiring(
        &self,
        key: &str,
        json: &str,
        context: CausalContext,
        level: Level,
        expires_ms: Option<u64>,
    ) -> ringdb_node::error::Result<CausalContext> {
        let op = WriteOp {
            collection: "sim".into(),
            key: key.into(),
            value: Some(Bytes::from(json.to_string())),
            context,
            level,
            durability: Durability::Durable,
            timeout: Duration::from_millis(500),
            expires_ms,
        };
        Ok(self.coordinator.put(op).await?.context)
    }

    /// Read at `level` through this node.
    pub async fn get(&self, key: &str, level: Level) -> ringdb_node::error::Result<SiblingSet> {
        self.coordinator
            .get("sim", key, level, Duration::from_millis(500))
            .await
    }

    /// This node's own replica of `key`.
    pub async fn local(&self, key: &str) -> SiblingSet {
        self.coordinator.local_get("sim", key).await.unwrap()
    }

    /// Whether this node is running (not crashed).
    pub fn is_running(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Assemble a node (new or restarted over `data`) on `net` and start its background
    /// work; waits until it has finished joining.
    async fn spawn(net: &SimNet, config: NodeConfig, data: Arc<MemEngine>) -> SimNode {
        let id = config.node_id.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let transport: Arc<dyn Transport> =
            Arc::new(SimTransport::new(net.clone(), &id, alive.clone()));
        let engine = Arc::new(FencedEngine {
            inner: data.clone(),
            alive: alive.clone(),
        });
        let parts: Assembled = assemble(&config, engine, transport.clone(), id.clone())
            .await
            .expect("assemble node");
        net.attach(&id, Arc::new(parts.internode_service()));
        let background = parts.spawn_background(config.seeds.clone());
        // One topology change at a time: wait until this node has finished joining.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while parts.membership.own_status() != ringdb_node::cluster::STATUS_NORMAL
            || parts.membership.readiness().is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} did not finish joining"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        SimNode {
            id,
            coordinator: parts.coordinator,
            membership: parts.membership,
            anti_entropy: parts.anti_entropy,
            queries: parts.queries,
            background,
            data,
            alive,
            config,
        }
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        for t in &self.background {
            t.abort();
        }
    }
}

/// Nodes `n1..nN` on one simulated network.
pub struct SimCluster {
    /// The network, for injecting faults.
    pub net: SimNet,
    /// The nodes.
    pub nodes: Vec<SimNode>,
}

/// The seed of clusters started without one: their lossy links still decide the same way
/// on every run.
pub const DEFAULT_SEED: u64 = 0;

impl SimCluster {
    /// Start `n` nodes with replication factor `rf`, fast probes, joined one at a time.
    pub async fn start(n: usize, rf: usize) -> SimCluster {
        Self::start_with(n, rf, |_| {}).await
    }

    /// Start `n` nodes gossiping every `interval_ms`, without waiting for their views to
    /// agree (for measuring how long that takes).
    pub async fn start_unsettled(n: usize, rf: usize, interval_ms: u64) -> SimCluster {
        Self::build(DEFAULT_SEED, n, rf, |c| {
            c.membership.gossip_interval = Duration::from_millis(interval_ms)
        })
        .await
    }

    /// Like `start`, with `tweak` applied to every node's configuration.
    pub async fn start_with(n: usize, rf: usize, tweak: impl Fn(&mut NodeConfig)) -> SimCluster {
        Self::start_seeded(DEFAULT_SEED, n, rf, tweak).await
    }

    /// Like `start_with`, on a network whose random decisions follow from `seed`.
    pub async fn start_seeded(
        seed: u64,
        n: usize,
        rf: usize,
        tweak: impl Fn(&mut NodeConfig),
    ) -> SimCluster {
        let cluster = Self::build(seed, n, rf, tweak).await;
        cluster.wait_views(|_, _| true).await;
        cluster
    }

    async fn build(seed: u64, n: usize, rf: usize, tweak: impl Fn(&mut NodeConfig)) -> SimCluster {
        let net = SimNet::new(seed);
        let mut nodes: Vec<SimNode> = Vec::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let mut config = NodeConfig::new(&id, &id, "unused");
            config.coordinator.replication_factor = rf;
            config.membership.gossip_interval = Duration::from_millis(50);
            config.seeds = vec!["n1".to_string()];
            tweak(&mut config);
            nodes.push(SimNode::spawn(&net, config, Arc::new(MemEngine::default())).await);
        }
        SimCluster { net, nodes }
    }

    /// Crash `id` as `kill -9` would: its background work stops, requests still running
    /// inside it can neither touch its data nor send, and peers' messages to it are
    /// refused. Its data stays for [`restart`](Self::restart).
    pub fn crash(&mut self, id: &str) {
        let node = self.nodes.iter_mut().find(|n| n.id == id).expect("node id");
        node.alive.store(false, Ordering::SeqCst);
        for t in node.background.drain(..) {
            t.abort();
        }
        self.net.detach(id);
    }

    /// Start a crashed node again over its data, as a new incarnation.
    pub async fn restart(&mut self, id: &str) {
        let i = self.nodes.iter().position(|n| n.id == id).expect("node id");
        assert!(!self.nodes[i].is_running(), "{id} is running");
        let (config, data) = (self.nodes[i].config.clone(), self.nodes[i].data.clone());
        self.nodes[i] = SimNode::spawn(&self.net, config, data).await;
    }

    /// Ids of every node.
    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// Whether every running node has every node in its ring and sees each up exactly
    /// when `expect_up(observer, target)`.
    pub fn views_are(&self, expect_up: impl Fn(&str, &str) -> bool) -> bool {
        self.nodes.iter().filter(|o| o.is_running()).all(|o| {
            o.membership.ring().nodes().len() == self.nodes.len()
                && self
                    .nodes
                    .iter()
                    .all(|t| o.membership.is_up(&t.id) == expect_up(&o.id, &t.id))
        })
    }

    /// Wait until `views_are(expect_up)`.
    pub async fn wait_views(&self, expect_up: impl Fn(&str, &str) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.views_are(&expect_up) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "membership views did not settle"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Node by id.
    pub fn node(&self, id: &str) -> &SimNode {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }
}
