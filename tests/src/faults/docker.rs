//! A network partition with real processes: three `ringdb` containers on a private Docker
//! network, one cut off with `docker network disconnect` and reconnected later, while a
//! client on the host runs the workload through published ports.
//!
//! The image is built locally `FROM scratch` with the `ringdb` binary and the shared
//! libraries `ldd` names, so no registry is needed; it is tagged by the binary's size and
//! modification time and reused while the binary is unchanged.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringdb_client::{Client, Routing};

use super::process::{converge, ClientStore};
use super::{keep_evidence, Summary};
use crate::history::workload::{self, WorkloadConfig};
use crate::history::{check, Level, Recorder};
use crate::{binary, free_port};

/// Run `docker <args>`; its trimmed stdout, or its stderr as the error.
async fn docker(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("docker {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether a Docker daemon answers; the reason when not.
pub async fn available() -> Result<(), String> {
    docker(&["info", "--format", "{{.ServerVersion}}"])
        .await
        .map(|_| ())
}

/// The shared libraries `ldd` lists for `binary` (absolute paths, loader included).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// Build (or reuse) an image holding `binary` and its libraries; returns its tag.
pub async fn image(binary: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let mut h = DefaultHasher::new();
    (binary, meta.len(), meta.modified().ok()).hash(&mut h);
    let tag = format!("ringdb-faults:{:016x}", h.finish());
    if docker(&["image", "inspect", &tag]).await.is_ok() {
        return Ok(tag);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    std::fs::copy(binary, rootfs.join("ringdb")).map_err(|e| e.to_string())?;
    for lib in shared_libraries(binary)? {
        let to = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        std::fs::create_dir_all(to.parent().expect("library dir")).map_err(|e| e.to_string())?;
        // Follows symlinks: the image gets the library itself under the name ldd printed.
        std::fs::copy(&lib, &to).map_err(|e| format!("copy {}: {e}", lib.display()))?;
    }
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/ringdb\"]\n",
    )
    .map_err(|e| e.to_string())?;
    let context = dir.path().to_string_lossy().to_string();
    // Images of earlier binaries are not needed again (one in use stays: rmi refuses).
    if let Ok(old) = docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "ringdb-faults",
    ])
    .await
    {
        for image in old.lines().filter(|i| *i != tag) {
            let _ = docker(&["rmi", image]).await;
        }
    }
    docker(&["build", "-q", "-t", &tag, &context]).await?;
    Ok(tag)
}

/// One node's container.
pub struct Container {
    /// Node id (`n1`...).
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its address on the private network.
    pub ip: String,
    /// Its port as published on the host's loopback: `127.0.0.1:port`.
    pub host_address: String,
}

/// Nodes in containers on a private network, removed (with the network) on drop.
pub struct DockerCluster {
    /// The private network's name.
    pub network: String,
    /// The nodes, in start order.
    pub nodes: Vec<Container>,
}

impl DockerCluster {
    /// Start `n` nodes from `image`, one at a time, and wait until all see each other up.
    pub async fn start(image: &str, n: usize) -> Result<DockerCluster, String> {
        let mut rng = StdRng::from_entropy();
        let prefix = format!("ringdb-faults-{}-{}", std::process::id(), rng.gen::<u16>());
        // A /24 nobody else uses: try a few at random.
        let mut subnet = None;
        for _ in 0..10 {
            let base = format!("10.{}.{}", rng.gen_range(100..250), rng.gen_range(0..255));
            let cidr = format!("{base}.0/24");
            if docker(&["network", "create", "--subnet", &cidr, &prefix])
                .await
                .is_ok()
            {
                subnet = Some(base);
                break;
            }
        }
        let subnet = subnet.ok_or("could not create a private docker network")?;
        let mut cluster = DockerCluster {
            network: prefix.clone(),
            nodes: Vec::new(),
        };
        for i in 0..n {
            let c = Container {
                id: format!("n{}", i + 1),
                name: format!("{prefix}-n{}", i + 1),
                ip: format!("{subnet}.{}", 11 + i),
                host_address: format!("127.0.0.1:{}", free_port()),
            };
            let publish = format!("{}:7400", c.host_address);
            let advertise = format!("{}:7400", c.ip);
            let mut args = vec![
                "run",
                "-d",
                "--name",
                &c.name,
                "--network",
                &prefix,
                "--ip",
                &c.ip,
                "-p",
                &publish,
                image,
                "serve",
                "--node-id",
                &c.id,
                "--listen",
                "0.0.0.0:7400",
                "--advertise",
                &advertise,
                "--data-dir",
                "/data",
                "--gossip-interval-ms",
                "200",
                "--aae-interval-secs",
                "3",
            ];
            let seed = cluster.nodes.first().map(|s| format!("{}:7400", s.ip));
            if let Some(s) = &seed {
                args.extend(["--seeds", s.as_str()]);
            }
            docker(&args).await?;
            cluster.nodes.push(c);
            let c = cluster.nodes.last().expect("just pushed");
            cluster
                .wait(&c.host_address, &[c.id.as_str()], true)
                .await?;
        }
        let ids: Vec<&str> = cluster.nodes.iter().map(|c| c.id.as_str()).collect();
        for c in &cluster.nodes {
            cluster.wait(&c.host_address, &ids, false).await?;
        }
        Ok(cluster)
    }

