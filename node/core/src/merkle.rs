//! Hash trees over the token space, one per collection, kept current on every write so two
//! replicas find the keys they disagree on by swapping a few hashes instead of their data.
//!
//! The token space is cut into [`SEGMENTS`] equal segments (the leaves). A leaf is the XOR
//! of the hashes of the entries whose token falls in it, so a write updates it in O(1)
//! (`leaf ^= hash(old) ^ hash(new)`) whatever the order writes arrive in, and the hash of
//! any run of leaves (an inner node) is the XOR of the run. Pure: no I/O.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ring::Token;

/// Bits of a token that pick its segment.
pub const SEGMENT_BITS: u32 = 14;
/// Leaves per tree: 16,384, so a million keys put about 60 in a leaf.
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;

/// Tokens as unsigned, order-preserving positions (the storage key prefix uses the same).
fn position(token: Token) -> u64 {
    (token as u64) ^ (1 << 63)
}

fn token_at(position: u64) -> Token {
    (position ^ (1 << 63)) as Token
}

/// The leaf a token belongs to.
pub fn segment_of(token: Token) -> usize {
    (position(token) >> (64 - SEGMENT_BITS)) as usize
}

/// First token of a segment.
pub fn segment_first(segment: usize) -> Token {
    token_at((segment as u64) << (64 - SEGMENT_BITS))
}

/// Last token of a segment.
pub fn segment_last(segment: usize) -> Token {
    token_at(((segment as u64) << (64 - SEGMENT_BITS)) | (u64::MAX >> SEGMENT_BITS))
}

/// Hash of one stored entry (its engine key and encoded sibling set). Sibling-set encodings
/// are canonical, so replicas holding the same versions hash the same.
pub fn entry_hash(storage_key: &[u8], value: &[u8]) -> u64 {
    let len = (storage_key.len() as u32).to_le_bytes();
    let mut input = (&len[..]).chain(storage_key).chain(value);
    // Reading from in-memory slices cannot fail.
    let h = murmur3::murmur3_x64_128(&mut input, 0x5eed).unwrap_or(0);
    (h as u64) ^ ((h >> 64) as u64)
}

/// The leaves of one collection's tree, shared by the storage threads.
pub struct Leaves {
    cells: Box<[AtomicU64]>,
}

