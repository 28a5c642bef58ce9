//! Which peers are up and how to reach them, as the phi-accrual detectors judge them, and
//! the member report built on that. This node is always up in its own view.

use std::time::Instant;

use ringdb_proto::v1::MemberState;

use super::{Membership, STATUS_LEFT, STATUS_NORMAL};

/// One member as this node sees it, for status reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Node id.
    pub id: String,
    /// Address clients and peers use.
    pub address: String,
    /// Heartbeats arriving (phi below the threshold).
    pub up: bool,
    /// NORMAL, JOINING, LEAVING or LEFT.
    pub status: String,
    /// Share of the token space it is first replica for.
    pub ownership: f64,
    /// Keys it stores (as of its last gossiped state).
    pub keys: u64,
    /// Bytes it stores.
    pub bytes: u64,
    /// Hints it holds for others.
    pub hints: u64,
    /// Failure domain it was placed in.
    pub zone: String,
}

impl Membership {
    /// Whether a node is believed alive.
    pub fn is_up(&self, id: &str) -> bool {
        if id == self.me.id {
            return true;
        }
        let now = Instant::now();
        self.read()
            .peers
            .get(id)
            .is_some_and(|p| p.detector.phi(now) < self.config.phi_threshold)
    }

    /// The failure detector's current suspicion of a node (0 for this node).
    pub fn phi(&self, id: &str) -> f64 {
        if id == self.me.id {
            return 0.0;
        }
        self.read()
            .peers
            .get(id)
            .map(|p| p.detector.phi(Instant::now()))
            .unwrap_or(f64::INFINITY)
    }

    /// Where to reach a node.
    pub fn address(&self, id: &str) -> Option<String> {
        if id == self.me.id {
            return Some(self.me.address.clone());
        }
        self.read().peers.get(id).map(|p| p.state.address.clone())
    }

    /// `(id, address, up)` of every peer, for choosing whom to gossip with.
    pub fn peers(&self) -> Vec<(String, String, bool)> {
        let now = Instant::now();
        self.read()
            .peers
            .values()
            .filter(|p| p.state.status != STATUS_LEFT)
            .map(|p| {
                (
                    p.state.id.clone(),
                    p.state.address.clone(),
                    p.detector.phi(now) < self.config.phi_threshold,
                )
            })
            .collect()
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
            zone: s.zone.clone(),
        };
        let mut out = vec![view(&self.own_state(), true)];
        let now = Instant::now();
        out.extend(
            self.read()
                .peers
                .values()
                .map(|p| view(&p.state, p.detector.phi(now) < self.config.phi_threshold)),
        );
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
