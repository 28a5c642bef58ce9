//! Streaming token ranges between nodes when the ring changes (join, decommission,
//! removal): which ranges each node gains, where to read them, and moving them in pages.
//!
//! Invariants kept here:
//! - a plan covers exactly the keys whose replica set gains a node, per replication factor
//!   (collections with different N move differently);
//! - entries are merged at the receiver, never overwritten, so streaming the same data
//!   twice, or racing it with live writes, keeps every version once;
//! - a transfer is done only when every target acknowledged every page durably.

use std::time::Duration;

use bytes::Bytes;
use ringdb_proto::v1::{FetchRangeRequest, RangeEntry, ReplicaWriteBatchRequest};

use super::schema::Filter;
use super::Membership;
use crate::ring::{Ring, Token};
use crate::storage::{Durability, Storage};
use crate::transport::Transport;
use crate::version::SiblingSet;

/// Documents per streamed page.
const PAGE: u32 = 500;

/// How long one page may take before the transfer is retried.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One token range (inclusive, no wrap-around) of the collections with one N, that
/// `targets` must receive; `sources` hold it now, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// First token of the range.
    pub first: Token,
    /// Last token of the range.
    pub last: Token,
    /// Replication factor of the collections moved.
    pub n: usize,
    /// The collections moved.
    pub filter: Filter,
    /// Replicas in the old ring, those leaving the range first.
    pub sources: Vec<String>,
    /// Replicas in the new ring that were not replicas in the old one.
    pub targets: Vec<String>,
}

/// What moves when the ring goes from `old` to `new`: for each group of collections with
/// one N, every range whose replica set gains nodes.
pub fn plan(old: &Ring, new: &Ring, groups: &[(usize, Filter)]) -> Vec<Transfer> {
    let mut bounds: Vec<Token> = old.tokens().chain(new.tokens()).map(|(t, _)| t).collect();
    bounds.sort_unstable();
    bounds.dedup();
    if bounds.is_empty() || old.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (n, filter) in groups {
        for (i, &tok) in bounds.iter().enumerate() {
            // Every token in (prev, tok] has the same successor in both rings, so the same
            // replicas as `tok` itself.
            let prev = bounds[(i + bounds.len() - 1) % bounds.len()];
            let old_list = old.preference_list(tok, *n);
            let new_list = new.preference_list(tok, *n);
            let targets: Vec<String> = new_list
                .iter()
                .filter(|x| !old_list.contains(x))
                .map(|x| x.to_string())
                .collect();
            if targets.is_empty() {
                continue;
            }
            let mut sources: Vec<String> = old_list.iter().map(|x| x.to_string()).collect();
            sources.sort_by_key(|s| new_list.contains(&s.as_str()));
            let first = prev.wrapping_add(1);
            let mut push = |first, last| {
                out.push(Transfer {
                    first,
                    last,
                    n: *n,
                    filter: filter.clone(),
                    sources: sources.clone(),
                    targets: targets.clone(),
                })
            };
            if bounds.len() == 1 || first > tok {
                push(first, Token::MAX);
                push(Token::MIN, tok);
            } else {
                push(first, tok);
            }
        }
    }
    out
}

/// The parts of a node that streaming uses.
pub struct Streamer<'a> {
    /// Whom to reach and whether they are up.
    pub membership: &'a Membership,
    /// This node's replica storage.
    pub storage: &'a Storage,
    /// How to reach the others.
    pub transport: &'a dyn Transport,
}

