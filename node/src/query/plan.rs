//! The coverage plan: the token ranges of the ring, each with its replicas and the ones a
//! query asks, so that every document is read from as many of its replicas as the level
//! needs.
//!
//! Invariants kept here:
//! - the ranges tile the whole token space, in token order, without overlap; a document
//!   lies in exactly one, whose replicas are the nodes of the document's preference list
//!   (neighbouring ring ranges with the same replicas are merged into one);
//! - each range is asked of exactly `required` distinct live replicas: this node first when
//!   it is one (its copy is read without the network), then the others in preference order;
//! - a range with fewer live replicas than required fails the plan (`Unavailable`, naming
//!   the range and its replicas) before anything is read;
//! - a replica that failed is replaced, range by range, by a live replica not asked yet.

use std::collections::{BTreeMap, BTreeSet};

use crate::coordinator::Level;
use crate::error::{Error, Result};
use crate::ring::{Ring, Token};

/// One token range of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    /// First token in the range.
    pub first: Token,
    /// Last token in the range (inclusive; `first <= last`).
    pub last: Token,
    /// The range's replicas in preference order.
    pub replicas: Vec<String>,
    /// The replicas the query asks, `required` of them.
    pub asked: Vec<String>,
}

/// Every token range of the ring and whom a query asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Sorted by token.
    pub ranges: Vec<RangePlan>,
    /// Replicas asked per range.
    pub required: usize,
}

/// The ranges `[first, last]` between consecutive ring tokens (the wrapping one cut at the
/// end of the token space), each with the token whose owner is its first replica.
fn token_ranges(ring: &Ring) -> Vec<(Token, Token, Token)> {
    let mut tokens: Vec<Token> = ring.tokens().map(|(t, _)| t).collect();
    tokens.dedup();
    let (Some(&first), Some(&last)) = (tokens.first(), tokens.last()) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(tokens.len() + 1);
    out.push((Token::MIN, first, first));
    for w in tokens.windows(2) {
        out.push((w[0] + 1, w[1], w[1]));
    }
    if last < Token::MAX {
        out.push((last + 1, Token::MAX, first));
    }
    out
}

/// Whether two replica lists name the same nodes.
fn same_nodes(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The ring's token ranges with their replicas (nothing asked yet), neighbours with the same
/// replicas merged: what every plan over one ring and N starts from. It walks the whole ring,
/// so a node keeps it while the ring stays the same ([`RangeCache`]).
pub fn replica_ranges(ring: &Ring, n: usize) -> Vec<RangePlan> {
    let mut ranges: Vec<RangePlan> = Vec::new();
    for (first, last, owner) in token_ranges(ring) {
        let replicas: Vec<String> = ring
            .preference_list(owner, n)
            .into_iter()
            .map(String::from)
            .collect();
        // Neighbours with the same replicas (in whatever preference order) are one range:
        // fewer, larger scans. Any of a range's live replicas may answer for it.
        match ranges.last_mut() {
            Some(prev) if same_nodes(&prev.replicas, &replicas) => {
                prev.last = last;
            }
            _ => ranges.push(RangePlan {
                first,
                last,
                replicas,
                asked: Vec::new(),
            }),
        }
    }
    ranges
}

/// The last [`replica_ranges`] computed for each N, kept while the ring is the same one.
#[derive(Default)]
pub struct RangeCache {
    held: std::sync::Mutex<Vec<(std::sync::Arc<Ring>, usize, std::sync::Arc<Vec<RangePlan>>)>>,
}

impl RangeCache {
    /// The replica ranges of `ring` with `n` replicas per key.
    pub fn get(&self, ring: &std::sync::Arc<Ring>, n: usize) -> std::sync::Arc<Vec<RangePlan>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, r)) = held
            .iter()
            .find(|(g, m, _)| std::sync::Arc::ptr_eq(g, ring) && *m == n)
        {
            return r.clone();
        }
        let ranges = std::sync::Arc::new(replica_ranges(ring, n));
        // Entries of an older ring are of no more use.
        held.retain(|(g, _, _)| std::sync::Arc::ptr_eq(g, ring));
        held.push((ring.clone(), n, ranges.clone()));
        ranges
    }
}

impl Coverage {
    /// The plan for a query of `collection` at `level` over `ring` with `n` replicas per
    /// key, as seen from node `me`.
    pub fn plan(
        ring: &Ring,
        n: usize,
        level: Level,
        is_up: impl Fn(&str) -> bool,
        me: &str,
        collection: &str,
    ) -> Result<Coverage> {
        Coverage::assign(
            replica_ranges(ring, n),
            level.required(n),
            level,
            is_up,
            me,
            collection,
        )
    }

    /// The plan over already computed replica ranges ([`replica_ranges`]) asking `required`
    /// live replicas of each.
    pub fn assign(
        mut ranges: Vec<RangePlan>,
        required: usize,
        level: Level,
        is_up: impl Fn(&str) -> bool,
        me: &str,
        collection: &str,
    ) -> Result<Coverage> {
        if ranges.is_empty() {
            return Err(Error::Unavailable(format!(
                "{level} query of {collection}: no node owns tokens yet; nothing was read"
            )));
        }
        let mut short: Vec<&RangePlan> = Vec::new();
        for r in &mut ranges {
            let mut live: Vec<&String> = r.replicas.iter().filter(|x| x.as_str() == me).collect();
            live.extend(r.replicas.iter().filter(|x| x.as_str() != me && is_up(x)));
            r.asked = live.into_iter().take(required).cloned().collect();
        }
        for r in &ranges {
            if r.asked.len() < required {
                short.push(r);
            }
        }
        if let Some(r) = short.first() {
            let down: Vec<&str> = r
                .replicas
                .iter()
                .filter(|x| !r.asked.contains(x))
                .map(String::as_str)
                .collect();
            return Err(Error::Unavailable(format!(
                "{level} query of {collection} needs {required} replicas of every token range, but only {} of the replicas of range [{}, {}] ({}) {} up ({} down){}; nothing was read",
                r.asked.len(),
                r.first,
                r.last,
                r.replicas.join(", "),
                if r.asked.len() == 1 { "is" } else { "are" },
                if down.is_empty() {
                    "none".to_string()
                } else {
                    down.join(", ")
                },
                match short.len() {
                    1 => String::new(),
                    k => format!(", and {} more ranges are short", k - 1),
                }
            )));
        }
        Ok(Coverage { ranges, required })
    }

