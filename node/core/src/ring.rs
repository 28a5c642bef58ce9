//! The consistent-hash ring: murmur3 tokens, virtual nodes and preference lists.
//!
//! Pure: no I/O, no clocks. Invariants kept here:
//! - a key's token is the low 64 bits (Cassandra's `h1`) of MurmurHash3 x64_128, seed 0,
//!   of `collection \0 key`, read as a signed i64;
//! - a node that owns token `t` is the first replica of every key whose token is in
//!   `(previous token, t]`, wrapping around the ring;
//! - a preference list is the first N *distinct* nodes met walking clockwise, so it never
//!   names a node twice and always starts at the key's primary;
//! - tokens are kept sorted by `(token, node)`, so every node that knows the same members
//!   derives the same ring.

use std::collections::BTreeMap;

pub use crate::token::{token_for, Token};

/// Virtual nodes per node by default: enough for balance with the greedy allocator and
/// for streaming a join from many peers at once.
pub const DEFAULT_VNODES: usize = 64;

/// Ring distance from `from` (exclusive) to `to` (inclusive), as an unsigned count of positions.
fn span(from: Token, to: Token) -> u64 {
    (to as u64).wrapping_sub(from as u64)
}

/// An immutable snapshot of token ownership; rebuilt whenever membership changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ring {
    nodes: Vec<String>,
    /// Sorted `(token, index into nodes)`.
    tokens: Vec<(Token, usize)>,
}

impl Ring {
    /// Build a ring from each member's tokens; members without tokens are left out.
    pub fn new<I, S>(members: I) -> Ring
    where
        I: IntoIterator<Item = (S, Vec<Token>)>,
        S: Into<String>,
    {
        let mut by_id: BTreeMap<String, Vec<Token>> = BTreeMap::new();
        for (id, toks) in members {
            if !toks.is_empty() {
                by_id.entry(id.into()).or_default().extend(toks);
            }
        }
        let nodes: Vec<String> = by_id.keys().cloned().collect();
        let mut tokens: Vec<(Token, usize)> = by_id
            .values()
            .enumerate()
            .flat_map(|(i, toks)| toks.iter().map(move |t| (*t, i)))
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        Ring { nodes, tokens }
    }

