//! The query benchmark's queries: which value query `i` of each kind looks up, how many rows
//! it must return, and how it reads in RingDB's shell and in PostgreSQL.
//!
//! Query `i` of a kind is a pure function of (`records`, kind, `i`), never of the data set's
//! seed, so both systems ask the same questions. Client `c` of `C` runs queries `c`, `c + C`,
//! `c + 2C`, ...: the pgbench scripts below compute `i` that way from pgbench's `:client_id`
//! and a per-client counter `:n`, and the map from `i` to the value is the same [`Shuffle`]
//! written as a pgbench expression, so pgbench sends exactly the queries [`Queries::nth`]
//! names (`bench/queries.py --self-check` verifies it row by row).
//!
//! Invariants:
//! - every query names a value that some document holds, and [`Queries::expected_rows`] is
//!   exactly the number of rows it returns (see [`crate::querydata`] for why counts are exact);
//! - the PostgreSQL text of a query and the index definitions use the same expressions, so
//!   the planner can use the indexes.

use serde_json::{json, Value};

use crate::querydata::{
    block_size, g100_value, g10_value, groups, Dataset, Shuffle, G100_PREFIX, G100_SIZE,
    G10_PREFIX, G10_SIZE, STATUSES,
};

/// How many documents a range query returns.
pub const RANGE_LIMIT: u64 = 100;

/// The table PostgreSQL holds the documents in: `docs(key text primary key, doc jsonb)`.
pub const PG_TABLE: &str = "docs";

const PG_G10: &str = "(doc->>'g10')";
const PG_G100: &str = "(doc->>'g100')";
const PG_SCORE: &str = "((doc->>'score')::float8)";
const PG_STATUS: &str = "(doc->>'status')";

/// The paths the benchmark indexes, each with its PostgreSQL expression index.
pub const INDEXES: [(&str, &str); 4] = [
    ("g10", PG_G10),
    ("g100", PG_G100),
    ("score", PG_SCORE),
    ("status", PG_STATUS),
];

/// One kind of query the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryKind {
    /// Indexed equality returning about 10 documents (`g10 = v`).
    Eq10,
    /// Indexed equality returning about 100 documents (`g100 = v`).
    Eq100,
    /// Indexed range `score >= x`, in score order, `LIMIT 100`.
    Range,
    /// `COUNT` with a filter (`status = "active"`, 20% of the documents).
    Count,
}

impl QueryKind {
    /// Every kind, in the order the benchmark reports them.
    pub const ALL: [QueryKind; 4] = [
        QueryKind::Eq10,
        QueryKind::Eq100,
        QueryKind::Range,
        QueryKind::Count,
    ];

    /// The kind's name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Eq10 => "eq10",
            QueryKind::Eq100 => "eq100",
            QueryKind::Range => "range",
            QueryKind::Count => "count",
        }
    }

    /// What the kind measures, for tables.
    pub fn label(self) -> &'static str {
        match self {
            QueryKind::Eq10 => "indexed equality, ~10 documents",
            QueryKind::Eq100 => "indexed equality, ~100 documents",
            QueryKind::Range => "indexed range, LIMIT 100",
            QueryKind::Count => "COUNT with a filter (20%)",
        }
    }

    /// The indexed path the kind's condition is on.
    pub fn path(self) -> &'static str {
        match self {
            QueryKind::Eq10 => "g10",
            QueryKind::Eq100 => "g100",
            QueryKind::Range => "score",
            QueryKind::Count => "status",
        }
    }
}

/// One query: its kind, its number and the group or threshold it looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// What kind of query this is.
    pub kind: QueryKind,
    /// Its number in the kind's sequence.
    pub i: u64,
    /// The `g10`/`g100` group, the score threshold, or 0 for `count`.
    pub param: u64,
}

