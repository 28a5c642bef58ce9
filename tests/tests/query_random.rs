//! Randomized queries against a real cluster, compared with brute force: random documents
//! (nested fields, arrays, mixed types, missing fields, some deleted) and random FIND,
//! COUNT and AGGREGATE statements from the grammar, at ONE and QUORUM, each answer checked
//! against `ringdb-query` evaluated over the acknowledged documents. Some seeds' collections
//! have secondary indexes, so their queries are served by the indexes and ordered by the
//! first indexed condition; the others are answered by full scans in key order.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringdb_client::{Client, Consistency, WriteOptions};
use ringdb_query::aggregate::{Arg, Func};
use ringdb_query::{
    aggregate_documents, order, AggregateSpec, Aggregation, Condition, Filter, Op, Order, Path,
    Projection,
};
use ringdb_tests::Cluster;
use serde_json::{json, Value};

const SEEDS: [u64; 3] = [7, 1234, 99_001];
/// The paths indexed in the collections of seeds 7 and 99,001.
const INDEXED: [&str; 3] = ["a", "tags[]", "b.c"];
const DOCUMENTS: usize = 240;
const QUERIES: usize = 14;

fn scalar(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..7) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => json!(rng.gen_range(-3i64..8)),
        3 => json!(rng.gen_range(-3i64..8) as f64 + 0.5),
        4 => json!(rng.gen_range(0i64..5) as f64),
        _ => json!(["a", "b", "c", "ab", ""][rng.gen_range(0..5)]),
    }
}

fn document(rng: &mut StdRng, i: usize) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("i".into(), json!(i));
    if rng.gen_bool(0.8) {
        doc.insert("a".into(), scalar(rng));
    }
    if rng.gen_bool(0.7) {
        let mut b = serde_json::Map::new();
        if rng.gen_bool(0.8) {
            b.insert("c".into(), scalar(rng));
        }
        doc.insert("b".into(), Value::Object(b));
    } else if rng.gen_bool(0.3) {
        doc.insert("b".into(), scalar(rng));
    }
    if rng.gen_bool(0.7) {
        let n = rng.gen_range(0..4);
        doc.insert(
            "tags".into(),
            Value::Array((0..n).map(|_| scalar(rng)).collect()),
        );
    }
    if rng.gen_bool(0.5) {
        doc.insert(
            "first name".into(),
            json!(["ann", "bob", "cy"][rng.gen_range(0..3)]),
        );
    }
    Value::Object(doc)
}

const PATHS: [&str; 6] = ["a", "b.c", "tags[]", "b", "\"first name\"", "missing"];

fn condition(rng: &mut StdRng) -> Condition {
    let path = Path::parse(PATHS[rng.gen_range(0..PATHS.len())]).unwrap();
    let op = match rng.gen_range(0..8) {
        0 => Op::Eq(scalar(rng)),
        1 => Op::Ne(scalar(rng)),
        2 => Op::Lt(scalar(rng)),
        3 => Op::Le(scalar(rng)),
        4 => Op::Gt(scalar(rng)),
        5 => Op::Ge(scalar(rng)),
        6 => Op::In((0..rng.gen_range(1..4)).map(|_| scalar(rng)).collect()),
        _ => Op::Exists,
    };
    Condition::new(path, op).unwrap()
}

fn filter(rng: &mut StdRng) -> Filter {
    let n = rng.gen_range(0..3);
    Filter::new((0..n).map(|_| condition(rng)).collect())
}

fn spec(rng: &mut StdRng) -> AggregateSpec {
    let mut aggs = vec![Aggregation::new(Func::Count, Arg::Star).unwrap()];
    for f in [Func::Count, Func::Sum, Func::Avg, Func::Min, Func::Max] {
        if rng.gen_bool(0.4) {
            let p = Path::parse(["a", "b.c", "tags[]", "i"][rng.gen_range(0..4)]).unwrap();
            aggs.push(Aggregation::new(f, Arg::Path(p)).unwrap());
        }
    }
    let group_by = rng
        .gen_bool(0.5)
        .then(|| Path::parse(["a", "tags[]", "\"first name\""][rng.gen_range(0..3)]).unwrap());
    AggregateSpec::new(aggs, group_by).unwrap()
}

