//! Dotted version vectors: causal contexts and sibling sets.
//!
//! Pure: no I/O. Invariants kept here:
//! - every version carries a unique dot `(actor, counter)` minted by a replica of its key;
//!   an actor is a node incarnation, so a node that lost unflushed writes never re-mints a dot;
//! - a sibling set's context covers the dots of all its versions (and of versions they
//!   superseded); versions are kept sorted by dot;
//! - `merge` is the dot-kernel join: a version survives unless the other side has seen its
//!   dot and dropped it. It is commutative, associative and idempotent;
//! - a write with context `C` removes exactly the versions whose dots `C` covers.
//!
//! Contexts carry a compact vector plus a "cloud" of dots that are not contiguous, so a
//! context is never forced to claim knowledge it does not have.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// Who minted a version: a node incarnation such as `n1.4`.
pub type Actor = String;

/// Identity of one version: the `counter`-th version of a key minted by `actor`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// Minting node incarnation.
    pub actor: Actor,
    /// Per-key, per-actor sequence number, starting at 1.
    pub counter: u64,
}

/// The set of versions a reader or replica has seen: `vv` summarizes contiguous
/// prefixes per actor, `cloud` holds dots seen beyond them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CausalContext {
    vv: BTreeMap<Actor, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// Nothing seen: a write with this context supersedes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this context has seen nothing at all.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Whether the version with this dot has been seen.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.actor).is_some_and(|c| *c >= dot.counter) || self.cloud.contains(dot)
    }

    /// Highest counter seen from `actor`, contiguous or not.
    pub fn max_counter(&self, actor: &str) -> u64 {
        let vv = self.vv.get(actor).copied().unwrap_or(0);
        let cloud = self
            .cloud
            .range(
                Dot {
                    actor: actor.to_string(),
                    counter: 0,
                }..,
            )
            .take_while(|d| d.actor == actor)
            .map(|d| d.counter)
            .max()
            .unwrap_or(0);
        vv.max(cloud)
    }

    /// Record one more seen dot.
    pub fn insert(&mut self, dot: Dot) {
        if !self.covers(&dot) {
            self.cloud.insert(dot);
            self.compact();
        }
    }

    /// Everything seen by either side.
    pub fn join(&mut self, other: &CausalContext) {
        for (actor, c) in &other.vv {
            let e = self.vv.entry(actor.clone()).or_insert(0);
            *e = (*e).max(*c);
        }
        self.cloud.extend(other.cloud.iter().cloned());
        self.compact();
    }

    /// Fold cloud dots that extend a contiguous prefix into the vector. The cloud is
    /// sorted by (actor, counter), so one pass folds every run.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let c = self.vv.entry(dot.actor.clone()).or_insert(0);
            if dot.counter == *c + 1 {
                *c += 1;
            } else if dot.counter > *c {
                self.cloud.insert(dot);
            }
        }
        self.vv.retain(|_, c| *c > 0);
    }

    /// Compact binary form, the payload of client context tokens.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(self.actors());
        w.context(self);
        w.finish()
    }

    /// Parse `encode`'s output; rejects anything malformed.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.is_empty() {
            return Ok(Self::new());
        }
        let mut r = Reader::new(buf)?;
        let ctx = r.context()?;
        r.end()?;
        Ok(ctx)
    }

    fn actors(&self) -> BTreeSet<&str> {
        self.vv
            .keys()
            .map(String::as_str)
            .chain(self.cloud.iter().map(|d| d.actor.as_str()))
            .collect()
    }
}

/// One version of a document, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Unique identity of this version.
    pub dot: Dot,
    /// JSON bytes of the document; `None` marks a delete.
    pub value: Option<Bytes>,
    /// Wall-clock milliseconds when minted, for last-write-wins and expiry.
    pub timestamp_ms: u64,
    /// Wall-clock milliseconds after which the document reads as deleted (TTL); every
    /// replica turns it into a tombstone at the same instant, so they agree without talking.
    pub expires_ms: Option<u64>,
}

/// Everything a replica stores for one key: the concurrent versions and what has been seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiblingSet {
    context: CausalContext,
    versions: Vec<Version>,
}

