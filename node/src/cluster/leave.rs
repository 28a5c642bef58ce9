//! Leaving the ring: decommission (a live node hands its ranges to their new owners, then
//! leaves) and removal (another node re-replicates a dead node's ranges from the surviving
//! replicas, then takes it out).
//!
//! Invariants kept here:
//! - one topology change at a time: neither starts while any member is JOINING or LEAVING;
//! - the ring never shrinks below the largest N of any collection;
//! - a leaving member stays in the ring, serving reads and counting for levels, until every
//!   range it replicated is on its new owners; meanwhile writes go to the new owners too
//!   (see `Membership::pending_ring`), so nothing acknowledged during the move is lost;
//! - a decommissioning node hands off the hints it holds before it goes.

use std::sync::Arc;
use std::time::Duration;

use super::join::STATUS_META_KEY;
use super::schema::Schema;
use super::stream::{plan, Streamer, Transfer};
use super::{Membership, STATUS_LEAVING, STATUS_LEFT, STATUS_NORMAL};
use crate::ring::Ring;
use crate::storage::Storage;
use crate::transport::Transport;

/// Whatever a leaving node holds for others besides its replicas (hints), handed to nodes
/// that stay.
#[async_trait::async_trait]
pub trait HandOff: Send + Sync + 'static {
    /// Deliver everything held to its target, or else to the key's live replicas in `ring`.
    async fn hand_off(
        &self,
        transport: &dyn Transport,
        ring: &Ring,
        schema: &Schema,
    ) -> Result<(), String>;
}

/// Why a topology change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The change makes no sense for that node now.
    #[error("{0}")]
    Precondition(String),
    /// No such member.
    #[error("{0}")]
    Unknown(String),
}

fn settle(membership: &Membership) -> Duration {
    membership.config().gossip_interval * 3 + Duration::from_millis(500)
}

/// Refuse when another change is under way or too few members would stay.
fn check_room(membership: &Membership, leaving: &str) -> Result<(), Refusal> {
    if let Some((other, status)) = membership.topology_change().filter(|(id, _)| id != leaving) {
        return Err(Refusal::Precondition(format!(
            "another topology change is under way: {other} is {status}; wait until it is NORMAL or LEFT (see STATUS) and try again"
        )));
    }
    let staying = membership.staying_members().saturating_sub(usize::from(
        membership.status_of(leaving).as_deref() == Some(STATUS_NORMAL),
    ));
    let needed = membership.schema().max_replication();
    if staying < needed {
        return Err(Refusal::Precondition(format!(
            "{leaving} cannot leave: {staying} nodes would remain but a collection has replication = {needed}"
        )));
    }
    Ok(())
}

/// Begin decommissioning this node: announce LEAVING (durably). The caller then runs
/// [`decommission`].
pub async fn start_decommission(
    membership: &Membership,
    storage: &Storage,
) -> Result<String, Refusal> {
    let me = membership.node_id().to_string();
    match membership.own_status().as_str() {
        STATUS_LEFT => return Err(Refusal::Precondition(format!("{me} has already left"))),
        STATUS_LEAVING => return Ok(format!("{me} is already LEAVING")),
        STATUS_NORMAL => {}
        other => {
            return Err(Refusal::Precondition(format!(
                "{me} is {other}; only a NORMAL node can be decommissioned"
            )))
        }
    }
    check_room(membership, &me)?;
    storage
        .put_meta(STATUS_META_KEY, STATUS_LEAVING.as_bytes().to_vec())
        .await
        .map_err(|e| Refusal::Precondition(format!("cannot record LEAVING: {e}")))?;
    membership.set_own_status(STATUS_LEAVING);
    tracing::info!("decommissioning: now LEAVING");
    Ok(format!(
        "{me} is LEAVING: it streams its data to the new owners, then becomes LEFT (watch STATUS)"
    ))
}

