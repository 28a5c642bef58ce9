//! Replica scans and aggregations: full scans, index scans and their agreement.

use super::*;
use crate::clock::ManualClock;
use crate::storage::{Durability, MemEngine, Mint, PoolConfig};
use crate::version::CausalContext;
use ringdb_query::statement::parse_conditions;

async fn replica_with(docs: &[(&str, &str)]) -> (Replica, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000));
    let storage = Storage::start_with_clock(
        Arc::new(MemEngine::default()),
        PoolConfig::default(),
        clock.clone(),
    )
    .unwrap();
    for (key, json) in docs {
        let mint = Mint {
            actor: "n1.1".into(),
            context: CausalContext::new(),
            value: Some(Bytes::from(json.to_string())),
            timestamp_ms: 1,
            expires_ms: key.starts_with("ttl").then_some(2_000),
        };
        storage
            .mint("c", key, mint, Durability::Memory)
            .await
            .unwrap();
    }
    (Replica::new(storage, clock.clone()), clock)
}

fn all() -> Vec<(Token, Token)> {
    vec![(Token::MIN, Token::MAX)]
}

fn keys(a: &ScanAnswer) -> Vec<&str> {
    a.candidates.iter().map(|c| c.key.as_str()).collect()
}

#[tokio::test]
async fn a_scan_reports_the_first_matches_in_key_order_and_says_when_it_stopped() {
    let docs: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("k{i:02}"),
                format!(r#"{{"n": {i}, "even": {}}}"#, i % 2 == 0),
            )
        })
        .collect();
    let docs: Vec<(&str, &str)> = docs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (r, _) = replica_with(&docs).await;
    let q = |after: Option<&str>, limit| ScanQuery {
        collection: "c".into(),
        filter: parse_conditions("even = true").unwrap(),
        order: Order::Key,
        ranges: all(),
        after: after.map(|k| Position::new(None, k)),
        limit,
    };
    let a = r.scan(q(None, 3)).await.unwrap();
    assert_eq!(keys(&a), ["k00", "k02", "k04"]);
    assert!(a.stopped);
    assert_eq!(a.scanned, 40);
    let a = r.scan(q(Some("k33"), 10)).await.unwrap();
    assert_eq!(keys(&a), ["k34", "k36", "k38"]);
    assert!(!a.stopped, "exactly the rest");
    let a = r.scan(q(Some("k35"), 3)).await.unwrap();
    assert_eq!(keys(&a), ["k36", "k38"]);
    assert!(!a.stopped);
}

#[tokio::test]
async fn expired_and_unparsable_documents_are_handled_not_skipped_silently() {
    let (r, clock) = replica_with(&[("a", r#"{"x": 1}"#), ("ttl1", r#"{"x": 1}"#)]).await;
    let q = ScanQuery {
        collection: "c".into(),
        filter: parse_conditions("x = 1").unwrap(),
        order: Order::Key,
        ranges: all(),
        after: None,
        limit: 10,
    };
    assert_eq!(keys(&r.scan(q.clone()).await.unwrap()), ["a", "ttl1"]);
    clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(
        keys(&r.scan(q.clone()).await.unwrap()),
        ["a"],
        "expired reads as deleted"
    );
    let spec = AggregateSpec::count_all();
    let agg = r
        .aggregate("c", q.filter.clone(), &all(), spec)
        .await
        .unwrap();
    assert_eq!(agg.matched, 1);
    assert_eq!(
        agg.partial.finish_count().unwrap(),
        serde_json::json!({"count": 1})
    );
    // A stored entry that is not a sibling set fails the scan.
    let bad = crate::storage::storage_key(crate::ring::token_for("c", "bad"), "c", "bad");
    r.storage
        .run(move |e| e.put(&bad, b"garbage").map(|_| ()))
        .await
        .unwrap();
    let e = r.scan(q).await.unwrap_err();
    assert!(
        matches!(&e, Error::Internal(m) if m.contains("bad")),
        "{e:?}"
    );
}

/// A small deterministic generator (xorshift), so the agreement test needs no seed crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn scalar(&mut self) -> serde_json::Value {
        use serde_json::json;
        match self.below(6) {
            0 | 1 => json!(self.below(12)),
            2 => json!(self.below(12) as f64 + 0.5),
            3 => json!(["x", "y", "z"][self.below(3) as usize]),
            4 => json!(self.below(2) == 0),
            _ => serde_json::Value::Null,
        }
    }

    fn doc(&mut self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if self.below(5) > 0 {
            m.insert("a".into(), self.scalar());
        }
        if self.below(3) > 0 {
            let n = self.below(4);
            let t = (0..n).map(|_| self.scalar()).collect();
            m.insert("t".into(), serde_json::Value::Array(t));
        }
        m.insert("b".into(), serde_json::json!(self.below(2) == 0));
        serde_json::Value::Object(m)
    }
}

/// Every page of a scan with `limit`, as (key, position) in the order reported.
async fn paged(r: &Replica, q: &ScanQuery, limit: usize) -> (Vec<(String, Position)>, String) {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let a = r
            .scan(ScanQuery {
                after: after.clone(),
                limit,
                ..q.clone()
            })
            .await
            .unwrap();
        out.extend(
            a.candidates
                .iter()
                .map(|c| (c.key.clone(), c.position.clone())),
        );
        if !a.stopped {
            return (out, a.source);
        }
        after = a.candidates.last().map(|c| c.position.clone());
    }
}

