//! Member states and how gossip folds them in: what this node knows, the digests and
//! reconciliation of a gossip round, and the merge that keeps only newer states.
//!
//! Invariant kept here: a member's state is replaced only by a newer one (higher
//! (incarnation, heartbeat), or the same incarnation once it has tokens), so views converge
//! whatever order gossip arrives in.

use std::collections::BTreeMap;
use std::time::Instant;

use ringdb_proto::v1::{Digest, MemberState};

use super::phi::PhiDetector;
use super::{Membership, Peer, STATUS_JOINING, STATUS_LEFT, STATUS_NORMAL};

/// The order of a member's states: the higher (incarnation, heartbeat) is newer.
fn version(s: &MemberState) -> (u64, u64) {
    (s.incarnation, s.heartbeat)
}

impl Membership {
    /// Every member's state this node knows, itself first.
    pub fn known_states(&self) -> Vec<MemberState> {
        let mut out = vec![self.own_state()];
        out.extend(self.read().peers.values().map(|p| p.state.clone()));
        out
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

    pub(super) fn merge_at(&self, states: &[MemberState], arrived: Option<Instant>) -> bool {
        let mut changed = false;
        let mut forming = false;
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
                        forming |= s.forming;
                        inner.peers.insert(
                            s.id.clone(),
                            Peer {
                                state: s.clone(),
                                detector,
                                refused: None,
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
                            forming |= s.forming;
                            p.state = s.clone();
                            if p.refused.as_ref().is_some_and(|r| r.outlived_by(s)) {
                                tracing::info!(node = %s.id, "refused peer heartbeats again");
                                p.refused = None;
                            }
                            if let Some(t) = arrived {
                                p.detector.heartbeat(t);
                            }
                        }
                    }
                }
            }
        }
        if forming {
            // Someone founded the cluster moments ago: wait with client requests until it
            // is formed.
            self.serving
                .store(false, std::sync::atomic::Ordering::Release);
        }
        if changed {
            self.rebuild_ring();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MembershipConfig;
    use crate::ring::Token;

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