impl Streamer<'_> {
    /// Move one transfer from `source` to `targets` (either may be this node). Returns the
    /// documents moved.
    pub async fn run(&self, t: &Transfer, source: &str, targets: &[String]) -> Result<u64, String> {
        let me = self.membership.node_id();
        let mut after = Bytes::new();
        let mut moved = 0u64;
        loop {
            let (entries, next) = if source == me {
                self.local_page(t, after.clone()).await?
            } else {
                let addr = self
                    .membership
                    .address(source)
                    .ok_or_else(|| format!("{source}: address unknown"))?;
                let req = FetchRangeRequest {
                    first: t.first,
                    last: t.last,
                    after: after.clone(),
                    limit: PAGE,
                    only_collections: t.filter.only.clone(),
                    except_collections: t.filter.except.clone(),
                };
                let page =
                    tokio::time::timeout(PAGE_TIMEOUT, self.transport.fetch_range(&addr, req))
                        .await
                        .map_err(|_| format!("{source}: no answer"))?
                        .map_err(|e| format!("{source}: {e}"))?;
                (page.entries, page.next_after)
            };
            if !entries.is_empty() {
                moved += entries.len() as u64;
                self.deliver(targets, entries).await?;
            }
            if next.is_empty() {
                return Ok(moved);
            }
            after = next;
        }
    }

    async fn local_page(
        &self,
        t: &Transfer,
        after: Bytes,
    ) -> Result<(Vec<RangeEntry>, Bytes), String> {
        let after = (!after.is_empty()).then(|| after.to_vec());
        let rows = self
            .storage
            .scan_tokens(t.first, t.last, after, PAGE as usize)
            .await
            .map_err(|e| e.to_string())?;
        let next = if rows.len() == PAGE as usize {
            rows.last()
                .map(|e| Bytes::from(e.storage_key.clone()))
                .unwrap_or_default()
        } else {
            Bytes::new()
        };
        let entries = rows
            .into_iter()
            .filter(|e| t.filter.admits(&e.collection))
            .map(|e| RangeEntry {
                collection: e.collection,
                key: e.key,
                siblings: e.siblings,
            })
            .collect();
        Ok((entries, next))
    }

    /// Merge a page into every target, durably.
    pub async fn deliver(
        &self,
        targets: &[String],
        entries: Vec<RangeEntry>,
    ) -> Result<(), String> {
        let me = self.membership.node_id();
        let sends = targets.iter().map(|target| {
            let entries = entries.clone();
            async move {
                if target == me {
                    for e in entries {
                        let set = SiblingSet::decode(&e.siblings).map_err(|e| e.to_string())?;
                        self.storage
                            .merge(&e.collection, &e.key, set, Durability::Memory)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    return self.storage.sync().await.map_err(|e| e.to_string());
                }
                let addr = self
                    .membership
                    .address(target)
                    .ok_or_else(|| format!("{target}: address unknown"))?;
                let req = ReplicaWriteBatchRequest {
                    entries,
                    durability: ringdb_proto::v1::Durability::Durable as i32,
                    hint_for: String::new(),
                };
                tokio::time::timeout(PAGE_TIMEOUT, self.transport.replica_write_batch(&addr, req))
                    .await
                    .map_err(|_| format!("{target}: no answer"))?
                    .map_err(|e| format!("{target}: {e}"))
            }
        });
        futures::future::try_join_all(sends).await.map(|_| ())
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

    fn all(n: usize) -> Vec<(usize, Filter)> {
        vec![(n, Filter::default())]
    }

    /// Every key whose replica set gains nodes is covered exactly once, by a transfer naming
    /// exactly the gained nodes and sources that hold it.
    fn check(old: &Ring, new: &Ring, n: usize) {
        let plan = plan(old, new, &all(n));
        for k in 0..5000 {
            let t = crate::ring::token_for("c", &k.to_string());
            let before = old.preference_list(t, n);
            let after = new.preference_list(t, n);
            let gained: Vec<&str> = after
                .iter()
                .filter(|x| !before.contains(x))
                .copied()
                .collect();
            let covering: Vec<&Transfer> = plan
                .iter()
                .filter(|x| x.first <= t && t <= x.last)
                .collect();
            if gained.is_empty() {
                assert!(covering.is_empty(), "key {k}");
                continue;
            }
            assert_eq!(covering.len(), 1, "key {k}");
            assert_eq!(covering[0].targets, gained, "key {k}");
            let mut sources = covering[0].sources.clone();
            sources.sort();
            let mut holders: Vec<String> = before.iter().map(|s| s.to_string()).collect();
            holders.sort();
            assert_eq!(sources, holders, "key {k}");
        }
    }

    #[test]
    fn plans_cover_exactly_the_keys_that_move_on_join_leave_and_removal() {
        let members = grow(&["a", "b", "c", "d", "e"]);
        let four = Ring::new(members[..4].to_vec());
        let five = Ring::new(members.clone());
        let without_b = Ring::new(
            members[..4]
                .iter()
                .filter(|(id, _)| id != "b")
                .cloned()
                .collect::<Vec<_>>(),
        );
        for n in [1, 2, 3] {
            check(&four, &five, n); // join
            check(&five, &four, n); // leave
            check(&four, &without_b, n); // removal
        }
    }

    #[test]
    fn leaving_sources_come_first() {
        let members = grow(&["a", "b", "c", "d"]);
        let old = Ring::new(members.clone());
        let new = Ring::new(members[..3].to_vec());
        for t in plan(&old, &new, &all(2)) {
            assert_eq!(t.sources[0], "d", "{t:?}");
        }
    }
}
