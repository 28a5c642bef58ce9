//! Operator commands that talk to a running node over its admin gRPC service: `ringdb
//! status` (like `nodetool status`) and `ringdb admin ...` (topology changes, collections;
//! indexes are in `indexes.rs`).

use std::time::Duration;

use anyhow::{bail, Context};
use ringdb_proto::v1::{
    CreateCollectionRequest, DecommissionRequest, ListCollectionsRequest, NodeStatus,
    RemoveNodeRequest, RepairRequest, RepairStatusRequest, StatusRequest,
};

use crate::indexes::{self, IndexCommand};
use crate::remote::{connect, connect_for, status_error, HostArg};
use crate::tokens::{self, TokenCommand};

/// `ringdb status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    host: HostArg,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// `ringdb admin`.
#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Stream the node's data to the new owners and take it out of the ring; waits until it
    /// is LEFT unless --no-wait.
    Decommission {
        #[command(flatten)]
        host: HostArg,
        /// Return once the node is LEAVING.
        #[arg(long)]
        no_wait: bool,
    },
    /// Take a dead node out of the ring, re-replicating its ranges from the survivors
    /// (coordinated by --host); waits until it is LEFT unless --no-wait.
    Removenode {
        /// Id of the dead node.
        node_id: String,
        #[command(flatten)]
        host: HostArg,
        /// Return once the removal has started.
        #[arg(long)]
        no_wait: bool,
    },
    /// Create a collection with its replication factor.
    CreateCollection {
        /// Collection name.
        name: String,
        /// Replicas per key (default: the cluster's).
        #[arg(long, default_value_t = 0)]
        replication: u32,
        /// Documents expire this many seconds after each write unless the write sets its
        /// own TTL (0: never).
        #[arg(long, default_value_t = 0)]
        ttl_secs: u64,
        /// Succeed if it exists already.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        host: HostArg,
    },
    /// List the collections and their replication factors.
    Collections {
        #[command(flatten)]
        host: HostArg,
    },
    /// Run an anti-entropy pass on the node now: compare every range it replicates with
    /// the other replicas and repair what differs; prints what it did.
    Repair {
        /// Only this collection.
        #[arg(long)]
        collection: Option<String>,
        #[command(flatten)]
        host: HostArg,
    },
    /// The node's anti-entropy counters, hash-tree roots, and when its ranges were last
    /// verified.
    RepairStatus {
        #[command(flatten)]
        host: HostArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// List every range with its peer, last verification and keys repaired.
        #[arg(long)]
        ranges: bool,
    },
    #[command(flatten)]
    Indexes(IndexCommand),
    #[command(flatten)]
    Tokens(TokenCommand),
}

/// A collection's options as `replication = N[, ttl = S s]`.
fn options(c: &ringdb_proto::v1::CollectionInfo) -> String {
    match c.default_ttl_secs {
        0 => format!("replication = {}", c.replication),
        t => format!("replication = {}, ttl = {t} s", c.replication),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `nodetool status`-style lines: state letters, then the columns.
fn table(asked: &str, rf: u32, nodes: &[NodeStatus]) -> String {
    let mut rows = vec![[
        "--".to_string(),
        "ID".into(),
        "Address".into(),
        "Load".into(),
        "Keys".into(),
        "Owns".into(),
        "Hints".into(),
        "Zone".into(),
    ]];
    for n in nodes {
        let up = if n.up { 'U' } else { 'D' };
        // LEAVING and LEFT share a first letter; a node that has left shows as X.
        let state = match n.status.as_str() {
            "LEFT" => 'X',
            s => s.chars().next().unwrap_or('?'),
        };
        rows.push([
            format!("{up}{state}"),
            n.id.clone(),
            n.address.clone(),
            human_bytes(n.bytes),
            n.keys.to_string(),
            format!("{:.1}%", n.ownership * 100.0),
            n.hints.to_string(),
            if n.zone.is_empty() {
                "-".into()
            } else {
                n.zone.clone()
            },
        ]);
    }
    let mut out = format!(
        "As seen by {asked}; default replication {rf}\nStatus=Up/Down  State=Normal/Joining/Leaving/X (left)\n"
    );
    out.push_str(&aligned(&rows));
    out
}

/// Rows as left-aligned columns two spaces apart, one line each: the operator tables.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Run `ringdb status`.
pub async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let mut client = connect(&a.host).await?;
    let s = client
        .status(StatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if a.json {
        let nodes: Vec<serde_json::Value> = s
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id, "address": n.address, "up": n.up, "status": n.status,
                    "ownership": n.ownership, "keys": n.keys, "bytes": n.bytes,
                    "hints": n.hints, "zone": n.zone,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "nodes": nodes, "serving": s.serving })
        );
    } else {
        print!("{}", table(&s.node_id, s.replication_factor, &s.nodes));
        if !s.serving {
            println!(
                "{} does not serve client requests yet: {}",
                s.node_id, s.not_serving_reason
            );
        }
    }
    Ok(())
}

