//! Gossip: every round this node bumps its heartbeat and swaps views with one random live
//! peer (now and then also an unreachable one, and a seed), Cassandra-style:
//! SYN (digests) → ACK (states the sender lacks, ids it has newer) → ACK2 (those states).
//! Collection and index definitions ride along when the two nodes' schema digests differ.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use ringdb_proto::v1::{
    CollectionDef, CollectionList, GossipAck, GossipAck2, GossipSyn, IndexDef, MemberList,
    MemberState, TokenDef,
};

use super::{indexes, Membership, STATUS_LEFT};
use crate::storage::Storage;
use crate::transport::Transport;

/// Metadata key under which the last known members are kept across restarts.
pub const MEMBERS_META_KEY: &str = "members";
/// Metadata key under which the known collections (and index definitions) are kept
/// across restarts.
pub const COLLECTIONS_META_KEY: &str = "collections";

/// Collections and index definitions remembered from the last run.
pub async fn load_schema(storage: &Storage) -> CollectionList {
    match storage.get_meta(COLLECTIONS_META_KEY).await {
        Ok(Some(bytes)) => CollectionList::decode(bytes.as_slice()).unwrap_or_default(),
        _ => CollectionList::default(),
    }
}

/// Members remembered from the last run.
pub async fn load_members(storage: &Storage) -> Vec<MemberState> {
    match storage.get_meta(MEMBERS_META_KEY).await {
        Ok(Some(bytes)) => MemberList::decode(bytes.as_slice())
            .map(|l| l.members)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Remember the members so a restarted node knows the ring before anyone answers.
pub async fn persist(membership: &Membership, storage: &Storage) {
    let members: Vec<MemberState> = membership.known_states().into_iter().skip(1).collect();
    if let Err(e) = storage
        .put_meta(MEMBERS_META_KEY, MemberList { members }.encode_to_vec())
        .await
    {
        tracing::warn!(error = %e, "could not persist membership");
    }
    let schema = CollectionList {
        collections: membership.schema().all(),
        indexes: membership.schema().indexes().all(),
        tokens: membership.schema().tokens().all(),
    };
    if let Err(e) = storage
        .put_meta(COLLECTIONS_META_KEY, schema.encode_to_vec())
        .await
    {
        tracing::warn!(error = %e, "could not persist collections");
    }
}

/// First leg, at the receiver: answer a peer's digests.
pub fn answer_syn(membership: &Membership, syn: &GossipSyn) -> GossipAck {
    let (mut states, wanted) = membership.reconcile(&syn.digests);
    // A removed node gossiping again learns its verdict, however new its own state is.
    if membership.status_of(&syn.from).as_deref() == Some(STATUS_LEFT)
        && !states.iter().any(|s| s.id == syn.from)
    {
        states.extend(membership.states_of(std::slice::from_ref(&syn.from)));
    }
    // A founder still forming always says so: a joiner reads in this answer whether the
    // founder was still forming once it knew the joiner's tokens (see `found`).
    if membership.is_forming() && !states.iter().any(|s| s.id == membership.node_id()) {
        states.push(membership.own_state());
    }
    let schema_differs = syn.schema_digest != membership.schema().digest();
    let (collections, indexes, tokens) = schema_if(membership, schema_differs);
    GossipAck {
        states,
        wanted,
        collections,
        schema_differs,
        indexes,
        tokens,
    }
}

/// What one node's definitions travel as: collections, indexes and token records.
type Definitions = (Vec<CollectionDef>, Vec<IndexDef>, Vec<TokenDef>);

/// This node's collection, index and token definitions when the peer's schema differs.
fn schema_if(membership: &Membership, differs: bool) -> Definitions {
    if differs {
        (
            membership.schema().all(),
            membership.schema().indexes().all(),
            membership.schema().tokens().all(),
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    }
}

/// Fold in a peer's collection, index and token definitions; returns whether anything
/// changed.
fn merge_schema(
    membership: &Membership,
    collections: &[CollectionDef],
    indexes: &[IndexDef],
    tokens: &[TokenDef],
) -> bool {
    let collections = membership.schema().merge(collections);
    let tokens = membership.schema().tokens().merge(tokens);
    membership.schema().indexes().merge(indexes) | collections | tokens
}

/// Last leg, at the receiver: take the states we asked for. Returns whether to persist.
pub fn take_ack2(membership: &Membership, ack2: &GossipAck2) -> bool {
    let schema = merge_schema(membership, &ack2.collections, &ack2.indexes, &ack2.tokens);
    membership.merge(&ack2.states) | schema
}

/// One gossip round with the node at `address`; `None` if it did not answer.
pub async fn round(
    membership: &Membership,
    transport: &dyn Transport,
    address: &str,
    timeout: Duration,
) -> Option<bool> {
    round_answered(membership, transport, address, timeout)
        .await
        .map(|(changed, _)| changed)
}

/// One gossip round with the node at `address`, and what it answered: `None` if it did
/// not answer (or did not take the states it asked for).
pub async fn round_answered(
    membership: &Membership,
    transport: &dyn Transport,
    address: &str,
    timeout: Duration,
) -> Option<(bool, GossipAck)> {
    let syn = GossipSyn {
        from: membership.node_id().to_string(),
        digests: membership.digests(),
        schema_digest: membership.schema().digest(),
    };
    let ack = match tokio::time::timeout(timeout, transport.gossip(address, syn)).await {
        Ok(Ok(ack)) => ack,
        Ok(Err(e)) => {
            tracing::debug!(peer = address, error = %e, "gossip failed");
            return None;
        }
        Err(_) => return None,
    };
    let changed = membership.merge(&ack.states)
        | merge_schema(membership, &ack.collections, &ack.indexes, &ack.tokens);
    if !ack.wanted.is_empty() || ack.schema_differs {
        let (collections, indexes, tokens) = schema_if(membership, ack.schema_differs);
        let ack2 = GossipAck2 {
            states: membership.states_of(&ack.wanted),
            collections,
            indexes,
            tokens,
        };
        match tokio::time::timeout(timeout, transport.gossip_finish(address, ack2)).await {
            Ok(Ok(_)) => {}
            _ => return None,
        }
    }
    Some((changed, ack))
}

/// One round with every live peer at once, so a change made here (or one made elsewhere)
/// is known cluster-wide before an operator's request is answered: schema agreement, as
/// Cassandra waits for it. Returns how many peers answered.
pub async fn round_with_all(
    membership: &Membership,
    transport: &dyn Transport,
    timeout: Duration,
) -> usize {
    let live: Vec<String> = membership
        .peers()
        .into_iter()
        .filter(|(_, _, up)| *up)
        .map(|(_, a, _)| a)
        .collect();
    let rounds = live
        .iter()
        .map(|a| round(membership, transport, a, timeout));
    let results = futures::future::join_all(rounds).await;
    if results.contains(&Some(true)) {
        membership.note_change(); // the gossip loop persists what was learned
    }
    results.iter().filter(|r| r.is_some()).count()
}

/// Whom to gossip with this round: one random live peer; an unreachable one with
/// probability unreachable / (live + 1); a seed when nobody is live, or by chance when the
/// live peer chosen is not a seed (so partitioned groups find each other again).
fn choose_targets(membership: &Membership, seeds: &[String], rng: &mut impl Rng) -> Vec<String> {
    let peers = membership.peers();
    let live: Vec<&String> = peers
        .iter()
        .filter(|(_, _, up)| *up)
        .map(|(_, a, _)| a)
        .collect();
    let down: Vec<&String> = peers
        .iter()
        .filter(|(_, _, up)| !*up)
        .map(|(_, a, _)| a)
        .collect();
    let seeds: Vec<&String> = seeds
        .iter()
        .filter(|s| s.as_str() != membership.address_of_self())
        .collect();
    let mut out: Vec<String> = Vec::new();
    if let Some(a) = live.choose(rng) {
        out.push((*a).clone());
    }
    if !down.is_empty() && rng.gen_bool((down.len() as f64 / (live.len() as f64 + 1.0)).min(1.0)) {
        if let Some(a) = down.choose(rng) {
            out.push((*a).clone());
        }
    }
    let talked_to_seed = out.iter().any(|a| seeds.contains(&a));
    if !talked_to_seed && (live.is_empty() || rng.gen_bool(1.0 / (live.len() as f64 + 1.0))) {
        if let Some(s) = seeds.choose(rng) {
            out.push((*s).clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Gossip forever; run as a background task.
pub async fn run(
    membership: Arc<Membership>,
    transport: Arc<dyn Transport>,
    storage: Storage,
    seeds: Vec<String>,
) {
    let interval = membership.config().gossip_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = rand::rngs::StdRng::from_entropy();
    loop {
        ticker.tick().await;
        let stats = storage.stats();
        membership.set_own_load(
            stats.keys.load(std::sync::atomic::Ordering::Relaxed),
            stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        );
        membership.set_own_indexes(indexes::report(&storage.indexes().states()));
        membership.beat();
        let timeout = interval.max(Duration::from_millis(300));
        let targets = choose_targets(&membership, &seeds, &mut rng);
        let rounds = targets
            .iter()
            .map(|addr| round(&membership, transport.as_ref(), addr, timeout));
        let changed = futures::future::join_all(rounds)
            .await
            .into_iter()
            .any(|c| c == Some(true));
        if changed | membership.take_change() {
            persist(&membership, &storage).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MembershipConfig;

    fn state(id: &str) -> MemberState {
        MemberState {
            id: id.into(),
            address: format!("{id}:1"),
            incarnation: 1,
            tokens: vec![1],
            ..Default::default()
        }
    }

    #[test]
    fn a_restarted_node_that_knows_only_down_peers_still_gossips_with_them() {
        // Remembered members are down until they heartbeat; no seed but ourselves.
        let m = Membership::new(
            state("a"),
            vec![state("b"), state("c")],
            MembershipConfig::default(),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let t = choose_targets(&m, &["a:1".to_string()], &mut rng);
            assert_eq!(t.len(), 1, "{t:?}");
            assert!(t[0] == "b:1" || t[0] == "c:1");
        }
    }

    #[test]
    fn an_isolated_new_node_gossips_with_a_seed() {
        let m = Membership::new(state("a"), vec![], MembershipConfig::default());
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(choose_targets(&m, &["s:1".to_string()], &mut rng), ["s:1"]);
    }
}