/// Finish decommissioning: stream every range this node replicates to its new owners, hand
/// off hints, become LEFT. Retries until done; run as a background task.
pub async fn decommission(
    membership: Arc<Membership>,
    storage: Storage,
    transport: Arc<dyn Transport>,
    hints: Arc<dyn HandOff>,
) {
    let me = membership.node_id().to_string();
    loop {
        tokio::time::sleep(settle(&membership)).await;
        let old = membership.ring();
        let Some(new) = membership.pending_ring() else {
            tracing::error!("decommissioning but no pending ring; retrying");
            continue;
        };
        let transfers: Vec<Transfer> = plan(&old, &new, &membership.schema().groups())
            .into_iter()
            .filter(|t| t.sources.contains(&me))
            .collect();
        let streamer = Streamer {
            membership: &membership,
            storage: &storage,
            transport: transport.as_ref(),
        };
        let started = std::time::Instant::now();
        let mut moved = 0u64;
        let mut failed = None;
        for t in &transfers {
            match streamer.run(t, &me, &t.targets).await {
                Ok(n) => moved += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "decommission streaming failed; retrying");
            continue;
        }
        if let Err(e) = hints
            .hand_off(transport.as_ref(), &new, membership.schema())
            .await
        {
            tracing::warn!(error = %e, "cannot hand off hints; retrying");
            continue;
        }
        if let Err(e) = storage
            .put_meta(STATUS_META_KEY, STATUS_LEFT.as_bytes().to_vec())
            .await
        {
            tracing::warn!(error = %e, "cannot record LEFT; retrying");
            continue;
        }
        membership.set_own_status(STATUS_LEFT);
        tracing::info!(
            ranges = transfers.len(),
            documents = moved,
            seconds = started.elapsed().as_secs_f64(),
            "decommissioned: now LEFT; the process can be stopped"
        );
        return;
    }
}

/// Begin removing dead member `id`, coordinated by this node. The caller then runs
/// [`remove`].
pub fn start_removal(membership: &Membership, id: &str) -> Result<String, Refusal> {
    if id == membership.node_id() {
        return Err(Refusal::Precondition(format!(
            "{id} is the node asked; decommission it instead, or ask another node to remove it"
        )));
    }
    let status = membership
        .status_of(id)
        .ok_or_else(|| Refusal::Unknown(format!("no member {id} (see STATUS)")))?;
    if status == STATUS_LEFT {
        return Err(Refusal::Precondition(format!("{id} has already left")));
    }
    if membership.is_up(id) {
        return Err(Refusal::Precondition(format!(
            "{id} is up; removenode is for dead nodes, decommission a live one"
        )));
    }
    check_room(membership, id)?;
    membership.mark_removing(id);
    membership.note_change();
    tracing::info!(node = id, "removing a dead member: now LEAVING");
    Ok(format!(
        "removing {id}: its ranges are re-replicated from the surviving replicas, then it is LEFT (watch STATUS)"
    ))
}

/// Finish removing `id`: copy each range it replicated from a surviving replica to the new
/// owners, then mark it LEFT. Gives up if `id` comes back. Run as a background task.
pub async fn remove(
    membership: Arc<Membership>,
    storage: Storage,
    transport: Arc<dyn Transport>,
    id: String,
) {
    loop {
        tokio::time::sleep(settle(&membership)).await;
        if membership.status_of(&id).as_deref() != Some(STATUS_LEAVING) {
            tracing::warn!(node = %id, "removal abandoned: the member's state changed (it came back?)");
            return;
        }
        let old = membership.ring();
        let Some(new) = membership.pending_ring() else {
            continue;
        };
        let transfers = plan(&old, &new, &membership.schema().groups());
        let streamer = Streamer {
            membership: &membership,
            storage: &storage,
            transport: transport.as_ref(),
        };
        let started = std::time::Instant::now();
        let mut moved = 0u64;
        let mut failed = None;
        // Every surviving replica streams its copy, not just one: the dead node may have
        // held the only other copy of a write a survivor missed, so one source could
        // leave the new replica (and the replica count) short. Merging is idempotent.
        for t in &transfers {
            let live: Vec<&String> = t
                .sources
                .iter()
                .filter(|s| **s != id && membership.is_up(s))
                .collect();
            if live.is_empty() {
                failed = Some(format!(
                    "no live surviving replica for range ({}, {}]",
                    t.first, t.last
                ));
                break;
            }
            for source in live {
                match streamer.run(t, source, &t.targets).await {
                    Ok(n) => moved += n,
                    Err(e) => failed = Some(e),
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(e) = failed {
            tracing::warn!(node = %id, error = %e, "removal streaming failed; retrying");
            continue;
        }
        membership.mark_left(&id);
        membership.note_change();
        tracing::info!(
            node = %id,
            ranges = transfers.len(),
            documents = moved,
            seconds = started.elapsed().as_secs_f64(),
            "removed: now LEFT"
        );
        return;
    }
}