    /// Whether any node owns tokens yet.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Node ids in the ring, sorted.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Every `(token, node)` pair in ring order, for `RING` listings.
    pub fn tokens(&self) -> impl Iterator<Item = (Token, &str)> + '_ {
        self.tokens
            .iter()
            .map(|(t, i)| (*t, self.nodes[*i].as_str()))
    }

    /// Tokens owned by one node, sorted.
    pub fn tokens_of(&self, node: &str) -> Vec<Token> {
        match self.nodes.iter().position(|n| n == node) {
            Some(idx) => self
                .tokens
                .iter()
                .filter(|(_, i)| *i == idx)
                .map(|(t, _)| *t)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Index in `tokens` of the first virtual node at or after `token`, wrapping.
    fn successor(&self, token: Token) -> usize {
        let i = self.tokens.partition_point(|(t, _)| *t < token);
        if i == self.tokens.len() {
            0
        } else {
            i
        }
    }

    /// The key's first replica: the node it belongs to when N = 1.
    pub fn primary(&self, token: Token) -> Option<&str> {
        if self.tokens.is_empty() {
            return None;
        }
        Some(&self.nodes[self.tokens[self.successor(token)].1])
    }

    /// The first `n` distinct nodes clockwise from `token`: the key's replicas, in order.
    pub fn preference_list(&self, token: Token, n: usize) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(n);
        if self.tokens.is_empty() || n == 0 {
            return out;
        }
        let want = n.min(self.nodes.len());
        let start = self.successor(token);
        let len = self.tokens.len();
        let mut seen = vec![false; self.nodes.len()];
        for step in 0..len {
            let idx = self.tokens[(start + step) % len].1;
            if !seen[idx] {
                seen[idx] = true;
                out.push(&self.nodes[idx]);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// Fraction of the token space each node is first replica for; sums to 1.
    pub fn ownership(&self) -> BTreeMap<String, f64> {
        let mut owned = vec![0u128; self.nodes.len()];
        let len = self.tokens.len();
        if len == 1 {
            owned[self.tokens[0].1] = 1u128 << 64;
        }
        for i in 0..len {
            if len == 1 {
                break;
            }
            let prev = self.tokens[(i + len - 1) % len].0;
            let (tok, idx) = self.tokens[i];
            let mut size = span(prev, tok) as u128;
            if size == 0 {
                size = 1u128 << 64; // a single distinct token owns everything
            }
            owned[idx] += size;
        }
        let full = (1u128 << 64) as f64;
        self.nodes
            .iter()
            .zip(owned)
            .map(|(n, o)| (n.clone(), o as f64 / full))
            .collect()
    }

    /// Choose `count` tokens for a node joining this ring, taking an equal share from the
    /// most over-loaded nodes so shares stay near 1/(n+1) and only ~1/(n+1) of keys move.
    ///
    /// Deterministic in (ring, node id); the node id perturbs positions slightly so two
    /// nodes that allocate against the same view at the same time do not collide.
    pub fn allocate_tokens(&self, node: &str, count: usize) -> Vec<Token> {
        let count = count.max(1);
        let salt = token_for("ringdb.alloc", node) as u64;
        let existing: Vec<usize> = {
            let mut v: Vec<usize> = self.tokens.iter().map(|(_, i)| *i).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if existing.is_empty() {
            let step = u64::MAX / count as u64;
            let offset = salt % step.max(1);
            return (0..count as u64)
                .map(|i| offset.wrapping_add(i.wrapping_mul(step)) as i64)
                .collect();
        }
        let full = (1u128 << 64) as f64;
        let n = existing.len() as f64;
        let target = 1.0 / (n + 1.0);
        let per_token = target / count as f64;
        // Ranges still owned by each node: (start exclusive, size), sizes in ring fractions.
        let len = self.tokens.len();
        let mut ranges: Vec<Vec<(Token, f64)>> = vec![Vec::new(); self.nodes.len()];
        for i in 0..len {
            let prev = self.tokens[(i + len - 1) % len].0;
            let (tok, idx) = self.tokens[i];
            let size = if len == 1 {
                1.0
            } else {
                span(prev, tok) as f64 / full
            };
            ranges[idx].push((prev, size));
        }
        let mut excess: Vec<f64> = ranges
            .iter()
            .map(|r| r.iter().map(|(_, s)| s).sum::<f64>() - target)
            .collect();
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let donor = existing
                .iter()
                .copied()
                .max_by(|a, b| excess[*a].total_cmp(&excess[*b]).then(b.cmp(a)))
                .unwrap_or(existing[0]);
            let Some((pos, &(start, size))) = ranges[donor]
                .iter()
                .enumerate()
                .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            else {
                break;
            };
            // Jitter of up to ±1% keeps concurrent allocators apart without hurting balance.
            let jitter =
                1.0 + (((salt.rotate_left(i as u32 * 7) % 2001) as f64) - 1000.0) / 100_000.0;
            let take = (per_token * jitter).min(size * 0.95);
            let tok = start.wrapping_add(((take * full) as u64).max(1) as i64);
            out.push(tok);
            excess[donor] -= take;
            ranges[donor][pos] = (tok, size - take);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grow(names: &[String], vnodes: usize) -> Vec<Ring> {
        let mut members: Vec<(String, Vec<Token>)> = Vec::new();
        let mut rings = Vec::new();
        for name in names {
            let ring = Ring::new(members.clone());
            let toks = ring.allocate_tokens(name, vnodes);
            members.push((name.clone(), toks));
            rings.push(Ring::new(members.clone()));
        }
        rings
    }

    #[test]
    fn preference_list_is_distinct_and_starts_at_primary() {
        let names: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let ring = grow(&names, 16).pop().unwrap();
        for k in 0..1000 {
            let t = token_for("c", &k.to_string());
            let list = ring.preference_list(t, 3);
            assert_eq!(list.len(), 3);
            assert_eq!(Some(list[0]), ring.primary(t));
            let mut d = list.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(
            ring.preference_list(0, 9).len(),
            5,
            "never more than the nodes there are"
        );
    }

    #[test]
    fn single_node_owns_everything() {
        let ring = Ring::new([("a", Ring::default().allocate_tokens("a", 8))]);
        let own = ring.ownership();
        assert!((own["a"] - 1.0).abs() < 1e-9);
        assert_eq!(ring.primary(12345), Some("a"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn default_settings_stay_balanced_from_3_to_20_nodes(seed in any::<u64>()) {
            let names: Vec<String> = (0..20).map(|i| format!("node-{seed:x}-{i}")).collect();
            for (i, ring) in grow(&names, DEFAULT_VNODES).iter().enumerate().skip(2) {
                let own = ring.ownership();
                let total: f64 = own.values().sum();
                prop_assert!((total - 1.0).abs() < 1e-6);
                let mean = 1.0 / (i + 1) as f64;
                let max = own.values().cloned().fold(0.0, f64::max);
                prop_assert!(max <= 1.15 * mean, "{} nodes: max share {max} vs mean {mean}", i + 1);
            }
        }

        #[test]
        fn adding_a_node_moves_about_its_share_and_only_to_it(seed in any::<u64>(), n in 1usize..12) {
            let names: Vec<String> = (0..=n).map(|i| format!("m-{seed:x}-{i}")).collect();
            let rings = grow(&names, DEFAULT_VNODES);
            let (before, after) = (&rings[n - 1], &rings[n]);
            let newcomer = names[n].as_str();
            let samples = 20_000;
            let mut moved = 0;
            for k in 0..samples {
                let t = token_for("c", &format!("{seed}-{k}"));
                let (a, b) = (before.primary(t).unwrap(), after.primary(t).unwrap());
                if a != b {
                    prop_assert_eq!(b, newcomer, "keys move only to the new node");
                    moved += 1;
                }
            }
            let frac = moved as f64 / samples as f64;
            let expect = 1.0 / (n + 1) as f64;
            prop_assert!((frac - expect).abs() < 0.2 * expect + 0.01, "moved {frac}, expected about {expect}");
        }

        #[test]
        fn ring_is_independent_of_member_order(seed in any::<u64>()) {
            let names: Vec<String> = (0..6).map(|i| format!("o-{seed:x}-{i}")).collect();
            let ring = grow(&names, 16).pop().unwrap();
            let members: Vec<(String, Vec<Token>)> =
                ring.nodes().iter().map(|n| (n.clone(), ring.tokens_of(n))).collect();
            let mut rev = members.clone();
            rev.reverse();
            prop_assert_eq!(Ring::new(members), Ring::new(rev));
        }
    }
}