impl SiblingSet {
    /// A key nobody has written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing at all is known about the key.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.context.is_empty()
    }

    /// What this set has seen; a write with it supersedes every version here.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// All versions, tombstones included, sorted by dot.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// Documents that are not deleted: what a read returns (after `expire`).
    pub fn live_values(&self) -> impl Iterator<Item = &Bytes> {
        self.versions.iter().filter_map(|v| v.value.as_ref())
    }

    /// Turn every version whose TTL has passed at `now_ms` into a tombstone with the same
    /// dot (so it still supersedes what it superseded). Returns whether anything changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for v in &mut self.versions {
            if v.expires_ms.is_some_and(|e| e <= now_ms) {
                v.value = None;
                v.expires_ms = None;
                changed = true;
            }
        }
        changed
    }

    /// The earliest TTL still pending, to schedule the purge.
    pub fn next_expiry(&self) -> Option<u64> {
        self.versions.iter().filter_map(|v| v.expires_ms).min()
    }

    /// Set the TTL of the newest version minted by `dot` (used right after `apply_write`).
    pub fn set_expiry(&mut self, own: &CausalContext, expires_ms: Option<u64>) {
        for v in &mut self.versions {
            if own.covers(&v.dot) && v.value.is_some() {
                v.expires_ms = expires_ms;
            }
        }
    }

    /// Record a new version minted by `actor`, superseding exactly what `ctx` covers.
    /// Returns the causal context of the new version alone.
    pub fn apply_write(
        &mut self,
        actor: &str,
        ctx: &CausalContext,
        value: Option<Bytes>,
        timestamp_ms: u64,
    ) -> CausalContext {
        let counter = self.context.max_counter(actor).max(ctx.max_counter(actor)) + 1;
        let dot = Dot {
            actor: actor.to_string(),
            counter,
        };
        self.versions.retain(|v| !ctx.covers(&v.dot));
        self.context.join(ctx);
        self.context.insert(dot.clone());
        let pos = self.versions.partition_point(|v| v.dot < dot);
        self.versions.insert(
            pos,
            Version {
                dot: dot.clone(),
                value,
                timestamp_ms,
                expires_ms: None,
            },
        );
        let mut own = ctx.clone();
        own.insert(dot);
        own
    }

    /// Join another replica's state into this one (the dot-kernel join).
    pub fn merge(&mut self, other: &SiblingSet) {
        let mut merged = Vec::with_capacity(self.versions.len().max(other.versions.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.versions.len() || j < other.versions.len() {
            match (self.versions.get(i), other.versions.get(j)) {
                (Some(a), Some(b)) if a.dot == b.dot => {
                    // One dot has one content; the only way two copies differ is that one
                    // replica already expired it. The expired form wins everywhere.
                    merged.push(if a.value.is_some() && b.value.is_none() {
                        b.clone()
                    } else {
                        a.clone()
                    });
                    i += 1;
                    j += 1;
                }
                (Some(a), b) if b.is_none_or(|b| a.dot < b.dot) => {
                    if !other.context.covers(&a.dot) {
                        merged.push(a.clone());
                    }
                    i += 1;
                }
                (_, Some(b)) => {
                    if !self.context.covers(&b.dot) {
                        merged.push(b.clone());
                    }
                    j += 1;
                }
                (Some(_), None) | (None, None) => unreachable!("guarded by loop and arms above"),
            }
        }
        self.versions = merged;
        self.context.join(&other.context);
    }

    /// Compact binary form stored on disk and shipped between replicas.
    pub fn encode(&self) -> Vec<u8> {
        let mut actors = self.context.actors();
        actors.extend(self.versions.iter().map(|v| v.dot.actor.as_str()));
        let mut w = Writer::new(actors);
        w.context(&self.context);
        w.varint(self.versions.len() as u64);
        for v in &self.versions {
            w.dot(&v.dot);
            w.varint(v.timestamp_ms);
            match (&v.value, v.expires_ms) {
                (None, _) => w.buf.push(0),
                (Some(b), None) => {
                    w.buf.push(1);
                    w.varint(b.len() as u64);
                    w.buf.extend_from_slice(b);
                }
                (Some(b), Some(e)) => {
                    w.buf.push(2);
                    w.varint(e);
                    w.varint(b.len() as u64);
                    w.buf.extend_from_slice(b);
                }
            }
        }
        w.finish()
    }

    /// Parse `encode`'s output without copying documents out of `buf`.
    pub fn decode(buf: &Bytes) -> Result<Self, DecodeError> {
        if buf.is_empty() {
            return Ok(Self::new());
        }
        let mut r = Reader::new(buf)?;
        let context = r.context()?;
        let n = r.varint()?;
        let mut versions: Vec<Version> = Vec::new();
        for _ in 0..n {
            let dot = r.dot()?;
            let timestamp_ms = r.varint()?;
            let tag = r.byte()?;
            let expires_ms = match tag {
                2 => Some(r.varint()?),
                _ => None,
            };
            let value = match tag {
                0 => None,
                1 | 2 => {
                    let len = r.len()?;
                    let start = r.pos;
                    r.pos += len;
                    Some(buf.slice(start..start + len))
                }
                t => return Err(DecodeError(format!("unknown value tag {t}"))),
            };
            if versions.last().is_some_and(|p| p.dot >= dot) {
                return Err(DecodeError("versions out of order".into()));
            }
            if !context.covers(&dot) {
                return Err(DecodeError("version not covered by its context".into()));
            }
            versions.push(Version {
                dot,
                value,
                timestamp_ms,
                expires_ms,
            });
        }
        r.end()?;
        Ok(SiblingSet { context, versions })
    }
}

/// Bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed version data: {0}")]
pub struct DecodeError(pub String);

const FORMAT: u8 = 1;

struct Writer<'a> {
    actors: Vec<&'a str>,
    buf: Vec<u8>,
}

