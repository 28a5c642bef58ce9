//! Which peers are up and how to reach them, as the phi-accrual detectors judge them, and
//! the member report built on that. This node is always up in its own view.
//!
//! A refused or reset connection is stronger evidence than silence: the peer is down for
//! this node's availability checks at once, before its phi rises (about six gossip
//! intervals). Gossip still decides cluster-wide; the mark is local and lifts as soon as
//! the peer answers anything or gossip shows it heartbeating after the refusal.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

/// A refused connection to a peer: when, why, and the peer's state version known then.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    at: Instant,
    reason: String,
    incarnation: u64,
    heartbeat: u64,
}

impl Refusal {
    /// Whether `newer` proves the peer ran after the refusal: a new incarnation (it
    /// restarted), or a heartbeat two past the one known then (one may have been in flight
    /// from before it died).
    pub(super) fn outlived_by(&self, newer: &MemberState) -> bool {
        newer.incarnation > self.incarnation || newer.heartbeat >= self.heartbeat + 2
    }
}

impl super::Peer {
    fn up(&self, now: Instant, threshold: f64) -> bool {
        self.refused.is_none() && self.detector.phi(now) < threshold
    }
}

impl Membership {
    /// Whether a node is believed alive: its heartbeats arrive and no connection to it has
    /// been refused since it last answered.
    pub fn is_up(&self, id: &str) -> bool {
        if id == self.me.id {
            return true;
        }
        let now = Instant::now();
        self.read()
            .peers
            .get(id)
            .is_some_and(|p| p.up(now, self.config.phi_threshold))
    }

    /// A connection to `address` was refused or reset: treat its member as down here at
    /// once. Returns the member's id when this marked it (it was not marked already).
    pub fn note_refused(&self, address: &str, reason: &str) -> Option<String> {
        let mut inner = self.write();
        // An address can outlive a member: a node replaced under a new id on the same
        // host:port. The member still in the cluster is the one refusing.
        let id = inner
            .peers
            .values()
            .filter(|p| p.state.address == address && p.state.id != self.me.id)
            .min_by_key(|p| p.state.status == super::STATUS_LEFT)?
            .state
            .id
            .clone();
        let p = inner.peers.get_mut(&id)?;
        if p.refused.is_some() {
            return None;
        }
        p.refused = Some(Refusal {
            at: Instant::now(),
            reason: reason.to_string(),
            incarnation: p.state.incarnation,
            heartbeat: p.state.heartbeat,
        });
        self.any_refused.store(true, Ordering::Release);
        tracing::warn!(node = %p.state.id, %address, %reason, "peer refused the connection: down here until it answers");
        Some(p.state.id.clone())
    }

    /// The peer at `address` answered (even with an error): whatever refused before is
    /// serving again.
    pub fn note_answered(&self, address: &str) {
        if !self.any_refused.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.write();
        for p in inner
            .peers
            .values_mut()
            .filter(|p| p.state.address == address && p.refused.is_some())
        {
            tracing::info!(node = %p.state.id, %address, "refused peer answers again");
            p.refused = None;
        }
        let still = inner.peers.values().any(|p| p.refused.is_some());
        self.any_refused.store(still, Ordering::Release);
    }

    /// Why a node is down in this view, for error messages: "connection refused (os error
    /// 111), 120 ms ago" or "no heartbeat for 7.2 s".
    pub fn down_reason(&self, id: &str) -> Option<String> {
        if id == self.me.id {
            return None;
        }
        let now = Instant::now();
        let inner = self.read();
        let Some(p) = inner.peers.get(id) else {
            return Some("not a known member".to_string());
        };
        if let Some(r) = &p.refused {
            return Some(format!("{}, {} ago", r.reason, ago(now - r.at)));
        }
        if p.detector.phi(now) >= self.config.phi_threshold {
            return Some(match p.detector.silent_for(now) {
                Some(d) => format!("no heartbeat for {}", ago(d)),
                None => "no heartbeat since this node started".to_string(),
            });
        }
        None
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
                    p.up(now, self.config.phi_threshold),
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
                .map(|p| view(&p.state, p.up(now, self.config.phi_threshold))),
        );
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// "120 ms" or "7.2 s".
fn ago(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
