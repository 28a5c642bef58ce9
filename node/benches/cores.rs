//! Micro-benchmarks of the pure cores on the request path, so regressions show:
//! `cargo bench -p ringdb-node --bench cores`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ringdb_node::merkle::{entry_hash, Leaves};
use ringdb_node::ring::{token_for, Ring};
use ringdb_node::version::{CausalContext, SiblingSet};

fn ring(nodes: usize) -> Ring {
    let mut r = Ring::new(Vec::<(String, Vec<i64>)>::new());
    let mut members: Vec<(String, Vec<i64>)> = Vec::new();
    for i in 0..nodes {
        let id = format!("n{i}");
        let tokens = r.allocate_tokens(&id, 64);
        members.push((id, tokens));
        r = Ring::new(members.clone());
    }
    r
}

fn doc() -> Bytes {
    Bytes::from(format!("{{\"payload\":\"{}\"}}", "x".repeat(1000)))
}

/// A key written by three coordinators concurrently: three siblings.
fn three_siblings() -> SiblingSet {
    let mut s = SiblingSet::new();
    for a in ["n1.7", "n2.3", "n3.9"] {
        s.apply_write(a, &CausalContext::new(), Some(doc()), 1);
    }
    s
}

fn benches(c: &mut Criterion) {
    let r = ring(3);
    c.bench_function("token_for", |b| {
        b.iter(|| token_for(black_box("users"), black_box("user-123456")))
    });
    c.bench_function("preference_list N=3 of 3 nodes x 64 vnodes", |b| {
        let t = token_for("users", "user-123456");
        b.iter(|| r.preference_list(black_box(t), 3).len())
    });
    let r10 = ring(10);
    c.bench_function("preference_list N=3 of 10 nodes x 64 vnodes", |b| {
        let t = token_for("users", "user-123456");
        b.iter(|| r10.preference_list(black_box(t), 3).len())
    });

    let one = {
        let mut s = SiblingSet::new();
        s.apply_write("n1.7", &CausalContext::new(), Some(doc()), 1);
        s
    };
    let encoded_one = Bytes::from(one.encode());
    let three = three_siblings();
    let encoded_three = Bytes::from(three.encode());
    c.bench_function("encode 1 version of 1 KiB", |b| {
        b.iter(|| one.encode().len())
    });
    c.bench_function("decode 1 version of 1 KiB", |b| {
        b.iter(|| SiblingSet::decode(black_box(&encoded_one)).map(|s| s.versions().len()))
    });
    c.bench_function("decode 3 siblings", |b| {
        b.iter(|| SiblingSet::decode(black_box(&encoded_three)).map(|s| s.versions().len()))
    });
    c.bench_function("merge equal sets (replica no-op)", |b| {
        b.iter_batched(
            || one.clone(),
            |mut s| {
                s.merge(black_box(&one));
                s
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("mint over 3 siblings with their context", |b| {
        let ctx = three.context().clone();
        b.iter_batched(
            || three.clone(),
            |mut s| s.apply_write("n1.7", &ctx, Some(doc()), 2),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("merkle entry_hash of a 1 KiB entry", |b| {
        let key = b"\x80\x00\x00\x00\x00\x00\x00\x01users\0user-123456";
        b.iter(|| entry_hash(black_box(key), black_box(&encoded_one)))
    });
    let leaves = Leaves::default();
    c.bench_function("merkle leaf toggle", |b| {
        b.iter(|| leaves.toggle(black_box(1234), black_box(0xdead_beef)))
    });
    c.bench_function("merkle root over 16,384 leaves", |b| {
        b.iter(|| leaves.root())
    });
}

criterion_group!(cores, benches);
criterion_main!(cores);