impl<'a> Writer<'a> {
    fn new(actors: BTreeSet<&'a str>) -> Self {
        let actors: Vec<&str> = actors.into_iter().collect();
        let mut w = Writer {
            actors,
            buf: Vec::with_capacity(64),
        };
        w.buf.push(FORMAT);
        w.varint(w.actors.len() as u64);
        for i in 0..w.actors.len() {
            let a = w.actors[i];
            w.varint(a.len() as u64);
            w.buf.extend_from_slice(a.as_bytes());
        }
        w
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn actor(&mut self, a: &str) {
        let idx = self.actors.binary_search(&a).unwrap_or(0);
        self.varint(idx as u64);
    }

    fn dot(&mut self, d: &Dot) {
        self.actor(&d.actor);
        self.varint(d.counter);
    }

    fn context(&mut self, c: &CausalContext) {
        self.varint(c.vv.len() as u64);
        for (a, n) in &c.vv {
            self.actor(a);
            self.varint(*n);
        }
        self.varint(c.cloud.len() as u64);
        for d in &c.cloud {
            self.dot(d);
        }
    }

    fn finish(self) -> Vec<u8> {
        self.buf
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    actors: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader {
            buf,
            pos: 0,
            actors: Vec::new(),
        };
        match r.byte()? {
            FORMAT => {}
            f => return Err(DecodeError(format!("unknown format {f}"))),
        }
        let n = r.varint()?;
        for _ in 0..n {
            let len = r.len()?;
            let s = std::str::from_utf8(&r.buf[r.pos..r.pos + len])
                .map_err(|_| DecodeError("actor is not UTF-8".into()))?;
            r.pos += len;
            r.actors.push(s.to_string());
        }
        Ok(r)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| DecodeError("truncated".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long".into()))
    }

    /// A length that must fit in what is left of the buffer.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(DecodeError("length past end".into()));
        }
        Ok(n as usize)
    }

    fn actor(&mut self) -> Result<Actor, DecodeError> {
        let i = self.varint()?;
        self.actors
            .get(i as usize)
            .cloned()
            .ok_or_else(|| DecodeError(format!("actor index {i} out of range")))
    }

    fn dot(&mut self) -> Result<Dot, DecodeError> {
        let actor = self.actor()?;
        let counter = self.varint()?;
        if counter == 0 {
            return Err(DecodeError("dot counter 0".into()));
        }
        Ok(Dot { actor, counter })
    }

