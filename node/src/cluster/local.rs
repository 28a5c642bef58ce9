//! This node's own state as it advertises it: status, load, hint count and heartbeat.

use ringdb_proto::v1::MemberState;

use super::Membership;

impl Membership {
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
            indexes: inner.own_indexes.clone(),
            heartbeat: inner.heartbeat,
            status: inner.own_status.clone(),
            ..self.me.clone()
        }
    }
}
