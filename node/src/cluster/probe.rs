//! Spreading membership views and detecting failures by probing every known peer.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use ringdb_proto::v1::{ExchangeRequest, ExchangeResponse, MemberState};

use super::Membership;
use crate::storage::Storage;
use crate::transport::Transport;

/// Metadata key under which the last known members are kept across restarts.
pub const MEMBERS_META_KEY: &str = "members";

/// Members remembered from the last run.
pub async fn load_members(storage: &Storage) -> Vec<MemberState> {
    match storage.get_meta(MEMBERS_META_KEY).await {
        Ok(Some(bytes)) => ExchangeResponse::decode(bytes.as_slice())
            .map(|r| r.known)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Remember the members so a restarted node knows the ring before any peer answers.
pub async fn persist(membership: &Membership, storage: &Storage) {
    let known: Vec<MemberState> = membership.known_states().into_iter().skip(1).collect();
    let bytes = ExchangeResponse { from: None, known }.encode_to_vec();
    if let Err(e) = storage.put_meta(MEMBERS_META_KEY, bytes).await {
        tracing::warn!(error = %e, "could not persist membership");
    }
}

/// Handle a peer's exchange: learn from it and answer with this node's view.
pub fn answer(membership: &Membership, req: &ExchangeRequest) -> (ExchangeResponse, bool) {
    let mut changed = false;
    if let Some(from) = &req.from {
        changed |= membership.heard_from(from);
    }
    changed |= membership.merge(&req.known);
    let resp = ExchangeResponse {
        from: Some(membership.own_state()),
        known: membership.known_states(),
    };
    (resp, changed)
}

async fn exchange_with(
    membership: &Membership,
    transport: &dyn Transport,
    address: &str,
    timeout: Duration,
) -> Option<(ExchangeResponse, bool)> {
    let req = ExchangeRequest {
        from: Some(membership.own_state()),
        known: membership.known_states(),
    };
    match tokio::time::timeout(timeout, transport.exchange(address, req)).await {
        Ok(Ok(resp)) => {
            let mut changed = false;
            if let Some(from) = &resp.from {
                changed |= membership.heard_from(from);
            }
            changed |= membership.merge(&resp.known);
            Some((resp, changed))
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = address, error = %e, "probe failed");
            None
        }
        Err(_) => None,
    }
}

/// Ask the seeds who is in the cluster, retrying until one answers or `patience` runs out.
/// Used before a brand-new node picks its tokens.
pub async fn learn_from_seeds(
    membership: &Membership,
    transport: &dyn Transport,
    seeds: &[String],
    patience: Duration,
) -> bool {
    let seeds: Vec<&String> = seeds
        .iter()
        .filter(|s| s.as_str() != membership.address_of_self())
        .collect();
    if seeds.is_empty() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        for seed in &seeds {
            if exchange_with(membership, transport, seed, Duration::from_secs(1))
                .await
                .is_some()
            {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(?seeds, "no seed answered; starting as a new cluster");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Probe every known peer (and any seed not yet known) forever; run as a background task.
pub async fn run(
    membership: Arc<Membership>,
    transport: Arc<dyn Transport>,
    storage: Storage,
    seeds: Vec<String>,
) {
    let interval = membership.config().probe_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let stats = storage.stats();
        membership.set_own_load(
            stats.keys.load(std::sync::atomic::Ordering::Relaxed),
            stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        );
        let peers = membership.peer_addresses();
        let mut targets: Vec<(Option<String>, String)> = peers
            .iter()
            .map(|(id, addr)| (Some(id.clone()), addr.clone()))
            .collect();
        for seed in &seeds {
            if seed != membership.address_of_self() && !peers.iter().any(|(_, a)| a == seed) {
                targets.push((None, seed.clone()));
            }
        }
        let timeout = interval.max(Duration::from_millis(300));
        let rounds = targets.into_iter().map(|(id, addr)| {
            let membership = membership.clone();
            let transport = transport.clone();
            async move {
                let r = exchange_with(&membership, transport.as_ref(), &addr, timeout).await;
                if r.is_none() {
                    if let Some(id) = id {
                        membership.probe_failed(&id);
                    }
                }
                r.is_some_and(|(_, changed)| changed)
            }
        });
        let changed = futures::future::join_all(rounds)
            .await
            .into_iter()
            .any(|c| c);
        membership.expire_silent();
        if changed {
            persist(&membership, &storage).await;
        }
    }
}