    fn context(&mut self) -> Result<CausalContext, DecodeError> {
        let mut ctx = CausalContext::new();
        for _ in 0..self.varint()? {
            let a = self.actor()?;
            let c = self.varint()?;
            ctx.vv.insert(a, c);
        }
        for _ in 0..self.varint()? {
            ctx.cloud.insert(self.dot()?);
        }
        ctx.compact();
        Ok(ctx)
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError("trailing bytes".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A step of a random history over three replicas of one key.
    #[derive(Debug, Clone)]
    enum Step {
        /// Replica `r` mints a write with the context of what replica `from` holds (or none).
        Write {
            r: usize,
            from: Option<usize>,
            tomb: bool,
        },
        /// Replica `to` merges replica `from`'s state.
        Sync { from: usize, to: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                0..3usize,
                proptest::option::of(0..3usize),
                proptest::bool::weighted(0.2)
            )
                .prop_map(|(r, from, tomb)| Step::Write { r, from, tomb }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Sync { from, to }),
        ]
    }

    fn run(steps: &[Step]) -> Vec<SiblingSet> {
        let mut reps = vec![SiblingSet::new(); 3];
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Write { r, from, tomb } => {
                    let ctx = from.map(|f| reps[f].context().clone()).unwrap_or_default();
                    let val = (!tomb).then(|| Bytes::from(format!("{{\"v\":{i}}}")));
                    reps[*r].apply_write(&format!("n{r}"), &ctx, val, i as u64);
                }
                Step::Sync { from, to } => {
                    let src = reps[*from].clone();
                    reps[*to].merge(&src);
                }
            }
        }
        reps
    }

    fn joined(a: &SiblingSet, b: &SiblingSet) -> SiblingSet {
        let mut x = a.clone();
        x.merge(b);
        x
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(steps in proptest::collection::vec(step(), 0..40)) {
            let r = run(&steps);
            prop_assert_eq!(joined(&r[0], &r[1]), joined(&r[1], &r[0]));
            prop_assert_eq!(joined(&joined(&r[0], &r[1]), &r[2]), joined(&r[0], &joined(&r[1], &r[2])));
            prop_assert_eq!(joined(&r[0], &r[0]), r[0].clone());
        }

        #[test]
        fn encode_decode_round_trips(steps in proptest::collection::vec(step(), 0..40)) {
            for s in run(&steps) {
                let bytes = Bytes::from(s.encode());
                prop_assert_eq!(SiblingSet::decode(&bytes).unwrap(), s.clone());
                prop_assert_eq!(CausalContext::decode(&s.context().encode()).unwrap(), s.context().clone());
            }
        }

        #[test]
        fn decode_never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SiblingSet::decode(&Bytes::from(data.clone()));
            let _ = CausalContext::decode(&data);
        }

        #[test]
        fn write_with_read_context_supersedes_exactly_what_the_read_saw(
            steps in proptest::collection::vec(step(), 0..40), reader in 0..3usize, writer in 0..3usize,
        ) {
            let mut r = run(&steps);
            let seen = r[reader].clone();
            r[writer].apply_write(&format!("n{writer}"), seen.context(), Some(Bytes::from_static(b"{}")), 999);
            let mut all = r[0].clone();
            all.merge(&r[1]);
            all.merge(&r[2]);
            // The read's versions are all gone; every version it had not seen is still there.
            for v in seen.versions() {
                prop_assert!(!all.versions().iter().any(|w| w.dot == v.dot));
            }
            let before = run(&steps);
            let mut before_all = before[0].clone();
            before_all.merge(&before[1]);
            before_all.merge(&before[2]);
            for v in before_all.versions() {
                if !seen.context().covers(&v.dot) {
                    prop_assert!(all.versions().iter().any(|w| w.dot == v.dot), "unseen version lost");
                }
            }
        }

        #[test]
        fn replicas_that_exchange_states_converge(steps in proptest::collection::vec(step(), 0..60)) {
            let mut r = run(&steps);
            for (from, to) in [(0, 1), (1, 2), (2, 0), (0, 1)] {
                let src = r[from].clone();
                r[to].merge(&src);
            }
            prop_assert_eq!(&r[0], &r[1]);
            prop_assert_eq!(&r[1], &r[2]);
        }
    }

    #[test]
    fn two_blind_writes_are_siblings_and_a_contextual_write_resolves_them() {
        let mut s = SiblingSet::new();
        let none = CausalContext::new();
        s.apply_write("a.1", &none, Some(Bytes::from_static(b"{\"x\":1}")), 1);
        s.apply_write("a.1", &none, Some(Bytes::from_static(b"{\"x\":2}")), 2);
        assert_eq!(s.live_values().count(), 2);
        let ctx = s.context().clone();
        let own = s.apply_write("a.1", &ctx, Some(Bytes::from_static(b"{\"x\":3}")), 3);
        assert_eq!(
            s.live_values().collect::<Vec<_>>(),
            vec![&Bytes::from_static(b"{\"x\":3}")]
        );
        assert!(own.covers(&s.versions()[0].dot));
    }

    #[test]
    fn context_of_a_blind_write_does_not_claim_its_concurrent_sibling() {
        let mut s = SiblingSet::new();
        let none = CausalContext::new();
        let first = s.apply_write("a.1", &none, Some(Bytes::from_static(b"{}")), 1);
        let second = s.apply_write("a.1", &none, Some(Bytes::from_static(b"{}")), 2);
        // The second write's context names only its own dot, so writing with it keeps the first.
        assert!(!second.covers(&s.versions()[0].dot));
        assert!(first.covers(&s.versions()[0].dot));
        s.apply_write("a.1", &second, Some(Bytes::from_static(b"{\"r\":1}")), 3);
        assert_eq!(s.live_values().count(), 2);
    }

    #[test]
    fn an_expired_version_becomes_a_tombstone_that_wins_every_merge() {
        let mut a = SiblingSet::new();
        let none = CausalContext::new();
        let own = a.apply_write("a.1", &none, Some(Bytes::from_static(b"{}")), 1);
        a.set_expiry(&own, Some(100));
        let b = a.clone();
        let encoded = Bytes::from(a.encode());
        assert_eq!(
            SiblingSet::decode(&encoded).unwrap(),
            a,
            "the TTL survives encoding"
        );
        assert_eq!(a.next_expiry(), Some(100));
        assert!(!a.expire(99));
        assert!(a.expire(100));
        assert_eq!(a.live_values().count(), 0);
        assert_eq!(a.versions().len(), 1, "same dot, now a tombstone");
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(&b);
        ba.merge(&a);
        assert_eq!(ab, a);
        assert_eq!(ba, a, "the expired form wins whichever side merges");
        assert_eq!(ab.encode(), ba.encode());
    }
}
