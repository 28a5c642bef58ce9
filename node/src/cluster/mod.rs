//! Cluster membership and topology as this node sees it: who the members are, their
//! tokens, whether they are alive, and the ring derived from them.
//!
//! This is the seam the coordinator depends on (`ring`, `is_up`, `address`). Views spread by
//! gossip (`gossip`), and liveness comes from a phi-accrual detector over heartbeat arrivals
//! (`phi`).
//!
//! Invariants kept here:
//! - a member's state is replaced only by a newer one: higher (incarnation, heartbeat), or
//!   the same incarnation once it has tokens; so views converge whatever order gossip
//!   arrives in;
//! - a member that stops heartbeating is marked down but stays in the ring: a temporary
//!   failure is not a removal;
//! - this node is always up in its own view.

pub mod gossip;
pub mod join;
pub mod leave;
pub mod phi;
pub mod schema;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ringdb_proto::v1::{Digest, MemberState};

use crate::ring::{Ring, Token};
use phi::PhiDetector;
use schema::Schema;

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

/// How far a remover pushes a dead member's heartbeat so its verdict beats the member's own
/// last state everywhere.
const REMOVAL_BUMP: u64 = 1 << 32;

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
}

struct Inner {
    peers: BTreeMap<String, Peer>,
    ring: Arc<Ring>,
    /// The ring once joining members own their tokens; `None` when nobody is joining.
    pending: Option<Arc<Ring>>,
    own_status: String,
    heartbeat: u64,
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

fn version(s: &MemberState) -> (u64, u64) {
    (s.incarnation, s.heartbeat)
}

/// This node's view of the cluster.
pub struct Membership {
    me: MemberState,
    config: MembershipConfig,
    schema: Schema,
    /// Something durable changed outside gossip (a collection was created): persist soon.
    unsaved: AtomicBool,
    inner: RwLock<Inner>,
}

impl Membership {
    /// A view holding this node and the members it remembered from its last run (which
    /// count as down until they heartbeat).
    pub fn new(me: MemberState, known: Vec<MemberState>, config: MembershipConfig) -> Self {
        let m = Membership {
            me,
            schema: Schema::new(config.default_replication, Vec::new()),
            unsaved: AtomicBool::new(false),
            config,
            inner: RwLock::new(Inner {
                peers: BTreeMap::new(),
                ring: Arc::new(Ring::default()),
                pending: None,
                own_status: String::new(),
                // Above 0, so this view's own state supersedes whatever a token-less first
                // contact (a scout with heartbeat 0) left with the seeds.
                heartbeat: 1,
                own_load: (0, 0),
                own_hints: 0,
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

    /// This node's tokens.
    pub fn own_tokens(&self) -> &[Token] {
        &self.me.tokens
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

    /// A member's status (`None` for a stranger).
    pub fn status_of(&self, id: &str) -> Option<String> {
        if id == self.me.id {
            return Some(self.own_status());
        }
        self.read().peers.get(id).map(|p| p.state.status.clone())
    }

    /// The member whose join or departure is under way, if any: one topology change at a
    /// time.
    pub fn topology_change(&self) -> Option<(String, String)> {
        self.known_states()
            .into_iter()
            .find(|s| s.status == STATUS_JOINING || s.status == STATUS_LEAVING)
            .map(|s| (s.id, s.status))
    }

    /// Members in the ring that will stay in it (NORMAL or JOINING).
    pub fn staying_members(&self) -> usize {
        self.known_states()
            .iter()
            .filter(|s| {
                !s.tokens.is_empty() && s.status != STATUS_LEAVING && s.status != STATUS_LEFT
            })
            .count()
    }

    /// Mark a dead member as being removed by this node: it stays in the ring for reads
    /// while its ranges are re-replicated, and writes go to its successors too.
    pub fn mark_removing(&self, id: &str) -> bool {
        self.set_peer_status(id, STATUS_LEAVING, REMOVAL_BUMP)
    }

    /// Finish a removal (or record a departure): the member leaves the ring for good.
    pub fn mark_left(&self, id: &str) -> bool {
        self.set_peer_status(id, STATUS_LEFT, 1)
    }

    fn set_peer_status(&self, id: &str, status: &str, bump: u64) -> bool {
        {
            let mut inner = self.write();
            let Some(p) = inner.peers.get_mut(id) else {
                return false;
            };
            p.state.status = status.to_string();
            p.state.removed_by = self.me.id.clone();
            p.state.heartbeat = p.state.heartbeat.saturating_add(bump);
        }
        self.rebuild_ring();
        true
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The ring of members that serve reads; cheap to take per request.
    pub fn ring(&self) -> Arc<Ring> {
        self.read().ring.clone()
    }

    /// The ring as it will be once joining members own their tokens, while any member is
    /// joining: their ranges' writes must reach them too.
    pub fn pending_ring(&self) -> Option<Arc<Ring>> {
        self.read().pending.clone()
    }

    /// This node's status as it advertises it.
    pub fn own_status(&self) -> String {
        self.read().own_status.clone()
    }

    /// Change this node's status (JOINING to NORMAL, NORMAL to LEAVING to LEFT); gossip
    /// spreads it.
    pub fn set_own_status(&self, status: &str) {
        self.write().own_status = status.to_string();
        self.rebuild_ring();
    }

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

    /// Record this node's storage load, carried by its next heartbeat.
    pub fn set_own_load(&self, keys: u64, bytes: u64) {
        self.write().own_load = (keys, bytes);
    }

    /// Record how many hints this node holds for others.
    pub fn set_own_hints(&self, hints: u64) {
        self.write().own_hints = hints;
    }

    /// Advance this node's heartbeat (once per gossip round).
    pub fn beat(&self) {
        self.write().heartbeat += 1;
    }

    /// This node's state as it advertises it.
    pub fn own_state(&self) -> MemberState {
        let inner = self.read();
        let (keys, bytes) = inner.own_load;
        MemberState {
            keys,
            bytes,
            hints: inner.own_hints,
            heartbeat: inner.heartbeat,
            status: inner.own_status.clone(),
            ..self.me.clone()
        }
    }

    /// Every member's state this node knows, itself first.
    pub fn known_states(&self) -> Vec<MemberState> {
        let mut out = vec![self.own_state()];
        out.extend(self.read().peers.values().map(|p| p.state.clone()));
        out
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

    /// What this node knows, in brief: the first leg of a gossip round.
    pub fn digests(&self) -> Vec<Digest> {
        self.known_states()
            .into_iter()
            .map(|s| Digest {
                id: s.id,
                incarnation: s.incarnation,
                heartbeat: s.heartbeat,
            })
            .collect()
    }

    /// Answer a peer's digests: the states it lacks or has older, and the ids whose state
    /// it has newer than ours.
    pub fn reconcile(&self, digests: &[Digest]) -> (Vec<MemberState>, Vec<String>) {
        let mine = self.known_states();
        let theirs: BTreeMap<&str, (u64, u64)> = digests
            .iter()
            .map(|d| (d.id.as_str(), (d.incarnation, d.heartbeat)))
            .collect();
        let send = mine
            .iter()
            .filter(|s| theirs.get(s.id.as_str()).is_none_or(|v| version(s) > *v))
            .cloned()
            .collect();
        let wanted = digests
            .iter()
            .filter(|d| {
                d.id != self.me.id
                    && mine
                        .iter()
                        .find(|s| s.id == d.id)
                        .is_none_or(|s| (d.incarnation, d.heartbeat) > version(s))
            })
            .map(|d| d.id.clone())
            .collect();
        (send, wanted)
    }

    /// The states of the given members, for the last leg of a gossip round.
    pub fn states_of(&self, ids: &[String]) -> Vec<MemberState> {
        self.known_states()
            .into_iter()
            .filter(|s| ids.contains(&s.id))
            .collect()
    }

    /// Fold gossiped states into this view; a newer heartbeat counts as an arrival for the
    /// failure detector. Returns whether anything durable (a member, address or tokens)
    /// changed, so the caller can persist the view.
    pub fn merge(&self, states: &[MemberState]) -> bool {
        self.merge_at(states, Some(Instant::now()))
    }

    fn merge_at(&self, states: &[MemberState], arrived: Option<Instant>) -> bool {
        let mut changed = false;
        {
            let mut inner = self.write();
            for s in states {
                if s.id == self.me.id {
                    // The cluster removed this node while it was down; it must not come
                    // back with its old data (a wiped node rejoins as JOINING).
                    if s.status == STATUS_LEFT
                        && !s.removed_by.is_empty()
                        && inner.own_status == STATUS_NORMAL
                    {
                        tracing::error!(
                            removed_by = %s.removed_by,
                            "this node was removed from the cluster; it now stays out of the ring \
                             (wipe its data directory to rejoin as a new node)"
                        );
                        inner.own_status = STATUS_LEFT.to_string();
                        changed = true;
                    }
                    continue;
                }
                if s.id.is_empty() {
                    continue;
                }
                match inner.peers.get_mut(&s.id) {
                    None => {
                        let mut detector = PhiDetector::new(self.config.gossip_interval);
                        if let Some(t) = arrived {
                            detector.heartbeat(t);
                        }
                        inner.peers.insert(
                            s.id.clone(),
                            Peer {
                                state: s.clone(),
                                detector,
                            },
                        );
                        changed = true;
                    }
                    Some(p) if p.state.status == STATUS_LEFT && s.status != STATUS_JOINING => {
                        // Gone for good; only a wiped node starting over (JOINING, with a
                        // newer incarnation) comes back.
                    }
                    Some(p) => {
                        let gained_tokens = s.incarnation == p.state.incarnation
                            && p.state.tokens.is_empty()
                            && !s.tokens.is_empty();
                        if version(s) > version(&p.state) || gained_tokens {
                            changed |= p.state.address != s.address
                                || p.state.tokens != s.tokens
                                || p.state.status != s.status;
                            if s.incarnation != p.state.incarnation {
                                // A restart: old arrival intervals say nothing about the new process.
                                p.detector = PhiDetector::new(self.config.gossip_interval);
                            }
                            p.state = s.clone();
                            if let Some(t) = arrived {
                                p.detector.heartbeat(t);
                            }
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

    fn rebuild_ring(&self) {
        let mut inner = self.write();
        let mut all: Vec<(String, Vec<Token>, String)> = vec![(
            self.me.id.clone(),
            self.me.tokens.clone(),
            inner.own_status.clone(),
        )];
        all.extend(inner.peers.values().map(|p| {
            (
                p.state.id.clone(),
                p.state.tokens.clone(),
                p.state.status.clone(),
            )
        }));
        all.retain(|(_, t, status)| !t.is_empty() && status != STATUS_LEFT);
        let serving = all
            .iter()
            .filter(|(_, _, status)| status != STATUS_JOINING)
            .map(|(id, t, _)| (id.clone(), t.clone()));
        inner.ring = Arc::new(Ring::new(serving));
        // The ring after the moves under way: joiners in, leavers out.
        inner.pending = all
            .iter()
            .any(|(_, _, status)| status == STATUS_JOINING || status == STATUS_LEAVING)
            .then(|| {
                Arc::new(Ring::new(
                    all.iter()
                        .filter(|(_, _, status)| status != STATUS_LEAVING)
                        .map(|(id, t, _)| (id.clone(), t.clone())),
                ))
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, inc: u64, hb: u64, tokens: Vec<Token>) -> MemberState {
        MemberState {
            id: id.into(),
            address: format!("{id}:1"),
            incarnation: inc,
            heartbeat: hb,
            tokens,
            ..Default::default()
        }
    }

    #[test]
    fn newer_states_win_and_the_ring_follows() {
        let m = Membership::new(
            state("a", 1, 0, vec![0]),
            vec![],
            MembershipConfig::default(),
        );
        assert!(m.merge(&[state("b", 1, 1, vec![])]));
        assert_eq!(
            m.ring().nodes(),
            ["a"],
            "members without tokens are not in the ring"
        );
        assert!(
            m.merge(&[state("b", 1, 1, vec![100])]),
            "same version, but now with tokens"
        );
        assert_eq!(m.ring().nodes(), ["a", "b"]);
        assert!(
            !m.merge(&[state("b", 0, 9, vec![5])]),
            "older incarnation ignored"
        );
        assert_eq!(m.ring().tokens_of("b"), vec![100]);
        assert!(m.is_up("b"), "a heartbeat just arrived");
    }

    #[test]
    fn remembered_members_are_down_until_they_heartbeat() {
        let m = Membership::new(
            state("a", 1, 0, vec![0]),
            vec![state("b", 1, 5, vec![9])],
            MembershipConfig::default(),
        );
        assert!(!m.is_up("b"));
        m.merge(&[state("b", 1, 6, vec![9])]);
        assert!(m.is_up("b"));
    }

    #[test]
    fn reconcile_sends_what_the_peer_lacks_and_asks_for_what_it_has_newer() {
        let m = Membership::new(
            state("a", 1, 0, vec![0]),
            vec![],
            MembershipConfig::default(),
        );
        m.merge(&[state("b", 1, 5, vec![1]), state("c", 1, 5, vec![2])]);
        let digests = vec![
            Digest {
                id: "b".into(),
                incarnation: 1,
                heartbeat: 9,
            }, // theirs newer
            Digest {
                id: "c".into(),
                incarnation: 1,
                heartbeat: 2,
            }, // ours newer
            Digest {
                id: "d".into(),
                incarnation: 1,
                heartbeat: 1,
            }, // unknown to us
        ];
        let (send, wanted) = m.reconcile(&digests);
        let sent: Vec<&str> = send.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(sent, ["a", "c"]);
        assert_eq!(wanted, ["b", "d"]);
    }
}
