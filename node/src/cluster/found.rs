//! Founding: how a brand-new node (no tokens yet) founds a new cluster or takes its share
//! of an existing one. It already serves gossip meanwhile, so nodes started at once (as a
//! deploy script, compose or an orchestrator starts them) find each other in one round.
//!
//! The protocol, every round (`FoundingConfig::pace`) a gossip round with every seed and
//! every member known so far:
//! - a ring exists (some member has tokens): take a fair share of it and join. While the
//!   founder is still forming, joiners take their shares one at a time, lowest id first, so
//!   the shares stay even;
//! - no ring yet: once every seed answered (or `grace` passed), the lowest id among this
//!   node and the token-less members that are up founds the cluster; with no seed
//!   answering within `patience` a node founds alone.
//!
//! Invariants kept here:
//! - nobody takes client requests while a founder is forming (`Membership::readiness`), so
//!   until the founder stops forming no data exists anywhere;
//! - a joiner skips streaming only when the founder, answering it, was still forming while
//!   it already knew the joiner's tokens. Every node that later sees the founder done
//!   forming learned that from gossip carrying the founder's whole view, which holds the
//!   joiner: so no write can be coordinated by a node that does not send it to the joiner;
//! - tokens and status are on disk before any peer can learn them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringdb_proto::v1::MemberState;

use super::gossip::{round, round_answered};
use super::{join, Membership, STATUS_JOINING, STATUS_LEFT, STATUS_NORMAL};
use crate::ring::{Ring, Token};
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;

/// Metadata key holding this node's tokens once it has them.
pub const TOKENS_META_KEY: &str = "tokens";

/// How long a new node waits for others while founding or joining.
#[derive(Debug, Clone)]
pub struct FoundingConfig {
    /// Tokens this node takes.
    pub vnodes: usize,
    /// How often it gossips with every seed meanwhile.
    pub pace: Duration,
    /// How long it waits for every seed to answer before the lowest id among those that
    /// did founds; also how long a founder waits for silent seeds before it stops forming.
    pub grace: Duration,
    /// How long it waits for any seed before it founds a cluster alone, or for a member
    /// with a lower id to take its share first.
    pub patience: Duration,
    /// How long a founder forms at most, whoever has not taken tokens by then.
    pub forming_limit: Duration,
}

impl FoundingConfig {
    /// The settings of a node taking `vnodes` tokens.
    pub fn new(vnodes: usize) -> Self {
        FoundingConfig {
            vnodes,
            pace: Duration::from_millis(100),
            grace: Duration::from_secs(1),
            patience: Duration::from_secs(10),
            forming_limit: Duration::from_secs(5),
        }
    }
}

/// How a new node came by its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// It founded the cluster (and is done forming it).
    Founded,
    /// It joined a forming cluster: nothing to stream, it is NORMAL.
    Joined,
    /// It joined a cluster that may hold data: it is JOINING and must stream first.
    MustStream,
}

