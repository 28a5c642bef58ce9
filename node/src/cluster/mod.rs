//! Cluster membership and topology as this node sees it: who the members are, their
//! tokens, whether they are alive, and the ring derived from them.
//!
//! This is the seam the coordinator depends on (`ring`, `is_up`, `address`). Views spread by
//! gossip (`gossip`), and liveness comes from a phi-accrual detector over heartbeat arrivals
//! (`phi`).
//!
//! `Membership` is defined here with its identity and settings; its other jobs each have a
//! file: this node's own advertised state (`local`), member states and the gossip merge
//! (`states`), liveness and the member report (`liveness`), the rings with the status
//! changes that move them (`topology`), and index definitions with their state across the
//! cluster (`indexes`).
//!
//! Invariants kept here:
//! - a member's state is replaced only by a newer one: higher (incarnation, heartbeat), or
//!   the same incarnation once it has tokens; so views converge whatever order gossip
//!   arrives in;
//! - a member that stops heartbeating is marked down but stays in the ring: a temporary
//!   failure is not a removal;
//! - this node is always up in its own view.

pub mod found;
pub mod gossip;
pub mod indexes;
pub mod join;
pub mod leave;
mod liveness;
mod local;
pub mod phi;
pub mod schema;
mod states;
pub mod stream;
pub mod tokens;
mod topology;
mod watched;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ringdb_proto::v1::MemberState;

use crate::ring::{Ring, Token};
pub use liveness::MemberView;
use phi::PhiDetector;
use schema::Schema;
pub use watched::Watched;

/// Wall-clock milliseconds since the Unix epoch from the system clock, for code without a
/// node's [`Clock`](crate::clock::Clock) at hand; a node's own layers read the clock it was
/// built with.
pub fn now_ms() -> u64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_ms()
}

/// A member that owns its tokens and serves reads.
pub const STATUS_NORMAL: &str = "NORMAL";
/// A member streaming the data of its new ranges; it receives writes but serves no reads.
pub const STATUS_JOINING: &str = "JOINING";
/// A member handing its ranges to their new owners; it still serves them meanwhile.
pub const STATUS_LEAVING: &str = "LEAVING";
/// A member that left (decommissioned or removed): out of the ring for good.
pub const STATUS_LEFT: &str = "LEFT";

/// Gossip pace and failure-detector sensitivity.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How often this node bumps its heartbeat and gossips.
    pub gossip_interval: Duration,
    /// Phi above which a member is considered down (Cassandra's and Akka's default is 8).
    pub phi_threshold: f64,
    /// N of collections nobody created with other options.
    pub default_replication: u32,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            gossip_interval: Duration::from_secs(1),
            phi_threshold: 8.0,
            default_replication: 3,
        }
    }
}

#[derive(Debug)]
struct Peer {
    state: MemberState,
    detector: PhiDetector,
    /// Set when a connection to it was refused or reset: down for availability checks at
    /// once, whatever its phi, until it answers or gossip brings proof it is alive.
    refused: Option<liveness::Refusal>,
}

struct Inner {
    peers: BTreeMap<String, Peer>,
    ring: Arc<Ring>,
    /// The ring once joining members own their tokens; `None` when nobody is joining.
    pending: Option<Arc<Ring>>,
    own_status: String,
    /// This node's tokens: empty until it founds the cluster or takes its share of it.
    own_tokens: Vec<Token>,
    /// This node founded the cluster moments ago and waits for its seeds to take tokens.
    forming: bool,
    heartbeat: u64,
    own_load: (u64, u64),
    own_hints: u64,
    own_indexes: Vec<ringdb_proto::v1::NodeIndexState>,
}

/// This node's view of the cluster.
pub struct Membership {
    me: MemberState,
    config: MembershipConfig,
    schema: Schema,
    /// Something durable changed outside gossip (a collection was created): persist soon.
    unsaved: AtomicBool,
    /// Whether any peer is marked refused, so answers on the hot path skip the lock.
    any_refused: AtomicBool,
    /// Set once this node has tokens and nobody it knows is forming the cluster, so the
    /// readiness check on every request skips the lock.
    serving: AtomicBool,
    inner: RwLock<Inner>,
}

impl Membership {
    /// A view holding this node and the members it remembered from its last run (which
    /// count as down until they heartbeat).
    pub fn new(me: MemberState, known: Vec<MemberState>, config: MembershipConfig) -> Self {
        let own_tokens = me.tokens.clone();
        let m = Membership {
            me,
            schema: Schema::new(config.default_replication, Vec::new()),
            unsaved: AtomicBool::new(false),
            any_refused: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            config,
            inner: RwLock::new(Inner {
                peers: BTreeMap::new(),
                ring: Arc::new(Ring::default()),
                pending: None,
                own_status: String::new(),
                own_tokens,
                forming: false,
                // Above 0, so this view's own state supersedes whatever a token-less first
                // contact (a scout with heartbeat 0) left with the seeds.
                heartbeat: 1,
                own_load: (0, 0),
                own_hints: 0,
                own_indexes: Vec::new(),
            }),
        };
        m.write().own_status = m.me.status.clone();
        m.merge_at(&known, None);
        m.rebuild_ring();
        m
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.me.id
    }

    /// This node's advertised address.
    pub fn address_of_self(&self) -> &str {
        &self.me.address
    }

    /// This node's tokens (none while it is still founding or joining the cluster).
    pub fn own_tokens(&self) -> Vec<Token> {
        self.read().own_tokens.clone()
    }

    /// Settings in force.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// The collections and their options.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Record that the view changed in a way worth persisting (the gossip loop saves it).
    pub fn note_change(&self) {
        self.unsaved.store(true, Ordering::Relaxed);
    }

    /// Whether the view changed since the last call.
    pub fn take_change(&self) -> bool {
        self.unsaved.swap(false, Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}