/// Write the documents at ALL (so every level sees them), delete some; returns what the
/// cluster holds, by key.
async fn load(client: &Client, collection: &str, rng: &mut StdRng) -> BTreeMap<String, Value> {
    let all = WriteOptions::new().consistency(Consistency::All);
    let mut held = BTreeMap::new();
    for i in 0..DOCUMENTS {
        let key = format!("k{:03}", rng.gen_range(0..1000));
        let doc = document(rng, i);
        // A key written twice: the second write replaces the first with its context.
        let opts = match client.get(collection, &key).await.unwrap().context {
            c if c.is_empty() => all.clone(),
            c => all.clone().context(c),
        };
        client
            .put_with(collection, &key, &doc, &opts)
            .await
            .unwrap();
        held.insert(key, doc);
    }
    let doomed: Vec<String> = held.keys().filter(|_| rng.gen_bool(0.1)).cloned().collect();
    for key in doomed {
        client.delete_with(collection, &key, &all).await.unwrap();
        held.remove(&key);
    }
    held
}

/// Wait until every index of `collection` is ready on every node.
async fn wait_ready(client: &Client, collection: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let all = client.indexes(Some(collection)).await.unwrap();
        if all
            .iter()
            .all(|i| i.state == ringdb_client::IndexState::Ready)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "indexes of {collection} never ready: {all:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_queries_answer_like_brute_force_over_the_acknowledged_documents() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let collection = format!("random{seed}");
        let indexed: Vec<Path> = if seed == 1234 {
            Vec::new()
        } else {
            INDEXED.iter().map(|p| Path::parse(p).unwrap()).collect()
        };
        for p in &indexed {
            client
                .create_index(&collection, &p.to_string(), false)
                .await
                .unwrap();
        }
        let held = load(&client, &collection, &mut rng).await;
        wait_ready(&client, &collection).await;
        for q in 0..QUERIES {
            let f = filter(&mut rng);
            let level = if rng.gen_bool(0.5) {
                Consistency::One
            } else {
                Consistency::Quorum
            };
            let what = format!("seed {seed} query {q}: WHERE {f} at {level}");
            // Matching documents in result order: by the first indexed condition's sort
            // value, then key (key alone when no condition is indexed).
            let order = Order::choose(&f, |p| indexed.contains(p));
            let mut expected: Vec<(&String, &Value)> = held
                .iter()
                .filter(|(_, d)| f.matches(std::slice::from_ref(*d)))
                .collect();
            expected.sort_by_cached_key(|(k, d)| {
                order::position(&f, order, k, std::slice::from_ref(*d))
            });

            // FIND, every page, with random FIELDS and page size.
            let fields: Vec<&str> = ["a", "b.c", "tags[]"]
                .into_iter()
                .filter(|_| rng.gen_bool(0.3))
                .collect();
            let page = rng.gen_range(1..40);
            let found = client
                .find(&collection)
                .conditions(&f)
                .fields(&fields)
                .page_size(page)
                .allow_filtering()
                .consistency(level)
                .all()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
            let want: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, want, "{what}: keys (pages of {page})");
            let paths: Vec<Path> = fields.iter().map(|p| Path::parse(p).unwrap()).collect();
            let projection = Projection::new(&paths);
            for (d, (_, doc)) in found.iter().zip(&expected) {
                assert_eq!(d.values, vec![projection.apply(doc)], "{what}: {}", d.key);
                assert!(!d.context.is_empty());
            }

            // COUNT and AGGREGATE equal the same computation over FIND's documents.
            let count = client
                .count(&collection)
                .conditions(&f)
                .allow_filtering()
                .consistency(level)
                .run()
                .await
                .unwrap_or_else(|e| panic!("{what}: COUNT: {e}"));
            assert_eq!(count.count, expected.len() as u64, "{what}: COUNT");
            let s = spec(&mut rng);
            let got = client
                .aggregate(&collection)
                .spec(&s)
                .conditions(&f)
                .allow_filtering()
                .consistency(level)
                .run()
                .await
                .unwrap_or_else(|e| panic!("{what}: AGGREGATE: {e}"));
            let docs: Vec<Vec<Value>> = expected.iter().map(|(_, d)| vec![(*d).clone()]).collect();
            assert_eq!(
                got.to_json(),
                aggregate_documents(&docs, &f, &s),
                "{what}: AGGREGATE {s:?}"
            );
        }
        // The stream and one page agree on the first page, and its token continues it.
        let first = client.find(&collection).page_size(25).page().await.unwrap();
        let rest: Vec<_> = client
            .find(&collection)
            .after(first.next.clone().expect("more than 25 documents"))
            .stream()
            .try_collect()
            .await
            .unwrap();
        let mut keys: Vec<String> = first.documents.iter().map(|d| d.key.clone()).collect();
        keys.extend(rest.into_iter().map(|d| d.key));
        assert_eq!(
            keys,
            held.keys().cloned().collect::<Vec<_>>(),
            "seed {seed}: no conditions"
        );
    }
}