/// Found the cluster or take a share of it; returns once this node has tokens (and, as a
/// founder, is done forming).
pub async fn run(
    membership: Arc<Membership>,
    storage: Storage,
    transport: Arc<dyn Transport>,
    seeds: Vec<String>,
    config: FoundingConfig,
) -> Taken {
    let seeds: Vec<String> = seeds
        .into_iter()
        .filter(|s| s.as_str() != membership.address_of_self())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let me = membership.node_id().to_string();
    let started = Instant::now();
    let mut heard: BTreeSet<String> = BTreeSet::new();
    let mut waiting_for: Option<String> = None;
    loop {
        gossip_everyone(&membership, transport.as_ref(), &seeds, &mut heard).await;
        let others = others(&membership);
        let elapsed = started.elapsed();
        if others.iter().any(|s| !s.tokens.is_empty()) {
            let forming = others.iter().any(|s| s.forming && membership.is_up(&s.id));
            // While the cluster forms, one share at a time and lowest id first, so shares
            // stay even; otherwise take one now (joining waits its turn before streaming).
            let before = others
                .iter()
                .filter(|s| s.id < me && membership.is_up(&s.id))
                .find(|s| s.tokens.is_empty() || s.status == STATUS_JOINING)
                .map(|s| s.id.clone());
            if forming && elapsed < config.patience {
                if let Some(id) = before {
                    if waiting_for.as_ref() != Some(&id) {
                        tracing::info!(member = %id, "founding: waiting for a lower id to take its share first");
                        waiting_for = Some(id);
                    }
                    tokio::time::sleep(config.pace).await;
                    continue;
                }
            }
            return join(&membership, &storage, transport.as_ref(), &others, &config).await;
        }
        // Wait for every seed a little, and for any seed longer: two nodes that cannot
        // reach each other yet must not both found a cluster of their own.
        let all_heard = seeds.iter().all(|s| heard.contains(s));
        let silent = heard.is_empty() && elapsed < config.patience;
        if !seeds.is_empty() && (silent || (!all_heard && elapsed < config.grace)) {
            tokio::time::sleep(config.pace).await;
            continue;
        }
        let lowest = others
            .iter()
            .filter(|s| membership.is_up(&s.id))
            .map(|s| s.id.as_str())
            .chain([me.as_str()])
            .min()
            .unwrap_or(me.as_str())
            .to_string();
        if lowest == me || elapsed >= config.patience {
            if heard.is_empty() && !seeds.is_empty() {
                tracing::warn!(?seeds, "no seed answered; founding a new cluster alone");
            }
            found(
                &membership,
                &storage,
                transport.as_ref(),
                &seeds,
                heard,
                &config,
            )
            .await;
            return Taken::Founded;
        }
        if waiting_for.as_ref() != Some(&lowest) {
            tracing::info!(founder = %lowest, "founding: the lowest id among the seeds founds the cluster");
            waiting_for = Some(lowest);
        }
        tokio::time::sleep(config.pace).await;
    }
}

/// Every member this node knows but itself, except those gone for good.
fn others(membership: &Membership) -> Vec<MemberState> {
    membership
        .known_states()
        .into_iter()
        .skip(1)
        .filter(|s| s.status != STATUS_LEFT)
        .collect()
}

/// One gossip round with every seed and every member known, at once; notes which seeds
/// answered.
async fn gossip_everyone(
    membership: &Membership,
    transport: &dyn Transport,
    seeds: &[String],
    heard: &mut BTreeSet<String>,
) {
    let mut targets: BTreeSet<String> = seeds.iter().cloned().collect();
    targets.extend(
        others(membership)
            .into_iter()
            .filter(|s| membership.is_up(&s.id))
            .map(|s| s.address),
    );
    targets.remove(membership.address_of_self());
    let targets: Vec<String> = targets.into_iter().collect();
    let answers = futures::future::join_all(
        targets
            .iter()
            .map(|a| round(membership, transport, a, Duration::from_millis(500))),
    )
    .await;
    for (address, answer) in targets.iter().zip(answers) {
        if answer.is_some() {
            heard.insert(address.clone());
        }
    }
}

