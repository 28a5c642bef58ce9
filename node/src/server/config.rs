//! What a node is started with: identity, addresses, data directory and every layer's
//! settings.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{self, Clock};
use crate::cluster::MembershipConfig;
use crate::coordinator::hints::HintConfig;
use crate::coordinator::validate::DEFAULT_MAX_DOCUMENT_BYTES;
use crate::coordinator::CoordinatorConfig;
use crate::repair::AaeConfig;
use crate::ring::DEFAULT_VNODES;
use crate::security::SecurityConfig;
use crate::storage::{BuildPace, PoolConfig};

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Stable identity of this node; its data directory belongs to it.
    pub node_id: String,
    /// Where to listen, `HOST:PORT`.
    pub listen: String,
    /// Where the HTTP/JSON API listens, if anywhere (`--http-listen`).
    pub http_listen: Option<String>,
    /// Address peers and clients use to reach this node; defaults to the bound address.
    pub advertise: Option<String>,
    /// Where sled keeps this node's data.
    pub data_dir: PathBuf,
    /// Nodes to ask about the cluster at first start.
    pub seeds: Vec<String>,
    /// Virtual nodes (tokens) to take at first start.
    pub vnodes: usize,
    /// Failure domain (rack, availability zone), shown in status.
    pub zone: String,
    /// Largest document accepted.
    pub max_document_bytes: usize,
    /// sled page cache.
    pub cache_bytes: u64,
    /// Interval of sled's own background flush (what memory-only writes can lose).
    pub background_flush_ms: u64,
    /// Storage thread pool.
    pub storage: PoolConfig,
    /// Quorum settings.
    pub coordinator: CoordinatorConfig,
    /// Probe timing.
    pub membership: MembershipConfig,
    /// Hinted handoff limits.
    pub hints: HintConfig,
    /// Anti-entropy pacing.
    pub aae: AaeConfig,
    /// Pace of index builds and drops.
    pub index_build: BuildPace,
    /// Where every layer of the node reads wall-clock time; a simulation may move it.
    pub clock: Arc<dyn Clock>,
    /// TLS, client tokens and the cluster secret (all off by default).
    pub security: SecurityConfig,
}

impl NodeConfig {
    /// Defaults for everything but identity, address and data directory.
    pub fn new(
        node_id: impl Into<String>,
        listen: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        NodeConfig {
            node_id: node_id.into(),
            listen: listen.into(),
            http_listen: None,
            advertise: None,
            data_dir: data_dir.into(),
            seeds: Vec::new(),
            vnodes: DEFAULT_VNODES,
            zone: String::new(),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            cache_bytes: 256 * 1024 * 1024,
            background_flush_ms: 1000,
            storage: PoolConfig::default(),
            coordinator: CoordinatorConfig::default(),
            membership: MembershipConfig::default(),
            hints: HintConfig::default(),
            aae: AaeConfig::default(),
            index_build: BuildPace::default(),
            clock: clock::system(),
            security: SecurityConfig::default(),
        }
    }
}