impl Query {
    /// The JSON value the condition compares the path with.
    pub fn value(&self) -> Value {
        match self.kind {
            QueryKind::Eq10 => Value::String(g10_value(self.param)),
            QueryKind::Eq100 => Value::String(g100_value(self.param)),
            QueryKind::Range => json!(self.param),
            QueryKind::Count => Value::String(STATUSES[0].to_owned()),
        }
    }

    /// The comparison of the condition.
    pub fn op(&self) -> &'static str {
        match self.kind {
            QueryKind::Range => ">=",
            _ => "=",
        }
    }

    /// The `LIMIT` of the query, if it has one.
    pub fn limit(&self) -> Option<u64> {
        (self.kind == QueryKind::Range).then_some(RANGE_LIMIT)
    }

    /// The query as a RingDB shell statement on `collection`.
    pub fn ringsh(&self, collection: &str) -> String {
        let cond = format!("{} {} {}", self.kind.path(), self.op(), self.value());
        match (self.kind, self.limit()) {
            (QueryKind::Count, _) => format!("COUNT {collection} WHERE {cond}"),
            (_, Some(limit)) => format!("FIND {collection} WHERE {cond} LIMIT {limit}"),
            (_, None) => format!("FIND {collection} WHERE {cond}"),
        }
    }

    /// The query as the SQL text pgbench sends for it.
    pub fn sql(&self) -> String {
        sql(self.kind, &self.param.to_string())
    }
}

/// The SQL of `kind` with `param` (a number or a pgbench variable) spliced in.
fn sql(kind: QueryKind, param: &str) -> String {
    match kind {
        QueryKind::Eq10 => format!(
            "SELECT key, doc FROM {PG_TABLE} WHERE {PG_G10} = ('{G10_PREFIX}' || ({param})::text)"
        ),
        QueryKind::Eq100 => format!(
            "SELECT key, doc FROM {PG_TABLE} WHERE {PG_G100} = ('{G100_PREFIX}' || ({param})::text)"
        ),
        QueryKind::Range => format!(
            "SELECT key, doc FROM {PG_TABLE} WHERE {PG_SCORE} >= ({param})::float8 \
             ORDER BY {PG_SCORE}, key LIMIT {RANGE_LIMIT}"
        ),
        QueryKind::Count => format!(
            "SELECT count(*) FROM {PG_TABLE} WHERE {PG_STATUS} = '{}'",
            STATUSES[0]
        ),
    }
}

/// The queries over a data set of `records` documents (of any seed).
#[derive(Clone, Debug)]
pub struct Queries {
    records: u64,
    eq10: Shuffle,
    eq100: Shuffle,
    range: Shuffle,
}

impl Queries {
    /// The queries for the data set `data` describes (its size only).
    pub fn new(data: &Dataset) -> Self {
        let records = data.records();
        Queries {
            records,
            eq10: Shuffle::new(groups(records, G10_SIZE), 0.236_067_977_499_79, 0),
            eq100: Shuffle::new(groups(records, G100_SIZE), 0.645_751_311_064_59, 0),
            // Thresholds 0..=records-100: each leaves at least 100 scores at or above it.
            range: Shuffle::new(records - RANGE_LIMIT + 1, 0.316_624_790_355_4, 0),
        }
    }

    /// Query `i` of `kind`.
    pub fn nth(&self, kind: QueryKind, i: u64) -> Query {
        let param = match kind {
            QueryKind::Eq10 => self.eq10.apply(i),
            QueryKind::Eq100 => self.eq100.apply(i),
            QueryKind::Range => self.range.apply(i),
            QueryKind::Count => 0,
        };
        Query { kind, i, param }
    }

    /// The rows `query` returns: the documents of its group, `LIMIT` rows, or one count.
    pub fn expected_rows(&self, query: &Query) -> u64 {
        let n = self.records;
        match query.kind {
            QueryKind::Eq10 => block_size(n, groups(n, G10_SIZE), query.param),
            QueryKind::Eq100 => block_size(n, groups(n, G100_SIZE), query.param),
            QueryKind::Range => RANGE_LIMIT.min(n - query.param),
            QueryKind::Count => 1,
        }
    }