/// Poll status until `id` is LEFT in the view of the node at `host`.
async fn wait_left(host: &HostArg, id: &str) -> anyhow::Result<()> {
    let mut client = connect(host).await?;
    let mut last = String::new();
    loop {
        let s = client
            .status(StatusRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        let Some(n) = s.nodes.iter().find(|n| n.id == id) else {
            bail!("{id} is no longer listed by {}", host.host);
        };
        if n.status != last {
            println!("{id}: {}", n.status);
            last = n.status.clone();
        }
        if n.status == "LEFT" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Run `ringdb admin ...`.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Indexes(c) => indexes::run(c).await?,
        AdminCommand::Tokens(c) => tokens::run(c).await?,
        AdminCommand::Decommission { host, no_wait } => {
            let mut client = connect(&host).await?;
            let id = client
                .status(StatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .node_id;
            let r = client
                .decommission(DecommissionRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", r.message);
            if !no_wait {
                wait_left(&host, &id).await?;
            }
        }
        AdminCommand::Removenode {
            node_id,
            host,
            no_wait,
        } => {
            let mut client = connect(&host).await?;
            let r = client
                .remove_node(RemoveNodeRequest {
                    node_id: node_id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", r.message);
            if !no_wait {
                wait_left(&host, &node_id).await?;
            }
        }
        AdminCommand::CreateCollection {
            name,
            replication,
            ttl_secs,
            if_not_exists,
            host,
        } => {
            let c = connect(&host)
                .await?
                .create_collection(CreateCollectionRequest {
                    name,
                    replication,
                    if_not_exists,
                    default_ttl_secs: ttl_secs,
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .collection
                .context("empty answer")?;
            println!("collection {} ({})", c.name, options(&c));
        }
        AdminCommand::Collections { host } => {
            let r = connect(&host)
                .await?
                .list_collections(ListCollectionsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!("default replication = {}", r.default_replication);
            for c in r.collections {
                println!("{}  {}", c.name, options(&c));
            }
        }
        AdminCommand::Repair { collection, host } => {
            let r = connect_for(&host, Duration::from_secs(24 * 3600))
                .await?
                .repair(RepairRequest {
                    collection: collection.unwrap_or_default(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "repair on {}: {} ranges compared ({} failed), {} keys repaired, {} bytes of hashes exchanged, {} tombstones purged, {:.1} s",
                host.host,
                r.ranges,
                r.failed,
                r.keys_repaired,
                r.bytes_exchanged,
                r.tombstones_purged,
                r.elapsed_ms as f64 / 1000.0
            );
            if r.failed > 0 {
                bail!("{} ranges could not be compared (a replica down or unreachable); run it again once all are up", r.failed);
            }
        }
        AdminCommand::RepairStatus { host, json, ranges } => {
            let r = connect(&host)
                .await?
                .repair_status(RepairStatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if json {
                let roots: serde_json::Map<String, serde_json::Value> = r
                    .roots
                    .iter()
                    .map(|t| (t.collection.clone(), format!("{:016x}", t.root).into()))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "node_id": r.node_id, "passes": r.passes, "last_pass_ms": r.last_pass_ms,
                        "ranges_verified": r.ranges_verified, "ranges_failed": r.ranges_failed,
                        "keys_repaired": r.keys_repaired, "bytes_exchanged": r.bytes_exchanged,
                        "tombstones_purged": r.tombstones_purged,
                        "roots": roots,
                        "ranges": r.ranges.iter().map(|g| serde_json::json!({
                            "collection": g.collection, "first": g.first, "last": g.last,
                            "peer": g.peer, "verified_ms": g.verified_ms,
                            "keys_repaired": g.keys_repaired,
                        })).collect::<Vec<_>>(),
                    })
                );
            } else {
                let ago = if r.last_pass_ms == 0 {
                    "never".to_string()
                } else {
                    let secs = ringdb_node::cluster::now_ms().saturating_sub(r.last_pass_ms) / 1000;
                    format!("{secs} s ago")
                };
                println!(
                    "{}: {} passes, last completed {ago}; {} ranges verified, {} failed; {} keys repaired",
                    r.node_id, r.passes, r.ranges_verified, r.ranges_failed, r.keys_repaired
                );
                for t in &r.roots {
                    println!("  {}  root {:016x}", t.collection, t.root);
                }
                let now = ringdb_node::cluster::now_ms();
                if let (Some(oldest), Some(newest)) = (r.ranges.first(), r.ranges.last()) {
                    println!(
                        "  {} ranges verified; oldest {} s ago, newest {} s ago",
                        r.ranges.len(),
                        now.saturating_sub(oldest.verified_ms) / 1000,
                        now.saturating_sub(newest.verified_ms) / 1000
                    );
                }
                if ranges {
                    println!("  collection  first..last  peer  verified  keys repaired");
                    for g in &r.ranges {
                        println!(
                            "  {}  {}..{}  {}  {} s ago  {}",
                            g.collection,
                            g.first,
                            g.last,
                            g.peer,
                            now.saturating_sub(g.verified_ms) / 1000,
                            g.keys_repaired
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_abbreviates_state() {
        let nodes = vec![
            NodeStatus {
                id: "n1".into(),
                address: "127.0.0.1:7401".into(),
                up: true,
                status: "NORMAL".into(),
                ownership: 0.3333,
                keys: 10,
                bytes: 2048,
                hints: 0,
                zone: "a".into(),
            },
            NodeStatus {
                id: "n22".into(),
                address: "10.0.0.2:7401".into(),
                up: false,
                status: "LEAVING".into(),
                ownership: 0.6667,
                keys: 0,
                bytes: 0,
                hints: 5,
                zone: String::new(),
            },
        ];
        let t = table("n1", 3, &nodes);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[2],
            "--  ID   Address         Load     Keys  Owns   Hints  Zone"
        );
        assert_eq!(
            lines[3],
            "UN  n1   127.0.0.1:7401  2.0 KiB  10    33.3%  0      a"
        );
        assert_eq!(
            lines[4],
            "DL  n22  10.0.0.2:7401   0 B      0     66.7%  5      -"
        );
    }
}
