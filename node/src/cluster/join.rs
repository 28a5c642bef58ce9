//! Joining: a new node announces itself JOINING, streams the data of every range it will
//! replicate from that range's current replicas, and only then becomes NORMAL.
//!
//! Invariants kept here:
//! - while a node is JOINING, coordinators send writes for its future ranges to it as well as
//!   to the current replicas (see `Membership::pending_ring`), so a write acknowledged during
//!   the move is on the old replicas (and streamed) or on the new node (or hinted to it);
//! - streaming begins only after the JOINING state has had time to reach every node;
//! - streamed entries are merged, never overwritten, so a write that arrives both by
//!   streaming and directly, in either order, is kept once;
//! - a node restarted while JOINING streams again from the start (merging is idempotent).

use std::sync::Arc;
use std::time::Duration;

use super::stream::{plan, Streamer, Transfer};
use super::{Membership, STATUS_NORMAL};
use crate::storage::Storage;
use crate::transport::Transport;

/// Metadata key holding this node's status across restarts.
pub const STATUS_META_KEY: &str = "status";

/// Move one transfer to this node from the first live source that serves it completely.
async fn fetch(streamer: &Streamer<'_>, t: &Transfer) -> Result<u64, String> {
    let me = streamer.membership.node_id().to_string();
    let mut last_error = String::from("no live source");
    for source in t
        .sources
        .iter()
        .filter(|s| **s != me && streamer.membership.is_up(s))
    {
        match streamer.run(t, source, std::slice::from_ref(&me)).await {
            Ok(n) => return Ok(n),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Finish joining: wait for the JOINING state to spread, stream every range, go NORMAL.
/// Retries until it succeeds; run as a background task.
pub async fn run(membership: Arc<Membership>, storage: Storage, transport: Arc<dyn Transport>) {
    let settle = membership.config().gossip_interval * 3 + Duration::from_millis(500);
    tracing::info!(?settle, "joining: waiting for the JOINING state to spread");
    loop {
        tokio::time::sleep(settle).await;
        let old = membership.ring();
        let Some(new) = membership.pending_ring() else {
            break;
        };
        if let Some((other, status)) = membership
            .topology_change()
            .filter(|(id, _)| id != membership.node_id())
        {
            tracing::warn!(%other, %status, "joining waits: another topology change is under way");
            continue;
        }
        let me = membership.node_id();
        let transfers: Vec<Transfer> = plan(&old, &new, &membership.schema().groups())
            .into_iter()
            .filter(|t| t.targets.iter().any(|x| x == me))
            .collect();
        tracing::info!(
            ranges = transfers.len(),
            "joining: streaming the ranges this node will replicate"
        );
        let streamer = Streamer {
            membership: &membership,
            storage: &storage,
            transport: transport.as_ref(),
        };
        let started = std::time::Instant::now();
        let mut total = 0u64;
        let mut failed = None;
        for t in &transfers {
            match fetch(&streamer, t).await {
                Ok(n) => total += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "join streaming failed; retrying");
            continue;
        }
        if let Err(e) = storage
            .put_meta(STATUS_META_KEY, STATUS_NORMAL.as_bytes().to_vec())
            .await
        {
            tracing::warn!(error = %e, "cannot record NORMAL status; retrying");
            continue;
        }
        membership.set_own_status(STATUS_NORMAL);
        tracing::info!(
            ranges = transfers.len(),
            documents = total,
            seconds = started.elapsed().as_secs_f64(),
            "joined: now NORMAL"
        );
        break;
    }
}