#[tokio::test]
async fn index_scans_and_index_folds_agree_with_full_scans_and_brute_force() {
    use crate::storage::BuildPace;
    let mut g = Gen(0x5eed_1234_abcd_0001);
    let mut docs: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for i in 0..200 {
        // Every other key gets a concurrent second version: siblings, both indexed, often
        // only one of them matching.
        let n = if g.below(2) == 0 { 2 } else { 1 };
        docs.push((format!("k{i:03}"), (0..n).map(|_| g.doc()).collect()));
    }
    let clock = Arc::new(ManualClock::new(1_000));
    let storage = Storage::start_with_clock(
        Arc::new(MemEngine::default()),
        PoolConfig::default(),
        clock.clone(),
    )
    .unwrap();
    let upkeep = tokio::spawn(storage.clone().run_index_upkeep(BuildPace {
        batch: 64,
        keys_per_sec: 0,
    }));
    for (key, versions) in &docs {
        for v in versions {
            let mint = Mint {
                actor: "n1.1".into(),
                context: CausalContext::new(),
                value: Some(Bytes::from(v.to_string())),
                timestamp_ms: 1,
                expires_ms: None,
            };
            storage
                .mint("c", key, mint, Durability::Memory)
                .await
                .unwrap();
        }
    }
    let indexed = [Path::parse("a").unwrap(), Path::parse("t[]").unwrap()];
    storage.indexes().define(&[
        ("c".to_string(), indexed[0].clone()),
        ("c".to_string(), indexed[1].clone()),
    ]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while indexed
        .iter()
        .any(|p| storage.indexes().state_of("c", p) != Some(IndexState::Ready))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "indexes never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let r = Replica::new(storage.clone(), clock);
    let halves = [
        vec![(Token::MIN, Token::MAX)],
        vec![(Token::MIN, -1)],
        vec![(0, Token::MAX / 2), (Token::MAX / 2 + 1, Token::MAX)],
    ];
    let queries = [
        "a = 5",
        "a >= 3 AND a < 9",
        r#"a IN (1, 2.5, "x", null)"#,
        "a != 4 AND b = true",
        "a > 1 AND b = true",
        "t[] > 0 AND b = false",
        "a EXISTS",
        "t[] > 2",
        r#"t[] = "y" AND a EXISTS"#,
        "t[] <= 6.5 AND b = false",
        "a > \"w\"",
    ];
    for text in queries {
        let filter = parse_conditions(text).unwrap();
        for ranges in &halves {
            let q = ScanQuery {
                collection: "c".into(),
                filter: filter.clone(),
                order: Order::Condition(0),
                ranges: ranges.clone(),
                after: None,
                limit: 0,
            };
            // The reference: the same order and page size by a full scan. (A document with
            // several positions, through siblings or array elements, is reported again after
            // a resume point that lies between them, by both: the coordinator keeps it once.)
            for limit in [1, 7, 1000] {
                let mut full = Vec::new();
                let mut after = None;
                loop {
                    let (c, stopped, _) = r
                        .full_first(
                            ScanQuery {
                                after: after.clone(),
                                ..q.clone()
                            },
                            limit,
                        )
                        .await
                        .unwrap();
                    full.extend(c.iter().map(|c| (c.key.clone(), c.position.clone())));
                    if !stopped {
                        break;
                    }
                    after = c.last().map(|c| c.position.clone());
                }
                let (by_index, source) = paged(&r, &q, limit).await;
                assert!(source.starts_with("index on"), "{text}: {source}");
                assert_eq!(by_index, full, "{text} in {ranges:?}, limit {limit}");
            }
            let (full, _) = paged(&r, &q, 1000).await;
            // Brute force over the documents written: which keys match in these ranges.
            let expected: Vec<&str> = docs
                .iter()
                .filter(|(k, vs)| {
                    let t = token_for("c", k);
                    ranges.iter().any(|&(a, b)| a <= t && t <= b) && filter.matches(vs)
                })
                .map(|(k, _)| k.as_str())
                .collect();
            let mut got: Vec<&str> = full.iter().map(|(k, _)| k.as_str()).collect();
            got.sort();
            got.dedup();
            assert_eq!(got, expected, "{text} in {ranges:?}");
            let agg = r
                .aggregate("c", filter.clone(), ranges, AggregateSpec::count_all())
                .await
                .unwrap();
            assert!(agg.source.starts_with("index on"), "{}", agg.source);
            assert_eq!(agg.matched, expected.len() as u64, "COUNT {text}");
            assert_eq!(
                agg.partial.finish_count().unwrap(),
                serde_json::json!({"count": expected.len()})
            );
        }
    }
    // An index this replica does not hold (or not yet ready) is answered by a full scan.
    let q = ScanQuery {
        collection: "c".into(),
        filter: parse_conditions("b = true").unwrap(),
        order: Order::Condition(0),
        ranges: halves[0].clone(),
        after: None,
        limit: 10,
    };
    let a = r.scan(q).await.unwrap();
    assert!(
        a.source.starts_with("full scan (no index on c (b)"),
        "{}",
        a.source
    );
    assert_eq!(a.candidates.len(), 10);
    upkeep.abort();
}
