//! The documents of the query benchmark, the same for RingDB and for PostgreSQL.
//!
//! Record `i` of `records` has key `doc{i:08}` and a JSON document of about 1 KiB whose
//! indexed fields give the benchmark's queries a fixed selectivity at any `--records`:
//!
//! - `g10`: a string `"a<g>"` held by `records / 10` groups, so each value names 10 documents
//!   (11 where `records` is not a multiple of 10);
//! - `g100`: a string `"b<g>"` over `records / 100` groups, about 100 documents each;
//! - `score`: a number `p + f`, where `p` runs over `0..records` exactly once and `0 <= f < 1`,
//!   so scores are distinct, uniformly spread, and exactly `records - x` are `>= x`;
//! - `status`: `"active"` for 2 records in 10, then `"inactive"` (5 in 10), `"pending"`
//!   (2 in 10) and `"closed"` (1 in 10), each to within one record;
//! - and fields that are not queried but make the document realistic: `name`, `email`, `age`,
//!   `created`, a nested `address` (`address.city`, ...), an array `tags` and a `bio` of
//!   words that brings the document to 992..1056 bytes of compact JSON.
//!
//! Invariants:
//! - a document is a pure function of (`records`, `seed`, `i`): no state, any order, any
//!   process; the generator uses its own SplitMix64, not `rand`, so a new `rand` cannot change
//!   the data;
//! - each indexed field is a [`block`] of a [`Shuffle`] (a bijection of `0..records`), a
//!   different shuffle per field, so the counts above are exact, not expectations (and
//!   [`crate::queryspec`] states each query's answer size), while the fields stay independent
//!   of each other and of the key order;
//! - the seed moves which record gets which value, never how many records share one.

use anyhow::bail;
use serde_json::{json, Value};

/// Fewest records a data set may have: a range query needs 100 documents at or above any
/// threshold it draws, and `g100` needs at least one group.
pub const MIN_RECORDS: u64 = 100;
/// Most records a data set may have: keeps every [`Shuffle`] step inside `i64` (pgbench).
pub const MAX_RECORDS: u64 = 1_000_000_000;
/// Records sharing one `g10` value.
pub const G10_SIZE: u64 = 10;
/// Records sharing one `g100` value.
pub const G100_SIZE: u64 = 100;
/// `status` by tenths of a shuffle: two tenths active, so COUNT with a filter sees 20%.
pub const STATUSES: [&str; 10] = [
    "active", "active", "inactive", "inactive", "inactive", "inactive", "inactive", "pending",
    "pending", "closed",
];

/// How many groups a field with `size` records per value has among `records`.
pub fn groups(records: u64, size: u64) -> u64 {
    (records / size).max(1)
}

/// Which of `m` nearly equal blocks of `0..n` holds `p`: `floor(p * m / n)`.
///
/// Blocks, not residues: with residues, a field of `n / 10` groups would be a function of
/// one of `n / 100` groups whenever the counts divide (`x % 100 = (x % 1000) % 100`).
pub fn block(p: u64, n: u64, m: u64) -> u64 {
    (u128::from(p) * u128::from(m) / u128::from(n)) as u64
}

/// How many of `0..n` fall in block `r` of `m` (see [`block`]): `n / m` or one more.
pub fn block_size(n: u64, m: u64, r: u64) -> u64 {
    let first = |r: u64| (u128::from(r) * u128::from(n)).div_ceil(u128::from(m));
    (first(r + 1) - first(r)) as u64
}

/// What a `g10` value starts with; the group number follows.
pub const G10_PREFIX: &str = "a";
/// What a `g100` value starts with; the group number follows.
pub const G100_PREFIX: &str = "b";

/// The `g10` value of group `g`.
pub fn g10_value(g: u64) -> String {
    format!("{G10_PREFIX}{g}")
}

/// The `g100` value of group `g`.
pub fn g100_value(g: u64) -> String {
    format!("{G100_PREFIX}{g}")
}

/// A bijection of `0..n`, `x -> (x * mul + add) mod n`, with `mul` coprime to `n` and near
/// `fraction * n` (an irrational fraction spreads consecutive `x` evenly, as Fibonacci
/// hashing does). Cheap, exact and easy to write in pgbench's expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shuffle {
    n: u64,
    mul: u64,
    add: u64,
}

