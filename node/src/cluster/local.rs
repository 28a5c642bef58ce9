//! This node's own state as it advertises it: status, load, hint count and heartbeat.

use std::sync::atomic::Ordering;

use ringdb_proto::v1::MemberState;

use super::{Membership, STATUS_LEFT};
use crate::ring::Token;

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

    /// Take this node's tokens (founding the cluster, or joining it with `status`); the
    /// heartbeat moves on so every peer takes the new state.
    pub fn take_tokens(&self, tokens: Vec<Token>, status: &str) {
        {
            let mut inner = self.write();
            inner.own_tokens = tokens;
            inner.own_status = status.to_string();
            inner.heartbeat += 1;
        }
        self.rebuild_ring();
        self.note_change();
    }

    /// Mark this node as forming the cluster it just founded, or done forming it; the
    /// heartbeat moves on so every peer takes the new state.
    pub fn set_forming(&self, forming: bool) {
        {
            let mut inner = self.write();
            inner.forming = forming;
            inner.heartbeat += 1;
        }
        if forming {
            self.serving.store(false, Ordering::Release);
        }
    }

    /// Whether this node is forming the cluster it founded.
    pub fn is_forming(&self) -> bool {
        self.read().forming
    }

    /// Whether this node takes client requests: `Err` says why not (it has no tokens yet,
    /// or the cluster is still forming). Cheap once it serves.
    pub fn readiness(&self) -> Result<(), String> {
        if self.serving.load(Ordering::Acquire) {
            return Ok(());
        }
        let forming: Vec<String> = {
            let inner = self.read();
            if inner.own_tokens.is_empty() {
                return Err(format!(
                    "{} is starting: it has no tokens yet (it is founding or joining the \
                     cluster); retry shortly or ask another node",
                    self.me.id
                ));
            }
            let me = inner.forming.then(|| self.me.id.clone());
            me.into_iter()
                .chain(
                    inner
                        .peers
                        .values()
                        .filter(|p| p.state.forming && p.state.status != STATUS_LEFT)
                        .map(|p| p.state.id.clone()),
                )
                .collect()
        };
        if let Some(founder) = forming.iter().find(|id| self.is_up(id)) {
            return Err(format!(
                "the cluster is forming: {founder} founded it and waits for its seeds to take \
                 tokens; retry shortly"
            ));
        }
        self.serving.store(true, Ordering::Release);
        Ok(())
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
            tokens: inner.own_tokens.clone(),
            forming: inner.forming,
            ..self.me.clone()
        }
    }
}