/// The tokens and status this node saved when it took them (`None` before its first
/// start ends founding or joining).
pub async fn saved(storage: &Storage) -> Result<Option<(Vec<Token>, String)>, StorageError> {
    let Some(raw) = storage.get_meta(TOKENS_META_KEY).await? else {
        return Ok(None);
    };
    let tokens = raw
        .chunks_exact(8)
        .map(|c| i64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let status = storage
        .get_meta(join::STATUS_META_KEY)
        .await?
        .map(|s| String::from_utf8_lossy(&s).into_owned())
        .unwrap_or_else(|| STATUS_NORMAL.to_string());
    Ok(Some((tokens, status)))
}

/// Write tokens and status to disk, then take them.
async fn take(membership: &Membership, storage: &Storage, tokens: Vec<Token>, status: &str) {
    let raw: Vec<u8> = tokens.iter().flat_map(|t| t.to_be_bytes()).collect();
    // Without its tokens on disk a restarted node would take others: keep trying.
    loop {
        let saved = match storage
            .put_meta(join::STATUS_META_KEY, status.as_bytes().to_vec())
            .await
        {
            Ok(()) => storage.put_meta(TOKENS_META_KEY, raw.clone()).await,
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, "cannot save this node's tokens; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    membership.take_tokens(tokens, status);
}

/// Found the cluster: take tokens, form it until every member known has taken its share
/// (or the seeds stay silent past `grace`, or `forming_limit` passes), then serve.
async fn found(
    membership: &Membership,
    storage: &Storage,
    transport: &dyn Transport,
    seeds: &[String],
    mut heard: BTreeSet<String>,
    config: &FoundingConfig,
) {
    let tokens = Ring::default().allocate_tokens(membership.node_id(), config.vnodes);
    membership.set_forming(true);
    take(membership, storage, tokens, STATUS_NORMAL).await;
    let founded = Instant::now();
    tracing::info!("founded the cluster; forming it while the seeds take their shares");
    loop {
        gossip_everyone(membership, transport, seeds, &mut heard).await;
        let others: Vec<MemberState> = others(membership)
            .into_iter()
            .filter(|s| membership.is_up(&s.id))
            .collect();
        let all_in = others
            .iter()
            .all(|s| !s.tokens.is_empty() && s.status == STATUS_NORMAL);
        let seeds_heard =
            seeds.iter().all(|s| heard.contains(s)) || founded.elapsed() >= config.grace;
        let limit = founded.elapsed() >= config.forming_limit;
        if (all_in && seeds_heard) || limit {
            let waiting: Vec<&str> = others
                .iter()
                .filter(|s| s.tokens.is_empty() || s.status != STATUS_NORMAL)
                .map(|s| s.id.as_str())
                .collect();
            tracing::info!(
                members = others.len() + 1,
                ?waiting,
                took_ms = founded.elapsed().as_millis() as u64,
                "the cluster is formed"
            );
            membership.set_forming(false);
            // Tell everyone now rather than at the next gossip rounds: they serve once they
            // know.
            gossip_everyone(membership, transport, seeds, &mut heard).await;
            return;
        }
        tokio::time::sleep(config.pace).await;
    }
}

/// Take a fair share of the ring `others` make up and join: at once if a forming founder
/// confirms it knew this node's tokens while still forming, else by streaming.
async fn join(
    membership: &Membership,
    storage: &Storage,
    transport: &dyn Transport,
    others: &[MemberState],
    config: &FoundingConfig,
) -> Taken {
    let ring = Ring::new(
        others
            .iter()
            .filter(|s| !s.tokens.is_empty())
            .map(|s| (s.id.clone(), s.tokens.clone())),
    );
    let tokens = ring.allocate_tokens(membership.node_id(), config.vnodes);
    take(membership, storage, tokens, STATUS_JOINING).await;
    let founders: Vec<&MemberState> = others
        .iter()
        .filter(|s| s.forming && membership.is_up(&s.id))
        .collect();
    if founders.is_empty() {
        return Taken::MustStream;
    }
    let deadline = Instant::now() + config.grace;
    while Instant::now() < deadline {
        for founder in &founders {
            let Some((_, ack)) = round_answered(
                membership,
                transport,
                &founder.address,
                Duration::from_millis(500),
            )
            .await
            else {
                continue;
            };
            let knew_me = !ack.wanted.iter().any(|id| id == membership.node_id());
            match ack.states.iter().find(|s| s.id == founder.id) {
                Some(s) if s.forming && knew_me => {
                    if let Err(e) = storage
                        .put_meta(join::STATUS_META_KEY, STATUS_NORMAL.as_bytes().to_vec())
                        .await
                    {
                        tracing::warn!(error = %e, "cannot save NORMAL; joining by streaming");
                        return Taken::MustStream;
                    }
                    membership.set_own_status(STATUS_NORMAL);
                    membership.beat();
                    tracing::info!(founder = %founder.id, "joined the forming cluster: nothing to stream");
                    return Taken::Joined;
                }
                Some(s) if s.forming => {} // it takes this node's tokens now: ask again
                // Its state left out or not forming: the founder is done forming (a forming
                // founder always sends its state), so data may exist.
                _ => return Taken::MustStream,
            }
        }
        tokio::time::sleep(config.pace).await;
    }
    Taken::MustStream
}
