//! Read-modify-write with `Client::update`: two writers race on a shopping cart and
//! nothing is lost; the update merges their siblings into one version.
//!
//! Start a cluster with `ringdb dev`, then: `cargo run -p ringdb-client --example update`
//! (or pass `HOST:PORT,...` as the first argument).

use std::collections::BTreeSet;

use ringdb_client::{Client, Consistency, ReadOptions};
use serde_json::{json, Value};

/// Every sibling's items plus `item`: a merge that is safe to run again on its own result.
fn add_item(siblings: &[Value], item: &str) -> Value {
    let mut items: BTreeSet<String> = siblings
        .iter()
        .flat_map(|v| v["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(String::from))
        .collect();
    items.insert(item.to_string());
    json!({ "items": items })
}

#[tokio::main]
async fn main() -> Result<(), ringdb_client::Error> {
    let hosts = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7401".into());
    let client = Client::connect(hosts.split(',')).await?;

    // Two writes without a context (two app instances that did not read first): both
    // versions are kept as siblings.
    client.delete("examples", "cart-2").await?;
    let (a, b) = (json!({"items": ["apple"]}), json!({"items": ["pear"]}));
    let (ra, rb) = tokio::join!(
        client.put("examples", "cart-2", &a),
        client.put("examples", "cart-2", &b)
    );
    ra?;
    rb?;
    let all = ReadOptions::new().consistency(Consistency::All);
    let read = client.get_with("examples", "cart-2", &all).await?;
    println!("before: {} siblings {:?}", read.values.len(), read.values);

    // Two concurrent updates, each adding an item: each merges whatever siblings it finds,
    // and tries again if the other got in between.
    let (u1, u2) = tokio::join!(
        client.update("examples", "cart-2", |s| Some(add_item(s, "fig"))),
        client.update("examples", "cart-2", |s| Some(add_item(s, "plum"))),
    );
    let (u1, u2) = (u1?, u2?);
    println!(
        "updates took {} and {} attempt(s); acknowledged by {:?}",
        u1.attempts,
        u2.attempts,
        u1.write.map(|w| w.acknowledged_by).unwrap_or_default()
    );
    let read = client.get_with("examples", "cart-2", &all).await?;
    println!("after: {} version(s) {:?}", read.values.len(), read.values);
    client.delete("examples", "cart-2").await?;
    Ok(())
}
