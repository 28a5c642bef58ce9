//! Typed documents: store and read your own serde types, and update them in place.
//!
//! Start a cluster with `ringdb dev`, then: `cargo run -p ringdb-client --example typed`
//! (or pass `HOST:PORT,...` as the first argument).

use ringdb_client::{Client, Error, ReadOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    email: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let hosts = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7401".into());
    let client = Client::connect(hosts.split(',')).await?;
    println!(
        "routing {:?}; users/ada goes to {:?} first",
        client.routing(),
        client.route("users", "ada").first()
    );

    let ada = Profile {
        name: "Ada".into(),
        email: "ada@example.com".into(),
        tags: vec!["admin".into()],
    };
    let w = client.put("users", "ada", &ada).await?;
    println!(
        "written via {:?}, acknowledged by {:?}, hinted for {:?}",
        w.coordinator, w.acknowledged_by, w.hinted_for
    );

    // Add a tag, keeping every tag any sibling has: a union is safe to recompute when the
    // update has to try again.
    let done = client
        .update_as::<Profile, _>("users", "ada", |versions| {
            let mut p = versions.first()?.clone();
            p.tags = versions.iter().flat_map(|v| v.tags.clone()).collect();
            p.tags.push("beta".into());
            p.tags.sort();
            p.tags.dedup();
            Some(p)
        })
        .await?;
    println!("now {:?}", done.value());

    let read = client
        .get_as::<Profile>("users", "ada", &ReadOptions::new())
        .await?;
    assert_eq!(read.values.len(), 1);
    println!(
        "read back {:?} (coordinated by {:?})",
        read.values[0], read.coordinator
    );
    client.delete("users", "ada").await?;
    Ok(())
}