    /// The number `COUNT` answers: how many documents are active.
    pub fn expected_count(&self) -> u64 {
        let m = STATUSES.len() as u64;
        (0..m)
            .filter(|&r| STATUSES[r as usize] == STATUSES[0])
            .map(|r| block_size(self.records, m, r))
            .sum()
    }

    /// Query `i` as one JSON object: what a driver needs to run and check it.
    pub fn describe(&self, query: &Query, collection: &str) -> Value {
        json!({
            "i": query.i,
            "kind": query.kind.name(),
            "path": query.kind.path(),
            "op": query.op(),
            "value": query.value(),
            "limit": query.limit(),
            "expected_rows": self.expected_rows(query),
            "expected_count": (query.kind == QueryKind::Count).then(|| self.expected_count()),
            "ringsh": query.ringsh(collection),
            "sql": query.sql(),
        })
    }

    /// The pgbench script running `kind`'s queries in sequence; run it with `-D n=0
    /// -D clients=C` and `-c C`. With `check`, each query's rows (keys, or the count) go to
    /// table `query_check(i bigint, result jsonb)` instead of back to the client.
    pub fn pgbench_script(&self, kind: QueryKind, check: bool) -> String {
        let mut s = format!(
            "-- ringdb-bench querydata: {}, {} records.\n\
             -- Client c of C runs queries c, c + C, c + 2C, ...: run with -c C -D clients=C -D n=0.\n\
             \\set i :n * :clients + :client_id\n",
            kind.label(),
            self.records
        );
        let param = match kind {
            QueryKind::Eq10 => Some(self.eq10.pgbench("i")),
            QueryKind::Eq100 => Some(self.eq100.pgbench("i")),
            QueryKind::Range => Some(self.range.pgbench("i")),
            QueryKind::Count => None,
        };
        if let Some(expr) = &param {
            s.push_str(&format!("\\set p {expr}\n"));
        }
        let query = sql(kind, ":p");
        if check {
            s.push_str(&format!(
                "INSERT INTO query_check (i, result) SELECT (:i)::bigint, \
                 coalesce(jsonb_agg(to_jsonb(q) - 'doc'), '[]') FROM ({query}) q;\n"
            ));
        } else {
            s.push_str(&format!("{query};\n"));
        }
        s.push_str("\\set n :n + 1\n");
        s
    }

