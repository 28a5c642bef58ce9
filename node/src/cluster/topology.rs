//! The rings derived from the members and the status changes that move them: the ring of
//! members serving reads, the pending ring while members join or leave, one topology change
//! at a time, and removals decided by this node.
//!
//! Invariant kept here: a member that stops heartbeating stays in the ring (a temporary
//! failure is not a removal); only LEFT members and members without tokens are out of it.

use std::sync::Arc;

use super::{Membership, STATUS_JOINING, STATUS_LEAVING, STATUS_LEFT};
use crate::ring::{Ring, Token};

/// How far a remover pushes a dead member's heartbeat so its verdict beats the member's own
/// last state everywhere.
const REMOVAL_BUMP: u64 = 1 << 32;

impl Membership {
    /// The ring of members that serve reads; cheap to take per request.
    pub fn ring(&self) -> Arc<Ring> {
        self.read().ring.clone()
    }

    /// The ring as it will be once joining members own their tokens, while any member is
    /// joining: their ranges' writes must reach them too.
    pub fn pending_ring(&self) -> Option<Arc<Ring>> {
        self.read().pending.clone()
    }

    /// Derive both rings again from the members' tokens and statuses, after any change.
    pub(super) fn rebuild_ring(&self) {
        let mut inner = self.write();
        let mut all: Vec<(String, Vec<Token>, String)> = vec![(
            self.me.id.clone(),
            inner.own_tokens.clone(),
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

    /// A member's status (`None` for a stranger).
    pub fn status_of(&self, id: &str) -> Option<String> {
        if id == self.me.id {
            return Some(self.own_status());
        }
        self.read().peers.get(id).map(|p| p.state.status.clone())
    }

    /// The member whose join or departure is under way, if any: one topology change at a
    /// time. A member still without tokens moves nothing yet.
    pub fn topology_change(&self) -> Option<(String, String)> {
        self.known_states()
            .into_iter()
            .filter(|s| !s.tokens.is_empty())
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
}