    /// Wait until the node at `address` sees every one of `ids` up, NORMAL and owning
    /// part of the ring (only NORMAL for `just_started`, as it may be the first).
    async fn wait(&self, address: &str, ids: &[&str], just_started: bool) -> Result<(), String> {
        let client = Client::builder([address])
            .routing(Routing::RoundRobin)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(s) = client.status().await {
                if ids.iter().all(|id| {
                    s.nodes.iter().any(|m| {
                        m.id == *id
                            && m.status == "NORMAL"
                            && (just_started || (m.up && m.ownership > 0.0))
                    })
                }) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let mut logs = String::new();
                for c in &self.nodes {
                    let l = docker(&["logs", "--tail", "30", &c.name])
                        .await
                        .unwrap_or_else(|e| e);
                    logs.push_str(&format!("\n----- {} -----\n{l}", c.name));
                }
                return Err(format!("{address} did not see {ids:?} up in 60 s{logs}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cut node `i` off the private network (from its peers and from the host).
    pub async fn disconnect(&self, i: usize) -> Result<(), String> {
        docker(&["network", "disconnect", &self.network, &self.nodes[i].name])
            .await
            .map(|_| ())
    }

    /// Put node `i` back on the network at its old address.
    pub async fn connect(&self, i: usize) -> Result<(), String> {
        let c = &self.nodes[i];
        docker(&["network", "connect", "--ip", &c.ip, &self.network, &c.name])
            .await
            .map(|_| ())
    }

    /// Wait until every node sees every node up again.
    pub async fn wait_all_up(&self) -> Result<(), String> {
        let ids: Vec<&str> = self.nodes.iter().map(|c| c.id.as_str()).collect();
        for c in &self.nodes {
            self.wait(&c.host_address, &ids, false).await?;
        }
        Ok(())
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        let mut args = vec!["rm".to_string(), "-f".to_string()];
        args.extend(self.nodes.iter().map(|c| c.name.clone()));
        let _ = std::process::Command::new("docker").args(&args).output();
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

/// A Docker scenario's shape.
#[derive(Debug, Clone)]
pub struct DockerScenario {
    /// Seeds which node is cut off, for how long, and the clients.
    pub seed: u64,
    /// Partitions, one after another.
    pub partitions: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
}

impl DockerScenario {
    /// The CI size: one partition of 2.5-4 s, 4 clients on 6 keys.
    pub fn short(seed: u64) -> Self {
        DockerScenario {
            seed,
            partitions: 1,
            clients: 4,
            keys: 6,
        }
    }

    /// The soak size: 3 partitions, 6 clients on 8 keys.
    pub fn soak(seed: u64) -> Self {
        DockerScenario {
            partitions: 3,
            clients: 6,
            keys: 8,
            ..Self::short(seed)
        }
    }
}

/// Start the containers, run the workload while nodes are partitioned off and brought
/// back, then repair, read everything at `ALL` and check. Errors are Docker failures.
pub async fn run(sc: &DockerScenario) -> Result<Summary, String> {
    eprintln!(
        "docker scenario, seed {} (rerun: RINGDB_SEED={})",
        sc.seed, sc.seed
    );
    let mut rng = StdRng::seed_from_u64(sc.seed);
    let steps: Vec<(usize, Duration, Duration)> = (0..sc.partitions)
        .map(|_| {
            (
                rng.gen_range(0..3),
                Duration::from_millis(rng.gen_range(2500..=4000)),
                Duration::from_millis(rng.gen_range(1000..=2000)),
            )
        })
        .collect();
    for (i, (node, hold, calm)) in steps.iter().enumerate() {
        eprintln!(
            "  {i}: disconnect n{} for {}ms, then calm {}ms",
            node + 1,
            hold.as_millis(),
            calm.as_millis()
        );
    }
    let image = image(&binary("ringdb")).await?;
    let cluster = DockerCluster::start(&image, 3).await?;
    let addresses: Vec<&str> = cluster
        .nodes
        .iter()
        .map(|c| c.host_address.as_str())
        .collect();
    // The ring names addresses on the private network; the host goes through the
    // published ports instead, in rotation.
    let client = Client::builder(addresses)
        .routing(Routing::RoundRobin)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let store = Arc::new(ClientStore::new(client));
    let recorder = Recorder::new(3);
    let mut cfg = WorkloadConfig::new(sc.seed, sc.clients, sc.keys);
    cfg.op_timeout = Duration::from_secs(4);
    let running = workload::start(store.clone(), &recorder, &cfg);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (node, hold, calm) in &steps {
        cluster.disconnect(*node).await?;
        tokio::time::sleep(*hold).await;
        cluster.connect(*node).await?;
        tokio::time::sleep(*calm).await;
    }
    running.stop().await;

    let healed = Instant::now();
    cluster.wait_all_up().await?;
    let nodes: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|c| (c.id.clone(), c.host_address.clone()))
        .collect();
    let diverged = converge(&nodes, &cfg.keys).await;
    let converge_ms = healed.elapsed().as_millis() as u64;
    workload::read_all(store, &recorder, sc.clients, &cfg.keys, Level::All).await;
    let history = recorder.history();
    let mut summary = Summary::new("docker", sc.seed, check(&history), converge_ms, diverged);
    if !summary.is_clean() {
        let dir = keep_evidence("docker", sc.seed, &history, &[]);
        if let Some(dir) = &dir {
            for c in &cluster.nodes {
                let logs = docker(&["logs", &c.name]).await.unwrap_or_else(|e| e);
                let _ = std::fs::write(dir.join(format!("{}.log", c.id)), logs);
            }
        }
        summary.evidence = dir;
    }
    Ok(summary)
}
