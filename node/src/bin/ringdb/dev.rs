//! `ringdb dev`: a local cluster of child `ringdb serve` processes, started at once and
//! seeding each other, as a deploy script would start them: the lowest id founds the
//! cluster and the others take their shares of it (see `cluster::found`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::StatusRequest;
use tokio::process::{Child, Command};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Port of the first node; the others follow it.
    #[arg(long, default_value_t = 7401)]
    base_port: u16,
    /// HTTP/JSON API port of the first node (the others follow it); 0: no HTTP API.
    #[arg(long, default_value_t = 8401)]
    http_base_port: u16,
    /// Parent directory of the nodes' data directories and logs.
    #[arg(long, default_value = "./ringdb-data")]
    data_dir: PathBuf,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Replicas per key.
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Further `ringdb serve` flags for every node, after `--`
    /// (e.g. `ringdb dev -- --aae-interval-secs 10`).
    #[arg(last = true)]
    serve_args: Vec<String>,
}

struct Node {
    id: String,
    address: String,
    http: Option<String>,
    log: PathBuf,
    child: Child,
}

async fn node_status(address: &str) -> Option<ringdb_proto::v1::StatusResponse> {
    let mut c = AdminClient::connect(format!("http://{address}"))
        .await
        .ok()?;
    c.status(StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// `flag value` unless the user passed the flag after `--` (theirs wins).
fn sized<'a>(flag: &'a str, value: &'a str, serve_args: &[String]) -> Vec<&'a str> {
    if serve_args
        .iter()
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    {
        Vec::new()
    } else {
        vec![flag, value]
    }
}

async fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter() {
        terminate(&n.child);
    }
    for n in nodes.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), n.child.wait())
            .await
            .is_err()
        {
            let _ = n.child.kill().await;
        }
    }
}

pub async fn run(a: DevArgs) -> anyhow::Result<()> {
    if a.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the ringdb executable")?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    let addresses: Vec<String> = (0..a.nodes)
        .map(|i| {
            a.base_port
                .checked_add(i)
                .map(|port| format!("{}:{port}", a.host))
                .context("port out of range")
        })
        .collect::<anyhow::Result<_>>()?;
    let seeds = addresses.join(",");
    // The nodes share this machine: give each its share of the cores rather than all of them.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let workers = cores.div_ceil(a.nodes as usize).max(1).to_string();
    // One storage thread per core share: on a 2-core machine with 3 nodes, one each (more
    // threads only add context switches: YCSB-A 17.2-17.7k ops/s with two, 19.5-20.7k with
    // one). `ringdb dev -- --storage-threads N` overrides it.
    let storage_threads = cores.div_ceil(a.nodes as usize).clamp(1, 4).to_string();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..a.nodes {
        let id = format!("n{}", i + 1);
        let address = addresses[i as usize].clone();
        let http = match a.http_base_port {
            0 => None,
            base => Some(format!(
                "{}:{}",
                a.host,
                base.checked_add(i).context("HTTP port out of range")?
            )),
        };
        let log = a.data_dir.join(format!("{id}.log"));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(&exe);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the child
        // when this process dies, so a killed `ringdb dev` leaves no orphan nodes behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .args([
                "serve",
                "--node-id",
                &id,
                "--listen",
                &address,
                "--seeds",
                &seeds,
            ])
            .arg("--data-dir")
            .arg(a.data_dir.join(&id))
            .args(["--replication-factor", &a.replication_factor.to_string()])
            .args(sized("--worker-threads", &workers, &a.serve_args))
            .args(sized("--storage-threads", &storage_threads, &a.serve_args))
            .args(
                http.iter()
                    .flat_map(|h| ["--http-listen".to_string(), h.clone()]),
            )
            .args(&a.serve_args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        nodes.push(Node {
            id,
            address,
            http,
            log,
            child,
        });
    }
    // Each node serves once it has tokens and the cluster is formed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for i in 0..nodes.len() {
        loop {
            if let Some((n, status)) = nodes
                .iter_mut()
                .find_map(|n| n.child.try_wait().ok().flatten().map(|s| (n.id.clone(), s)))
            {
                let log = a.data_dir.join(format!("{n}.log")).display().to_string();
                stop_all(&mut nodes).await;
                bail!("node {n} exited during start ({status}); see {log}");
            }
            let node = &nodes[i];
            let me = node.id.clone();
            let serving = node_status(&node.address).await.is_some_and(|s| {
                s.serving && s.nodes.iter().any(|m| m.id == me && m.status == "NORMAL")
            });
            if serving {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let log = node.log.display().to_string();
                stop_all(&mut nodes).await;
                bail!("node did not start within 60 s; see {log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Ready once every node sees every other node up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for n in &nodes {
            let up = node_status(&n.address)
                .await
                .map(|s| {
                    s.nodes
                        .iter()
                        .filter(|m| m.up && m.status == "NORMAL")
                        .count()
                })
                .unwrap_or(0);
            all &= up == nodes.len();
        }
        if all || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "RingDB dev cluster: {} nodes, replication factor {}",
        nodes.len(),
        a.replication_factor
    );
    for n in &nodes {
        let http = n
            .http
            .as_ref()
            .map(|h| format!("   http://{h}"))
            .unwrap_or_default();
        println!(
            "  {:<4} {}{http}   log: {}",
            n.id,
            n.address,
            n.log.display()
        );
    }
    println!();
    println!("Connect with:   ringsh --host {}", nodes[0].address);
    println!(
        "  (from a checkout: cargo run --release -p ringdb-shell -- --host {})",
        nodes[0].address
    );
    println!("Press Ctrl-C to stop the cluster.");
    let ended = tokio::select! {
        _ = crate::wait_for_signal() => None,
        r = futures::future::select_all(nodes.iter_mut().map(|n| Box::pin(n.child.wait()))) => {
            let (status, idx, _) = r;
            Some((idx, status))
        }
    };
    if let Some((idx, status)) = ended {
        let (id, log) = (nodes[idx].id.clone(), nodes[idx].log.display().to_string());
        eprintln!(
            "node {id} exited ({}); stopping the cluster; see {log}",
            status.map(|s| s.to_string()).unwrap_or_default()
        );
        stop_all(&mut nodes).await;
        bail!("node {id} exited");
    }
    println!("stopping...");
    stop_all(&mut nodes).await;
    println!("stopped");
    Ok(())
}
