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

use bytes::Bytes;
use ringdb_proto::v1::FetchRangeRequest;

use super::{Membership, STATUS_NORMAL};
use crate::ring::{Ring, Token};
use crate::storage::{Durability, Storage};
use crate::transport::Transport;
use crate::version::SiblingSet;

/// Metadata key holding this node's status across restarts.
pub const STATUS_META_KEY: &str = "status";

/// Documents per streamed page.
const PAGE: u32 = 500;

/// The token ranges (inclusive, no wrap-around) this node will replicate in `new`, each
/// with the nodes that replicate it in `old`, best source first.
pub fn ranges_to_fetch(
    me: &str,
    old: &Ring,
    new: &Ring,
    n: usize,
) -> Vec<(Token, Token, Vec<String>)> {
    let tokens: Vec<Token> = new.tokens().map(|(t, _)| t).collect();
    let mut out = Vec::new();
    for (i, &tok) in tokens.iter().enumerate() {
        let prev = tokens[(i + tokens.len() - 1) % tokens.len()];
        if !new.preference_list(tok, n).contains(&me) {
            continue;
        }
        // Nodes that will stop replicating the range are the best sources: they hold it and
        // are about to be relieved of it.
        let new_list = new.preference_list(tok, n);
        let mut sources: Vec<String> = old
            .preference_list(tok, n)
            .into_iter()
            .map(String::from)
            .collect();
        sources.sort_by_key(|s| new_list.contains(&s.as_str()));
        let first = prev.wrapping_add(1);
        if tokens.len() == 1 || first > tok {
            // Wraps past the end of the token space: two pieces.
            out.push((first, Token::MAX, sources.clone()));
            out.push((Token::MIN, tok, sources));
        } else {
            out.push((first, tok, sources));
        }
    }
    out
}

/// Stream one range from the first source that serves it completely. Returns documents merged.
async fn fetch(
    membership: &Membership,
    storage: &Storage,
    transport: &dyn Transport,
    (first, last, sources): &(Token, Token, Vec<String>),
) -> Result<u64, String> {
    let mut last_error = String::from("no live source");
    for source in sources.iter().filter(|s| membership.is_up(s)) {
        let Some(addr) = membership.address(source) else {
            continue;
        };
        let mut after = Bytes::new();
        let mut merged = 0u64;
        let result: Result<(), String> = async {
            loop {
                let req = FetchRangeRequest {
                    first: *first,
                    last: *last,
                    after: after.clone(),
                    limit: PAGE,
                };
                let page = tokio::time::timeout(
                    Duration::from_secs(30),
                    transport.fetch_range(&addr, req),
                )
                .await
                .map_err(|_| format!("{source}: no answer"))?
                .map_err(|e| format!("{source}: {e}"))?;
                for e in page.entries {
                    let set = SiblingSet::decode(&e.siblings).map_err(|e| e.to_string())?;
                    storage
                        .merge(&e.collection, &e.key, set, Durability::Memory)
                        .await
                        .map_err(|e| e.to_string())?;
                    merged += 1;
                }
                if page.next_after.is_empty() {
                    return Ok(());
                }
                after = page.next_after;
            }
        }
        .await;
        match result {
            Ok(()) => return Ok(merged),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Finish joining: wait for the JOINING state to spread, stream every range, go NORMAL.
/// Retries until it succeeds; run as a background task.
pub async fn run(
    membership: Arc<Membership>,
    storage: Storage,
    transport: Arc<dyn Transport>,
    replication_factor: usize,
) {
    let settle = membership.config().gossip_interval * 3 + Duration::from_millis(500);
    tracing::info!(?settle, "joining: waiting for the JOINING state to spread");
    loop {
        tokio::time::sleep(settle).await;
        let old = membership.ring();
        let Some(new) = membership.pending_ring() else {
            break;
        };
        let ranges = ranges_to_fetch(membership.node_id(), &old, &new, replication_factor);
        tracing::info!(
            ranges = ranges.len(),
            "joining: streaming the ranges this node will replicate"
        );
        let started = std::time::Instant::now();
        let mut total = 0u64;
        let mut failed = None;
        for r in &ranges {
            match fetch(&membership, &storage, transport.as_ref(), r).await {
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
        if let Err(e) = storage.sync().await {
            tracing::warn!(error = %e, "cannot flush streamed data; retrying");
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
            ranges = ranges.len(),
            documents = total,
            seconds = started.elapsed().as_secs_f64(),
            "joined: now NORMAL"
        );
        break;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grow(names: &[&str]) -> Vec<(String, Vec<Token>)> {
        let mut members: Vec<(String, Vec<Token>)> = Vec::new();
        for n in names {
            let toks = Ring::new(members.clone()).allocate_tokens(n, 16);
            members.push((n.to_string(), toks));
        }
        members
    }

    #[test]
    fn ranges_cover_exactly_the_keys_the_new_node_will_replicate() {
        let members = grow(&["a", "b", "c", "d"]);
        let old = Ring::new(members[..3].to_vec());
        let new = Ring::new(members.clone());
        let ranges = ranges_to_fetch("d", &old, &new, 2);
        for k in 0..5000 {
            let t = crate::ring::token_for("c", &k.to_string());
            let replicated = new.preference_list(t, 2).contains(&"d");
            let covering: Vec<_> = ranges
                .iter()
                .filter(|(f, l, _)| *f <= t && t <= *l)
                .collect();
            assert_eq!(covering.len(), usize::from(replicated), "key {k}");
            if let Some((_, _, sources)) = covering.first() {
                let holders = old.preference_list(t, 2);
                assert!(
                    sources.iter().all(|s| holders.contains(&s.as_str())),
                    "sources hold the range"
                );
                assert!(!sources.is_empty());
            }
        }
    }
}