    /// The PostgreSQL expression indexes on the benchmark's paths.
    pub fn pg_indexes() -> Vec<String> {
        INDEXES
            .iter()
            .map(|(path, expr)| format!("CREATE INDEX {PG_TABLE}_{path} ON {PG_TABLE} ({expr})"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_query_names_existing_values_and_knows_its_answer_size() {
        for records in [2_000u64, 12_345, 30_000] {
            let data = Dataset::new(records, 5).unwrap();
            let queries = Queries::new(&data);
            // Brute force over the documents themselves.
            let mut by_value = HashMap::<(&str, String), u64>::new();
            let mut scores = Vec::new();
            for i in 0..records {
                let doc = data.document(i);
                for path in ["g10", "g100", "status"] {
                    let v = doc[path].as_str().unwrap().to_owned();
                    *by_value.entry((path, v)).or_default() += 1;
                }
                scores.push(doc["score"].as_f64().unwrap());
            }
            scores.sort_by(f64::total_cmp);
            let active = by_value[&("status", "active".to_owned())];
            assert_eq!(queries.expected_count(), active, "{records} records");
            for i in 0..1_000 {
                for (kind, sizes) in [(QueryKind::Eq10, 10..=11), (QueryKind::Eq100, 100..=101)] {
                    let q = queries.nth(kind, i);
                    let key = (kind.path(), q.value().as_str().unwrap().to_owned());
                    let expected = queries.expected_rows(&q);
                    assert_eq!(by_value.get(&key), Some(&expected), "{q:?}");
                    assert!(sizes.contains(&expected), "{q:?}: {expected}");
                }
                let q = queries.nth(QueryKind::Range, i);
                let x = q.value().as_f64().unwrap();
                let matching: Vec<f64> = scores.iter().copied().filter(|&s| s >= x).collect();
                assert!(matching.len() as u64 >= RANGE_LIMIT, "{q:?}");
                assert_eq!(queries.expected_rows(&q), RANGE_LIMIT);
                // The first page is the 100 scores whose integer part is x..x+100.
                assert_eq!(matching[0].floor(), x);
                assert_eq!(matching[99].floor(), x + 99.0);
            }
        }
    }

    #[test]
    fn queries_do_not_depend_on_the_seed_and_spread_over_the_groups() {
        let a = Queries::new(&Dataset::new(100_000, 1).unwrap());
        let b = Queries::new(&Dataset::new(100_000, 2).unwrap());
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            assert_eq!(a.nth(QueryKind::Eq10, i), b.nth(QueryKind::Eq10, i));
            seen.insert(a.nth(QueryKind::Eq10, i).param);
        }
        assert_eq!(
            seen.len(),
            10_000,
            "the first 10,000 queries hit 10,000 groups"
        );
    }

    #[test]
    fn statements_read_like_the_shell_and_sql() {
        let q = Queries::new(&Dataset::new(1_000_000, 1).unwrap());
        let eq = q.nth(QueryKind::Eq10, 3);
        assert_eq!(
            eq.ringsh("docs"),
            format!("FIND docs WHERE g10 = \"a{}\"", eq.param)
        );
        assert_eq!(
            eq.sql(),
            format!(
                "SELECT key, doc FROM docs WHERE (doc->>'g10') = ('a' || ({})::text)",
                eq.param
            )
        );
        let r = q.nth(QueryKind::Range, 3);
        assert_eq!(
            r.ringsh("docs"),
            format!("FIND docs WHERE score >= {} LIMIT 100", r.param)
        );
        let c = q.nth(QueryKind::Count, 3);
        assert_eq!(c.ringsh("docs"), "COUNT docs WHERE status = \"active\"");
        assert_eq!(q.expected_count(), 200_000);
    }

    #[test]
    fn pgbench_scripts_compute_i_and_the_parameter() {
        let q = Queries::new(&Dataset::new(200_000, 1).unwrap());
        let s = q.pgbench_script(QueryKind::Eq100, false);
        assert!(s.contains("\\set i :n * :clients + :client_id\n"), "{s}");
        assert!(
            s.contains(&format!("\\set p {}\n", q.eq100.pgbench("i"))),
            "{s}"
        );
        assert!(s.contains("(doc->>'g100') = ('b' || (:p)::text);\n"), "{s}");
        assert!(s.ends_with("\\set n :n + 1\n"));
        let c = q.pgbench_script(QueryKind::Count, true);
        assert!(c.contains("INSERT INTO query_check"), "{c}");
        assert!(!c.contains("\\set p"), "{c}");
    }

    #[test]
    fn the_pgbench_expression_is_the_shuffle() {
        // Evaluate the rendered expression the way pgbench does (64-bit integers).
        let s = Shuffle::new(20_000, 0.236_067_977_499_79, 0);
        let text = s.pgbench("i");
        let nums: Vec<i64> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        let [n, mul, add, n2] = nums[..] else {
            panic!("{text}")
        };
        assert_eq!(n, n2);
        for i in [0i64, 1, 2, 19_999, 20_000, 123_456_789] {
            let v = ((i % n).checked_mul(mul).unwrap() + add) % n;
            assert_eq!(v as u64, s.apply(i as u64), "{text} at {i}");
        }
    }
}
