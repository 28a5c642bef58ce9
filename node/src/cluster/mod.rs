//! Cluster membership and topology as this node sees it: who the members are, their
//! tokens, whether they answer, and the ring derived from them.
//!
//! This is the seam the coordinator depends on (`ring`, `is_up`, `address`). Today views
//! spread by all-to-all probes seeded from `--seeds`; gossip with phi-accrual failure
//! detection replaces the internals without changing that surface.
//!
//! Invariants kept here:
//! - a member's state is replaced only by one with a higher incarnation, or by the same
//!   incarnation once it has tokens; so views converge whatever order exchanges arrive in;
//! - a member that stops answering is marked down but stays in the ring: a temporary
//!   failure is not a removal;
//! - this node is always up in its own view.

pub mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ringdb_proto::v1::MemberState;

use crate::ring::{Ring, Token};

/// The only status until join and decommission arrive.
pub const STATUS_NORMAL: &str = "NORMAL";

/// Timing of liveness probes.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How often every peer is probed.
    pub probe_interval: Duration,
    /// A peer silent for this long is considered down.
    pub down_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_millis(500),
            down_after: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    state: MemberState,
    up: bool,
    last_ok: Option<Instant>,
}

struct Inner {
    peers: BTreeMap<String, Peer>,
    ring: Arc<Ring>,
    own_load: (u64, u64),
    own_hints: u64,
}

/// One member as this node sees it, for status reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Node id.
    pub id: String,
    /// Address clients and peers use.
    pub address: String,
    /// Answering probes.
    pub up: bool,
    /// NORMAL, JOINING, LEAVING or LEFT.
    pub status: String,
    /// Share of the token space it is first replica for.
    pub ownership: f64,
    /// Keys it stores (as of its last exchange).
    pub keys: u64,
    /// Bytes it stores.
    pub bytes: u64,
    /// Hints it holds for others.
    pub hints: u64,
}

/// This node's view of the cluster.
pub struct Membership {
    me: MemberState,
    config: MembershipConfig,
    inner: RwLock<Inner>,
}

