//! Write, read, make siblings and resolve them against a running cluster.
//!
//! Start a cluster with `ringdb dev`, then: `cargo run -p ringdb-client --example quickstart`.

use ringdb_client::{Client, Consistency, ReadOptions, WriteOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), ringdb_client::Error> {
    let hosts = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7401".into());
    let client = Client::connect(hosts.split(',')).await?;

    client
        .put("examples", "cart-1", &json!({"items": ["apple"]}))
        .await?;
    // A second write without a context is concurrent with the first: both are kept.
    client
        .put("examples", "cart-1", &json!({"items": ["pear"]}))
        .await?;
    let read = client
        .get_with(
            "examples",
            "cart-1",
            &ReadOptions::new().consistency(Consistency::All),
        )
        .await?;
    println!("{} siblings: {:?}", read.values.len(), read.values);

    // Merge them and write back with the read's context: exactly one version remains.
    let mut items: Vec<serde_json::Value> = read
        .values
        .iter()
        .flat_map(|v| v["items"].as_array().cloned().unwrap_or_default())
        .collect();
    items.sort_by_key(|v| v.to_string());
    items.dedup();
    let opts = WriteOptions::new().context(read.context);
    client
        .put_with("examples", "cart-1", &json!({ "items": items }), &opts)
        .await?;
    let resolved = client.get("examples", "cart-1").await?;
    println!("resolved: {:?}", resolved.values);
    client.delete("examples", "cart-1").await?;
    Ok(())
}