    /// Index of the range holding `token`.
    pub fn range_of(&self, token: Token) -> usize {
        self.ranges
            .partition_point(|r| r.last < token)
            .min(self.ranges.len() - 1)
    }

    /// Each asked node with the indexes of the ranges asked of it.
    pub fn by_node(&self) -> BTreeMap<String, Vec<usize>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in self.ranges.iter().enumerate() {
            for node in &r.asked {
                out.entry(node.clone()).or_default().push(i);
            }
        }
        out
    }

    /// Replace `failed` in `ranges` by live replicas that are not asked yet and not in
    /// `excluded` (nodes that failed before). Returns the new asks, node by node; fails when
    /// a range has no replica left to ask.
    pub fn replace(
        &mut self,
        failed: &str,
        ranges: &[usize],
        excluded: &BTreeSet<String>,
        is_up: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Vec<usize>>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in ranges {
            let r = &mut self.ranges[i];
            r.asked.retain(|x| x != failed);
            let stand_in = r
                .replicas
                .iter()
                .find(|x| !r.asked.contains(x) && !excluded.contains(*x) && is_up(x))
                .cloned();
            match stand_in {
                Some(node) => {
                    r.asked.push(node.clone());
                    out.entry(node).or_default().push(i);
                }
                None => {
                    return Err(Error::Unavailable(format!(
                        "token range [{}, {}]: {failed} failed and none of its other replicas ({}) can stand in; nothing was returned",
                        r.first,
                        r.last,
                        r.replicas
                            .iter()
                            .filter(|x| x.as_str() != failed)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::token_for;

    fn ring() -> Ring {
        let members = ["n1", "n2", "n3", "n4"].map(|n| {
            let tokens = (0..8)
                .map(|i| token_for("ring", &format!("{n}-{i}")))
                .collect::<Vec<_>>();
            (n, tokens)
        });
        Ring::new(members)
    }

    #[test]
    fn ranges_tile_the_token_space_and_hold_each_keys_replicas() {
        let ring = ring();
        let c = Coverage::plan(&ring, 3, Level::Quorum, |_| true, "n1", "c").unwrap();
        assert_eq!(c.ranges.first().unwrap().first, Token::MIN);
        assert_eq!(c.ranges.last().unwrap().last, Token::MAX);
        for w in c.ranges.windows(2) {
            assert_eq!(w[0].last + 1, w[1].first);
            assert_ne!(
                w[0].replicas, w[1].replicas,
                "neighbours with the same replicas merge"
            );
        }
        for i in 0..500 {
            let t = token_for("c", &format!("k{i}"));
            let r = &c.ranges[c.range_of(t)];
            assert!(r.first <= t && t <= r.last);
            let want: Vec<String> = ring
                .preference_list(t, 3)
                .into_iter()
                .map(String::from)
                .collect();
            assert!(same_nodes(&r.replicas, &want), "{:?} {want:?}", r.replicas);
            assert_eq!(r.asked.len(), 2);
            if r.replicas.iter().any(|x| x == "n1") {
                assert_eq!(r.asked[0], "n1", "this node's copy first");
            }
        }
    }

    #[test]
    fn a_short_range_fails_the_plan_and_a_failed_node_is_replaced() {
        let ring = ring();
        let up = |x: &str| x != "n2" && x != "n3";
        let e = Coverage::plan(&ring, 3, Level::Quorum, up, "n1", "c").unwrap_err();
        assert!(
            matches!(&e, Error::Unavailable(m) if m.contains("needs 2 replicas") && m.contains("down")),
            "{e:?}"
        );
        let mut c = Coverage::plan(&ring, 3, Level::One, up, "n1", "c").unwrap();
        let asked_n4 = c.by_node().remove("n4").unwrap();
        let excluded = BTreeSet::from(["n4".to_string()]);
        // n4 fails: only n1 can stand in (n2, n3 down); ranges without n1 have nobody.
        let r = c.replace("n4", &asked_n4, &excluded, up);
        let without_n1 = asked_n4
            .iter()
            .any(|i| !c.ranges[*i].replicas.iter().any(|x| x == "n1"));
        assert_eq!(r.is_err(), without_n1);
        let mut c = Coverage::plan(&ring, 3, Level::One, |_| true, "n1", "c").unwrap();
        let all: Vec<usize> = (0..c.ranges.len()).collect();
        let by = c.by_node();
        assert!(by.values().map(Vec::len).sum::<usize>() == all.len());
        for (node, ranges) in by {
            let ex = BTreeSet::from([node.clone()]);
            let new = c.replace(&node, &ranges, &ex, |_| true).unwrap();
            assert!(!new.contains_key(&node));
            assert_eq!(new.values().map(Vec::len).sum::<usize>(), ranges.len());
        }
    }
}