impl Membership {
    /// A view holding this node and the members it remembered from its last run.
    pub fn new(me: MemberState, known: Vec<MemberState>, config: MembershipConfig) -> Self {
        let m = Membership {
            me,
            config,
            inner: RwLock::new(Inner {
                peers: BTreeMap::new(),
                ring: Arc::new(Ring::default()),
                own_load: (0, 0),
                own_hints: 0,
            }),
        };
        m.merge(&known);
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

    /// This node's tokens.
    pub fn own_tokens(&self) -> &[Token] {
        &self.me.tokens
    }

    /// Timing settings.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current ring snapshot; cheap to take per request.
    pub fn ring(&self) -> Arc<Ring> {
        self.read().ring.clone()
    }

    /// Whether a node is believed to be answering.
    pub fn is_up(&self, id: &str) -> bool {
        id == self.me.id || self.read().peers.get(id).is_some_and(|p| p.up)
    }

    /// Where to reach a node.
    pub fn address(&self, id: &str) -> Option<String> {
        if id == self.me.id {
            return Some(self.me.address.clone());
        }
        self.read().peers.get(id).map(|p| p.state.address.clone())
    }

    /// Record this node's storage load, reported in exchanges and status.
    pub fn set_own_load(&self, keys: u64, bytes: u64) {
        self.write().own_load = (keys, bytes);
    }

    /// This node's state as it advertises it.
    pub fn own_state(&self) -> MemberState {
        let inner = self.read();
        let (keys, bytes) = inner.own_load;
        MemberState {
            keys,
            bytes,
            hints: inner.own_hints,
            ..self.me.clone()
        }
    }

    /// Record how many hints this node holds for others.
    pub fn set_own_hints(&self, hints: u64) {
        self.write().own_hints = hints;
    }

    /// Every member's state this node knows, itself included.
    pub fn known_states(&self) -> Vec<MemberState> {
        let mut out = vec![self.own_state()];
        out.extend(self.read().peers.values().map(|p| p.state.clone()));
        out
    }

    /// Peer addresses to probe.
    pub fn peer_addresses(&self) -> Vec<(String, String)> {
        self.read()
            .peers
            .values()
            .map(|p| (p.state.id.clone(), p.state.address.clone()))
            .collect()
    }

    /// Fold states learned from a peer into this view. Returns whether anything durable
    /// (a member, address or tokens) changed, so the caller can persist the view.
    pub fn merge(&self, states: &[MemberState]) -> bool {
        let mut changed = false;
        {
            let mut inner = self.write();
            for s in states {
                if s.id == self.me.id || s.id.is_empty() {
                    continue;
                }
                match inner.peers.get_mut(&s.id) {
                    None => {
                        inner.peers.insert(
                            s.id.clone(),
                            Peer {
                                state: s.clone(),
                                up: false,
                                last_ok: None,
                            },
                        );
                        changed = true;
                    }
                    Some(p) => {
                        let newer = s.incarnation > p.state.incarnation
                            || (s.incarnation == p.state.incarnation
                                && p.state.tokens.is_empty()
                                && !s.tokens.is_empty());
                        if newer {
                            changed |= p.state.address != s.address || p.state.tokens != s.tokens;
                            p.state = s.clone();
                        }
                    }
                }
            }
        }
        if changed {
            self.rebuild_ring();
        }
        changed
    }

    /// Record a peer's own report of itself (fresher load figures than third-party views).
    pub fn heard_from(&self, state: &MemberState) -> bool {
        let changed = self.merge(std::slice::from_ref(state));
        let mut inner = self.write();
        if let Some(p) = inner.peers.get_mut(&state.id) {
            if p.state.incarnation == state.incarnation {
                p.state.keys = state.keys;
                p.state.bytes = state.bytes;
                p.state.hints = state.hints;
            }
            p.up = true;
            p.last_ok = Some(Instant::now());
        }
        changed
    }

    /// Record a failed probe of a peer; it goes down once silent for `down_after`.
    pub fn probe_failed(&self, id: &str) {
        let down_after = self.config.down_after;
        let mut inner = self.write();
        if let Some(p) = inner.peers.get_mut(id) {
            if p.up && p.last_ok.is_none_or(|t| t.elapsed() >= down_after) {
                tracing::warn!(node = id, "peer marked down");
                p.up = false;
            }
        }
    }

    /// Mark peers down that have been silent too long even without a failed probe
    /// (a probe that hangs never fails).
    pub fn expire_silent(&self) {
        let down_after = self.config.down_after;
        let mut inner = self.write();
        for (id, p) in inner.peers.iter_mut() {
            if p.up && p.last_ok.is_none_or(|t| t.elapsed() >= down_after) {
                tracing::warn!(node = %id, "peer silent, marked down");
                p.up = false;
            }
        }
    }

    fn rebuild_ring(&self) {
        let mut inner = self.write();
        let mut members: Vec<(String, Vec<Token>)> =
            vec![(self.me.id.clone(), self.me.tokens.clone())];
        members.extend(
            inner
                .peers
                .values()
                .map(|p| (p.state.id.clone(), p.state.tokens.clone())),
        );
        inner.ring = Arc::new(Ring::new(members));
    }

    /// Every member with its liveness, status, ownership and load.
    pub fn members(&self) -> Vec<MemberView> {
        let ring = self.ring();
        let own = ring.ownership();
        let view = |s: &MemberState, up: bool| MemberView {
            id: s.id.clone(),
            address: s.address.clone(),
            up,
            status: if s.status.is_empty() {
                STATUS_NORMAL.to_string()
            } else {
                s.status.clone()
            },
            ownership: own.get(&s.id).copied().unwrap_or(0.0),
            keys: s.keys,
            bytes: s.bytes,
            hints: s.hints,
        };
        let mut out = vec![view(&self.own_state(), true)];
        out.extend(self.read().peers.values().map(|p| view(&p.state, p.up)));
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, inc: u64, tokens: Vec<Token>) -> MemberState {
        MemberState {
            id: id.into(),
            address: format!("{id}:1"),
            incarnation: inc,
            tokens,
            ..Default::default()
        }
    }

    #[test]
    fn newer_incarnation_wins_and_ring_follows() {
        let m = Membership::new(state("a", 1, vec![0]), vec![], MembershipConfig::default());
        assert!(m.merge(&[state("b", 1, vec![])]));
        assert_eq!(
            m.ring().nodes(),
            ["a"],
            "members without tokens are not in the ring"
        );
        assert!(m.merge(&[state("b", 1, vec![100])]));
        assert_eq!(m.ring().nodes(), ["a", "b"]);
        assert!(
            !m.merge(&[state("b", 0, vec![5])]),
            "older incarnation ignored"
        );
        assert_eq!(m.ring().tokens_of("b"), vec![100]);
        assert!(
            !m.is_up("b"),
            "a member heard of but not heard from is not up"
        );
        m.heard_from(&state("b", 1, vec![100]));
        assert!(m.is_up("b"));
    }
}
