//! Topology changes with real processes: a node joins a loaded cluster under write load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::{Client, Consistency, ReadOptions};
use ringdb_tests::Cluster;
use serde_json::json;

async fn write_many(client: &Client, prefix: &str, n: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let client = client.clone();
            let prefix = prefix.to_string();
            async move {
                client
                    .put("docs", &format!("{prefix}{i}"), &json!({"i": i}))
                    .await
                    .expect("preload write");
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_a_loaded_cluster_under_writes_without_losing_any() {
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    write_many(&client, "pre-", 10_000).await;

    // A writer keeps writing at QUORUM through the whole join, recording what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let (mut i, mut errors) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("during-{w}-{i}");
                    match client.put("docs", &key, &json!({"i": i})).await {
                        Ok(_) => acked.lock().unwrap().push(key),
                        Err(_) => errors += 1,
                    }
                    i += 1;
                }
                errors
            })
        })
        .collect();
    cluster.add_node().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = 0;
    for w in writers {
        errors += w.await.unwrap();
    }
    cluster.wait_all_up().await;
    let during = acked.lock().unwrap().clone();
    assert!(
        during.len() > 50,
        "the writer kept writing during the join ({} acked, {errors} failed)",
        during.len()
    );

    // Before any read can repair it: the new node holds every write made during the join
    // for the keys it now replicates (streamed, or sent to it as a pending replica).
    let info = cluster.nodes[3].client().await.ring().await.unwrap();
    let mut owners: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (t, n) in info.tokens {
        owners.entry(n).or_default().push(t);
    }
    let ring = ringdb_node::ring::Ring::new(owners);
    let n4_keys: Vec<&String> = during
        .iter()
        .filter(|k| {
            ring.preference_list(ringdb_node::ring::token_for("docs", k), 3)
                .contains(&"n4")
        })
        .collect();
    let n4_client = cluster.nodes[3].client().await;
    let mut absent = Vec::new();
    for k in &n4_keys {
        if n4_client
            .local_get("docs", k)
            .await
            .unwrap()
            .values
            .is_empty()
        {
            absent.push(k.to_string());
        }
    }
    eprintln!(
        "{} writes acknowledged during the join, {} of them replicated by n4",
        during.len(),
        n4_keys.len()
    );
    assert!(
        absent.is_empty(),
        "n4 lacks {} of {} writes made during its join: {:?}",
        absent.len(),
        n4_keys.len(),
        &absent[..absent.len().min(5)]
    );

    // Every acknowledged document is readable at ALL, now with four nodes.
    let client = cluster.client().await;
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("pre-{i}"))
        .chain(during.iter().cloned())
        .collect();
    let all = ReadOptions::new().consistency(Consistency::All);
    let missing: Vec<String> = futures::stream::iter(keys.clone())
        .map(|k| {
            let (client, all) = (client.clone(), all.clone());
            async move {
                let r = client.get_with("docs", &k, &all).await.expect("ALL read");
                (r.values.len() != 1).then_some(k)
            }
        })
        .buffer_unordered(64)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} acknowledged documents lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // The new node owns its share and holds the data of its ranges.
    let status = cluster.nodes[3].client().await.status().await.unwrap();
    let n4 = status.nodes.iter().find(|n| n.id == "n4").unwrap();
    assert!(
        (0.18..0.32).contains(&n4.ownership),
        "n4 owns {}",
        n4.ownership
    );
    assert_eq!(n4.status, "NORMAL");
    let mut held = 0;
    for k in keys.iter().step_by(50) {
        held += n4_client.local_get("docs", k).await.unwrap().values.len();
    }
    let sampled = keys.len().div_ceil(50);
    // With N = 3 of 4 nodes, n4 replicates about three quarters of all keys.
    assert!(
        held as f64 > 0.6 * sampled as f64,
        "n4 holds {held} of {sampled} sampled keys"
    );
}