impl Shuffle {
    /// A shuffle of `0..n` (`n >= 1`) whose multiplier is near `fraction * n`.
    pub fn new(n: u64, fraction: f64, add: u64) -> Self {
        let n = n.max(1);
        let mut mul = ((n as f64 * fraction) as u64).max(1);
        while gcd(mul, n) != 1 {
            mul += 1;
        }
        Shuffle {
            n,
            mul: mul % n,
            add: add % n,
        }
    }

    /// The image of `x` (taken modulo `n`).
    pub fn apply(&self, x: u64) -> u64 {
        let v = u128::from(x % self.n) * u128::from(self.mul) + u128::from(self.add);
        (v % u128::from(self.n)) as u64
    }

    /// The same map as a pgbench expression over variable `var`; every step stays below
    /// `n * n + n`, inside pgbench's 64-bit integers for `n <= MAX_RECORDS`.
    pub fn pgbench(&self, var: &str) -> String {
        format!(
            "((:{var} % {n}) * {mul} + {add}) % {n}",
            n = self.n,
            mul = self.mul,
            add = self.add
        )
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// SplitMix64 (Steele, Lea, Flood): a tiny generator whose output is fixed forever.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// One value of a 64-bit hash, for seeding per record and per field.
fn hash(a: u64, b: u64) -> u64 {
    Mix(a ^ b.rotate_left(32) ^ 0x5eed_da7a).next()
}

const FIRST: &[&str] = &[
    "Ada", "Alan", "Barbara", "Edsger", "Frances", "Grace", "Hedy", "Ivan", "Jean", "John",
    "Karen", "Leslie", "Margaret", "Niklaus", "Radia", "Robin", "Shafi", "Sophie", "Tim", "Tony",
];
const LAST: &[&str] = &[
    "Allen",
    "Backus",
    "Dijkstra",
    "Hamilton",
    "Hopper",
    "Kay",
    "Knuth",
    "Lamport",
    "Liskov",
    "Lovelace",
    "Milner",
    "Perlman",
    "Ritchie",
    "Sutherland",
    "Thompson",
    "Turing",
    "Wirth",
];
const CITIES: &[(&str, &str)] = &[
    ("Amsterdam", "NL"),
    ("Berlin", "DE"),
    ("Bordeaux", "FR"),
    ("Boston", "US"),
    ("Cape Town", "ZA"),
    ("Dublin", "IE"),
    ("Edinburgh", "GB"),
    ("Kyoto", "JP"),
    ("Lisbon", "PT"),
    ("Lyon", "FR"),
    ("Madrid", "ES"),
    ("Melbourne", "AU"),
    ("Montreal", "CA"),
    ("Nairobi", "KE"),
    ("Oslo", "NO"),
    ("Porto Alegre", "BR"),
    ("Prague", "CZ"),
    ("Seoul", "KR"),
    ("Toronto", "CA"),
    ("Vienna", "AT"),
];
const STREETS: &[&str] = &[
    "Elm Street",
    "High Street",
    "Station Road",
    "Church Lane",
    "Mill Road",
    "Park Avenue",
    "Oak Drive",
    "Harbour Way",
    "Market Square",
    "River Walk",
];
const TAGS: &[&str] = &[
    "admin",
    "beta",
    "churn-risk",
    "enterprise",
    "free",
    "gold",
    "mobile",
    "newsletter",
    "partner",
    "premium",
    "silver",
    "trial",
    "verified",
    "vip",
    "web",
];
const WORDS: &[&str] = &[
    "the", "replica", "quorum", "ring", "token", "sibling", "context", "merge", "hint", "repair",
    "document", "index", "range", "page", "query", "cluster", "node", "write", "read", "vector",
    "clock", "gossip", "stream", "batch", "commit", "ledger", "order", "shipment", "invoice",
    "customer", "account", "balance", "and", "of", "with", "without", "before", "after", "every",
    "some", "none", "quickly", "slowly", "again", "once", "twice", "north", "south", "east",
    "west",
];

/// The query benchmark's data set: `records` documents drawn with `seed`.
#[derive(Clone, Debug)]
pub struct Dataset {
    records: u64,
    seed: u64,
    g10: Shuffle,
    g100: Shuffle,
    score: Shuffle,
    status: Shuffle,
}

impl Dataset {
    /// The data set of `records` documents for `seed`; `records` must be within
    /// `MIN_RECORDS..=MAX_RECORDS`.
    pub fn new(records: u64, seed: u64) -> anyhow::Result<Self> {
        if !(MIN_RECORDS..=MAX_RECORDS).contains(&records) {
            bail!("--records must be between {MIN_RECORDS} and {MAX_RECORDS} for the query data, not {records}");
        }
        let shuffle = |fraction, salt| Shuffle::new(records, fraction, hash(seed, salt));
        Ok(Dataset {
            records,
            seed,
            g10: shuffle(0.618_033_988_749_895, 1),
            g100: shuffle(0.414_213_562_373_095, 2),
            score: shuffle(0.732_050_807_568_877, 3),
            status: shuffle(0.718_281_828_459_045, 4),
        })
    }

    /// Documents in the data set.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The key of record `i`.
    pub fn key(i: u64) -> String {
        format!("doc{i:08}")
    }

    /// The `g10` group of record `i`.
    pub fn g10_group(&self, i: u64) -> u64 {
        block(
            self.g10.apply(i),
            self.records,
            groups(self.records, G10_SIZE),
        )
    }

    /// The `g100` group of record `i`.
    pub fn g100_group(&self, i: u64) -> u64 {
        block(
            self.g100.apply(i),
            self.records,
            groups(self.records, G100_SIZE),
        )
    }

    /// The integer part of record `i`'s score: each of `0..records` exactly once.
    pub fn score_rank(&self, i: u64) -> u64 {
        self.score.apply(i)
    }

    /// The status of record `i`.
    pub fn status(&self, i: u64) -> &'static str {
        let m = STATUSES.len() as u64;
        STATUSES[block(self.status.apply(i), self.records, m) as usize]
    }

    /// The document of record `i` (`i < records`).
    pub fn document(&self, i: u64) -> Value {
        let mut rng = Mix(hash(self.seed, i.wrapping_add(1 << 40)));
        let fraction = rng.below(10_000) as f64 / 10_000.0;
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let (city, country) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let mut tags: Vec<&str> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let t = rng.pick(TAGS);
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let mut doc = json!({
            "g10": g10_value(self.g10_group(i)),
            "g100": g100_value(self.g100_group(i)),
            "score": self.score_rank(i) as f64 + fraction,
            "status": self.status(i),
            "name": format!("{first} {last}"),
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), rng.below(1000)),
            "age": 18 + rng.below(72),
            "created": format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                15 + rng.below(10),
                1 + rng.below(12),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60)
            ),
            "address": {
                "street": format!("{} {}", 1 + rng.below(300), rng.pick(STREETS)),
                "city": city,
                "zip": format!("{:05}", rng.below(100_000)),
                "country": country,
            },
            "tags": tags,
            "bio": "",
        });
        // The bio is plain ASCII without escapes, so each byte of it is one byte of JSON.
        let target = 992 + rng.below(64) as usize;
        let mut len = serde_json::to_vec(&doc).map_or(0, |v| v.len());
        let mut bio = String::new();
        while len < target {
            let word = rng.pick(WORDS);
            let sep = usize::from(!bio.is_empty());
            if len + sep + word.len() > target + 8 {
                break;
            }
            if sep == 1 {
                bio.push(' ');
            }
            bio.push_str(word);
            len += sep + word.len();
        }
        doc["bio"] = Value::String(bio);
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shuffles_are_bijections_for_awkward_sizes() {
        for n in [1u64, 2, 7, 10, 100, 101, 1000, 1024, 4096, 9973] {
            let s = Shuffle::new(n, 0.618_033_988_749_895, 12_345);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = s.apply(x);
                assert!(!seen[y as usize], "n {n}: {y} twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_documents_and_another_seed_others() {
        let a = Dataset::new(10_000, 7).unwrap();
        let b = Dataset::new(10_000, 7).unwrap();
        let c = Dataset::new(10_000, 8).unwrap();
        let mut differ = 0;
        for i in (0..10_000).step_by(97) {
            assert_eq!(a.document(i), b.document(i), "record {i}");
            differ += usize::from(a.document(i) != c.document(i));
        }
        assert!(differ > 100, "another seed changes the documents: {differ}");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(Dataset::new(99, 1).is_err());
        assert!(Dataset::new(MAX_RECORDS + 1, 1).is_err());
        assert!(Dataset::new(MIN_RECORDS, 1).is_ok());
    }

    #[test]
    fn keys_are_zero_padded() {
        assert_eq!(Dataset::key(42), "doc00000042");
        assert_eq!(Dataset::key(123_456_789), "doc123456789");
    }

    /// What a data set holds, read from its serialized documents.
    #[derive(Default)]
    struct Census {
        /// Documents per value of each string path.
        by_value: HashMap<&'static str, HashMap<String, u64>>,
        /// Serialized document sizes in bytes.
        sizes: Vec<usize>,
        /// Every score, in record order.
        scores: Vec<f64>,
    }

    fn census(records: u64, seed: u64) -> Census {
        let d = Dataset::new(records, seed).unwrap();
        let mut c = Census::default();
        for i in 0..records {
            let doc = d.document(i);
            c.sizes.push(serde_json::to_vec(&doc).unwrap().len());
            for path in ["g10", "g100", "status"] {
                let v = doc[path].as_str().unwrap().to_owned();
                *c.by_value.entry(path).or_default().entry(v).or_default() += 1;
            }
            c.scores.push(doc["score"].as_f64().unwrap());
        }
        c
    }

    #[test]
    fn fields_have_the_selectivity_the_queries_need() {
        let n = 100_000;
        let mut c = census(n, 3);
        let (g10, g100, status) = (
            &c.by_value["g10"],
            &c.by_value["g100"],
            &c.by_value["status"],
        );
        assert_eq!(g10.len() as u64, n / 10);
        assert!(
            g10.values().all(|&c| c == 10),
            "every g10 value names 10 documents"
        );
        assert_eq!(g100.len() as u64, n / 100);
        assert!(g100.values().all(|&c| c == 100));
        let active = status["active"] as f64 / n as f64;
        assert!((0.19..=0.21).contains(&active), "active share {active}");
        assert_eq!(status.values().sum::<u64>(), n);
        assert_eq!(status.len(), 4);
        let (lo, hi) = (c.sizes.iter().min().unwrap(), c.sizes.iter().max().unwrap());
        assert!(
            *lo >= 950 && *hi <= 1100,
            "documents of about 1 KiB: {lo}..{hi}"
        );
        c.scores.sort_by(f64::total_cmp);
        for (rank, s) in c.scores.iter().enumerate() {
            assert_eq!(s.floor() as usize, rank, "scores spread one per unit: {s}");
        }
    }

    #[test]
    fn odd_sizes_keep_groups_about_the_same() {
        let n = 12_345;
        let c = census(n, 9);
        let (g10, g100) = (&c.by_value["g10"], &c.by_value["g100"]);
        assert_eq!(g10.len() as u64, groups(n, G10_SIZE));
        assert!(
            g10.values().all(|&c| c == 10 || c == 11),
            "{:?}",
            g10.values().max()
        );
        assert!(g100.values().all(|&c| c == 100 || c == 101));
    }

    #[test]
    fn fields_are_not_nested_in_each_other_nor_in_key_order() {
        let d = Dataset::new(100_000, 4).unwrap();
        let mut g100_of_g10 = HashMap::<u64, std::collections::HashSet<u64>>::new();
        let mut neighbours_apart = 0;
        for i in 0..100_000 {
            g100_of_g10
                .entry(d.g10_group(i))
                .or_default()
                .insert(d.g100_group(i));
            neighbours_apart += u64::from(d.g10_group(i) != d.g10_group(i + 1));
        }
        let spread = g100_of_g10.values().filter(|s| s.len() > 1).count();
        assert!(
            spread > 9_000,
            "a g10 group spans several g100 groups: {spread}"
        );
        assert!(neighbours_apart > 99_000, "{neighbours_apart}");
    }

    #[test]
    fn documents_have_nested_and_array_fields() {
        let d = Dataset::new(1_000, 1).unwrap();
        for i in 0..1_000 {
            let doc = d.document(i);
            assert!(doc["address"]["city"].is_string(), "{doc}");
            let tags = doc["tags"].as_array().unwrap();
            assert!((1..=4).contains(&tags.len()));
            let score = doc["score"].as_f64().unwrap();
            assert!((0.0..1_000.0).contains(&score));
        }
    }

    #[test]
    fn block_sizes_match_counting() {
        for (n, m) in [
            (100, 10),
            (105, 10),
            (2_000, 200),
            (1_999, 199),
            (12_345, 1_234),
        ] {
            for r in 0..m {
                let counted = (0..n).filter(|&p| block(p, n, m) == r).count() as u64;
                assert_eq!(block_size(n, m, r), counted, "n {n} m {m} r {r}");
                assert!(
                    counted == n / m || counted == n / m + 1,
                    "n {n} m {m} r {r}"
                );
            }
        }
    }
}