impl Default for Leaves {
    fn default() -> Self {
        Leaves {
            cells: (0..SEGMENTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Leaves {
    /// Account for an entry appearing in (or leaving) a segment: XOR is its own inverse.
    pub fn toggle(&self, segment: usize, hash: u64) {
        if let Some(c) = self.cells.get(segment) {
            c.fetch_xor(hash, Ordering::Relaxed);
        }
    }

    /// One leaf.
    pub fn leaf(&self, segment: usize) -> u64 {
        self.cells
            .get(segment)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Hash of the segments `first..=last`.
    pub fn run(&self, first: usize, last: usize) -> u64 {
        let last = last.min(SEGMENTS - 1);
        (first..=last).fold(0, |acc, s| acc ^ self.leaf(s))
    }

    /// The root: hash of every segment.
    pub fn root(&self) -> u64 {
        self.run(0, SEGMENTS - 1)
    }

    /// Little-endian leaves, for persisting at a clean shutdown.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.cells
            .iter()
            .flat_map(|c| c.load(Ordering::Relaxed).to_le_bytes())
            .collect()
    }

    /// Leaves saved by `to_bytes`; `None` if the bytes are not a tree of this shape.
    pub fn from_bytes(b: &[u8]) -> Option<Leaves> {
        if b.len() != SEGMENTS * 8 {
            return None;
        }
        Some(Leaves {
            cells: b
                .chunks_exact(8)
                .map(|c| AtomicU64::new(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
                .collect(),
        })
    }
}

/// Split the inclusive token range `[first, last]` (first <= last) into at most `parts`
/// pieces cut at segment boundaries, so each piece's whole segments come from the leaves.
/// A range inside one segment is returned as is.
pub fn split(first: Token, last: Token, parts: usize) -> Vec<(Token, Token)> {
    let (s1, s2) = (segment_of(first), segment_of(last));
    if s1 == s2 || parts < 2 {
        return vec![(first, last)];
    }
    let segments = s2 - s1 + 1;
    let per = segments.div_ceil(parts);
    let mut out = Vec::new();
    let mut s = s1;
    while s <= s2 {
        let end = (s + per - 1).min(s2);
        let a = if s == s1 { first } else { segment_first(s) };
        let b = if end == s2 { last } else { segment_last(end) };
        out.push((a, b));
        s = end + 1;
    }
    out
}

/// Ranges narrower than this are compared key by key; a differing leaf is first cut into
/// pieces of about this width, hashed by scanning, so only a sixteenth of its keys are
/// listed over the network.
pub const FINEST: u64 = 1 << (64 - SEGMENT_BITS - 4);

/// Cut `[first, last]` into `parts` equal token ranges (used below leaf level).
pub fn split_evenly(first: Token, last: Token, parts: usize) -> Vec<(Token, Token)> {
    let (a, b) = (first as i128, last as i128);
    let parts = (parts.max(1) as i128).min(b - a + 1);
    let width = (b - a + 1) / parts;
    (0..parts)
        .map(|i| {
            let lo = a + i * width;
            let hi = if i == parts - 1 { b } else { lo + width - 1 };
            (lo as Token, hi as Token)
        })
        .collect()
}

/// The segments wholly inside `[first, last]`, and the partial ends that need a key scan.
pub struct Cover {
    /// Whole segments, as an inclusive run (`None` if there are none).
    pub whole: Option<(usize, usize)>,
    /// Token ranges at the ends that cover only part of a segment.
    pub partial: Vec<(Token, Token)>,
}

/// How `[first, last]` (first <= last) decomposes into leaves and partial segments.
pub fn cover(first: Token, last: Token) -> Cover {
    let (s1, s2) = (segment_of(first), segment_of(last));
    let head_whole = first == segment_first(s1);
    let tail_whole = last == segment_last(s2);
    if s1 == s2 {
        return if head_whole && tail_whole {
            Cover {
                whole: Some((s1, s1)),
                partial: Vec::new(),
            }
        } else {
            Cover {
                whole: None,
                partial: vec![(first, last)],
            }
        };
    }
    let mut partial = Vec::new();
    let lo = if head_whole {
        s1
    } else {
        partial.push((first, segment_last(s1)));
        s1 + 1
    };
    let hi = if tail_whole {
        s2
    } else {
        partial.push((segment_first(s2), last));
        s2 - 1
    };
    Cover {
        whole: (lo <= hi).then_some((lo, hi)),
        partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_token_space_in_order() {
        assert_eq!(segment_of(Token::MIN), 0);
        assert_eq!(segment_of(Token::MAX), SEGMENTS - 1);
        assert_eq!(segment_first(0), Token::MIN);
        assert_eq!(segment_last(SEGMENTS - 1), Token::MAX);
        for s in [1, 77, SEGMENTS / 2, SEGMENTS - 2] {
            assert_eq!(segment_of(segment_first(s)), s);
            assert_eq!(segment_of(segment_last(s)), s);
            assert_eq!(segment_last(s - 1) + 1, segment_first(s));
        }
    }

    #[test]
    fn leaves_do_not_depend_on_write_order_and_undo_cleanly() {
        let (a, b) = (Leaves::default(), Leaves::default());
        let h1 = entry_hash(b"k1", b"v1");
        let h2 = entry_hash(b"k2", b"v2");
        a.toggle(3, h1);
        a.toggle(3, h2);
        b.toggle(3, h2);
        b.toggle(3, h1);
        assert_eq!(a.root(), b.root());
        a.toggle(3, h1);
        assert_ne!(a.root(), b.root());
        a.toggle(3, h1);
        assert_eq!(a.leaf(3), b.leaf(3));
        let c = Leaves::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(c.root(), a.root());
        assert!(Leaves::from_bytes(&[0; 8]).is_none());
    }

    #[test]
    fn different_versions_of_a_key_hash_differently() {
        assert_ne!(entry_hash(b"k", b"v1"), entry_hash(b"k", b"v2"));
        assert_ne!(entry_hash(b"k1", b"v"), entry_hash(b"k", b"1v"));
    }

    #[test]
    fn even_splits_are_contiguous_and_reach_the_finest_width() {
        let (a, b) = (segment_first(9), segment_last(9));
        let pieces = split_evenly(a, b, 16);
        assert_eq!(pieces.len(), 16);
        assert_eq!((pieces[0].0, pieces[15].1), (a, b));
        for w in pieces.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        assert!(pieces
            .iter()
            .all(|(x, y)| ((*y as i128 - *x as i128) as u64) < FINEST));
        assert_eq!(split_evenly(5, 7, 16), vec![(5, 5), (6, 6), (7, 7)]);
    }

    #[test]
    fn split_and_cover_partition_a_range() {
        let first = segment_first(10) + 5;
        let last = segment_last(300) - 7;
        let pieces = split(first, last, 16);
        assert!(pieces.len() <= 16 && pieces.len() > 1);
        assert_eq!(pieces[0].0, first);
        assert_eq!(pieces.last().unwrap().1, last);
        for w in pieces.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0, "pieces are contiguous");
        }
        let c = cover(first, last);
        assert_eq!(c.whole, Some((11, 299)));
        assert_eq!(
            c.partial,
            vec![(first, segment_last(10)), (segment_first(300), last)]
        );
        let inside = cover(segment_first(5), segment_last(5));
        assert_eq!(inside.whole, Some((5, 5)));
        assert!(inside.partial.is_empty());
        assert_eq!(
            split(first, segment_last(10), 16),
            vec![(first, segment_last(10))]
        );
    }
}
