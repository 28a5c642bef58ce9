//! `ringdb admin create-index / drop-index / list-indexes`: index definitions through the
//! admin service of the node asked, which spreads them to every node by gossip.

use std::time::Duration;

use anyhow::Context;
use ringdb_proto::v1::{CreateIndexRequest, DropIndexRequest, IndexInfo, ListIndexesRequest};

use crate::remote::{connect, status_error, HostArg};

/// The index commands of `ringdb admin`.
#[derive(clap::Subcommand)]
pub enum IndexCommand {
    /// Create an index on a JSON path of a collection's documents (`address.city`,
    /// `tags[]`, `'"first name"'`); every node indexes what it stores, old documents in the
    /// background. A collection that does not exist is created with the default options.
    CreateIndex {
        /// Collection name.
        collection: String,
        /// The JSON path to index.
        path: String,
        /// Succeed if it exists already.
        #[arg(long)]
        if_not_exists: bool,
        /// Wait until every live node reports it ready, printing progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        host: HostArg,
    },
    /// Drop an index; every node removes its entries in the background.
    DropIndex {
        /// Collection name.
        collection: String,
        /// The indexed path.
        path: String,
        /// Succeed if there is no such index.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        host: HostArg,
    },
    /// List the indexes with their state across the cluster (ready, or building with the
    /// slowest node's progress).
    ListIndexes {
        /// Only this collection's.
        #[arg(long)]
        collection: Option<String>,
        /// Print one JSON object: {"indexes": [{"collection", "path", "state", ...}]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        host: HostArg,
    },
}

/// How far a building index is, for people.
fn progress(i: &IndexInfo) -> String {
    if i.state == "ready" {
        return "-".into();
    }
    if i.total == 0 {
        return "starting".into();
    }
    let pct = (i.done as f64 * 100.0 / i.total as f64).min(100.0);
    format!(
        "{pct:.0}% ({} of about {} keys, slowest node)",
        i.done, i.total
    )
}

/// The indexes as an aligned table.
fn table(list: &[IndexInfo]) -> String {
    if list.is_empty() {
        return "no indexes\n".into();
    }
    let mut rows = vec![[
        "COLLECTION".to_string(),
        "PATH".into(),
        "STATE".into(),
        "PROGRESS".into(),
    ]];
    rows.extend(list.iter().map(|i| {
        [
            i.collection.clone(),
            i.path.clone(),
            i.state.clone(),
            progress(i),
        ]
    }));
    crate::admin::aligned(&rows)
}

/// The indexes as the JSON object `list-indexes --json` prints.
fn json(list: &[IndexInfo]) -> serde_json::Value {
    let indexes: Vec<serde_json::Value> = list
        .iter()
        .map(|i| {
            serde_json::json!({
                "collection": i.collection, "path": i.path, "state": i.state,
                "done": i.done, "total": i.total,
                "nodes": i.nodes.iter().map(|n| serde_json::json!({
                    "id": n.node_id, "state": n.state, "done": n.done, "total": n.total,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "indexes": indexes })
}

/// Poll until the index is ready everywhere, printing its progress when it changes.
async fn wait_ready(host: &HostArg, collection: &str, path: &str) -> anyhow::Result<()> {
    let mut client = connect(host).await?;
    let mut last = String::new();
    loop {
        let list = client
            .list_indexes(ListIndexesRequest {
                collection: collection.to_string(),
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .indexes;
        let Some(i) = list.into_iter().find(|i| i.path == path) else {
            anyhow::bail!("the index on {collection} ({path}) was dropped");
        };
        let now = format!(
            "{} ({}): {} {}",
            i.collection,
            i.path,
            i.state,
            progress(&i)
        );
        if now != last {
            println!("{}", now.trim_end_matches(" -"));
            last = now;
        }
        if i.state == "ready" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Run one index command.
pub async fn run(cmd: IndexCommand) -> anyhow::Result<()> {
    match cmd {
        IndexCommand::CreateIndex {
            collection,
            path,
            if_not_exists,
            wait,
            host,
        } => {
            let r = connect(&host)
                .await?
                .create_index(CreateIndexRequest {
                    collection,
                    path,
                    if_not_exists,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let i = r.index.context("empty answer")?;
            if r.created_collection {
                println!("collection {} created (default options)", i.collection);
            }
            println!("index on {} ({}): {}", i.collection, i.path, i.state);
            if wait {
                wait_ready(&host, &i.collection, &i.path).await?;
            }
        }
        IndexCommand::DropIndex {
            collection,
            path,
            if_exists,
            host,
        } => {
            let r = connect(&host)
                .await?
                .drop_index(DropIndexRequest {
                    collection: collection.clone(),
                    path: path.clone(),
                    if_exists,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if r.dropped {
                println!("index on {collection} ({path}) dropped");
            } else {
                println!("no index on {collection} ({path}); nothing to drop");
            }
        }
        IndexCommand::ListIndexes {
            collection,
            json: as_json,
            host,
        } => {
            let list = connect(&host)
                .await?
                .list_indexes(ListIndexesRequest {
                    collection: collection.unwrap_or_default(),
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .indexes;
            if as_json {
                println!("{}", json(&list));
            } else {
                print!("{}", table(&list));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(path: &str, state: &str, done: u64, total: u64) -> IndexInfo {
        IndexInfo {
            collection: "users".into(),
            path: path.into(),
            state: state.into(),
            done,
            total,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_shows_state_and_the_slowest_progress() {
        let t = table(&[
            index("age", "ready", 0, 0),
            index("address.city", "building", 250, 1000),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "COLLECTION  PATH          STATE     PROGRESS");
        assert_eq!(lines[1], "users       age           ready     -");
        assert_eq!(
            lines[2],
            "users       address.city  building  25% (250 of about 1000 keys, slowest node)"
        );
        assert_eq!(table(&[]), "no indexes\n");
        let j = json(&[index("age", "ready", 0, 0)]);
        assert_eq!(j["indexes"][0]["state"], "ready");
        assert_eq!(j["indexes"][0]["path"], "age");
    }
}
