//! `ringdb`: run a node (`serve`) or a local cluster to try RingDB (`dev`), and operate a
//! running cluster (`status`, `admin`).

mod admin;
mod dev;
mod indexes;
mod remote;
mod tokens;

/// glibc malloc spent ~15% of CPU under load (cross-thread frees); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ringdb_node::server::{self, NodeConfig};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "ringdb",
    version,
    about = "RingDB: a masterless distributed JSON document database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr: `text` for people (colours only on a terminal) or `json`, one
    /// object per line, for log shippers. RINGDB_LOG sets the filter (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node: client, internode and admin gRPC on one port; logs on stderr.
    Serve(Box<ServeArgs>),
    /// Start a local cluster of child `serve` processes; Ctrl-C stops it.
    Dev(dev::DevArgs),
    /// Show every node as the node asked sees it: up/down, state, load, ownership, hints.
    Status(admin::StatusArgs),
    /// Change the cluster: decommission, removenode, create-collection, collections,
    /// create-index, drop-index, list-indexes, repair, create-token, list-tokens,
    /// revoke-token.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Stable node identity (letters, digits, '_', '-', '.'); the data dir belongs to it.
    #[arg(long)]
    node_id: String,
    /// Address to listen on, HOST:PORT.
    #[arg(long)]
    listen: String,
    /// Directory for this node's data.
    #[arg(long)]
    data_dir: PathBuf,
    /// Nodes to contact at first start, HOST:PORT,...
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<String>,
    /// Address other nodes and clients should use (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Also serve the HTTP/JSON API (docs/http.md) on this HOST:PORT.
    #[arg(long)]
    http_listen: Option<String>,
    /// Replicas per key (N); must be the same on every node.
    #[arg(long, default_value_t = 3)]
    replication_factor: usize,
    /// Failure domain (rack, availability zone) shown in status.
    #[arg(long, default_value = "")]
    zone: String,
    /// Virtual nodes to take when first joining.
    #[arg(long, default_value_t = ringdb_node::ring::DEFAULT_VNODES)]
    vnodes: usize,
    /// Default time a request may wait for its consistency level, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    request_timeout_ms: u64,
    /// Milliseconds before a read also asks the replicas beyond those its level needs.
    #[arg(long, default_value_t = 50)]
    speculative_retry_ms: u64,
    /// Client requests coordinated at once; beyond it requests are refused with
    /// RESOURCE_EXHAUSTED (overload protection) rather than queued.
    #[arg(long, default_value_t = 512)]
    max_client_requests: usize,
    /// Largest document accepted, in bytes.
    #[arg(long, default_value_t = ringdb_node::coordinator::validate::DEFAULT_MAX_DOCUMENT_BYTES)]
    max_document_bytes: usize,
    /// Async worker threads (default: one per core). Lower it when several nodes share a machine.
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Storage threads (each owns a shard of keys).
    #[arg(long, default_value_t = 4)]
    storage_threads: usize,
    /// sled page cache size in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: u64,
    /// sled's own background flush interval in milliseconds: the most a memory-only
    /// write can lose in a crash. Durable writes never depend on it.
    #[arg(long, default_value_t = 1000)]
    background_flush_ms: u64,
    /// Hints kept for one down replica; writes beyond are recorded as keys needing repair.
    #[arg(long, default_value_t = 100_000)]
    max_hints_per_target: u64,
    /// Hints older than this many seconds are not delivered; their keys are recorded for repair.
    #[arg(long, default_value_t = 3 * 3600)]
    max_hint_age_secs: u64,
    /// Seconds between anti-entropy passes over every range (0: only on `ringdb admin repair`).
    #[arg(long, default_value_t = 60)]
    aae_interval_secs: u64,
    /// Anti-entropy budget: keys compared or repaired per second.
    #[arg(long, default_value_t = 20_000)]
    aae_keys_per_sec: u64,
    /// Index builds (over the documents stored before an index was created) and index
    /// drops scan at most this many keys per second on this node (0: no limit beyond the
    /// storage queues). Writes keep every index current whatever the pace.
    #[arg(long, default_value_t = 20_000)]
    index_build_keys_per_sec: u64,
    /// Seconds a key must have held only tombstones before anti-entropy may purge it (it
    /// also needs every node up and every replica holding the same tombstones).
    #[arg(long, default_value_t = 60)]
    tombstone_grace_secs: u64,
    /// How often this node heartbeats and gossips, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    gossip_interval_ms: u64,
    /// Failure-detector threshold: a peer whose phi exceeds it is considered down.
    #[arg(long, default_value_t = 8.0)]
    phi_threshold: f64,
    /// This node's certificate (PEM, leaf first): the port then speaks only TLS, and nodes
    /// authenticate each other with it (mutual TLS). Needs --tls-key and --tls-ca; the
    /// three files are read again when they change.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): node certificates must chain to it.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Every client request needs `authorization: Bearer TOKEN` metadata.
    #[arg(long, requires = "auth_bootstrap_token_file")]
    auth: bool,
    /// File holding the first admin token (any printable ASCII string of 16+ characters,
    /// surrounding whitespace ignored); give every node the same one.
    #[arg(long, requires = "auth")]
    auth_bootstrap_token_file: Option<PathBuf>,
    /// Turning TLS on in a running cluster by rolling restarts (docs/security.md): serve
    /// TLS and plaintext on the port, and dial peers in `plaintext` (step 1) or over `tls`
    /// (step 2); a third restart without it ends the transition.
    #[arg(long, value_parser = ["plaintext", "tls"], requires = "tls_cert")]
    tls_transitional: Option<String>,
    /// File holding the secret nodes prove membership with when TLS is off (default with
    /// --auth: one derived from the bootstrap token). With TLS node certificates do that.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
}

/// A secret read from a file: trimmed, printable ASCII, at least 16 characters.
fn read_secret(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let secret = raw.trim().to_string();
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "the {what} in {} must be at least 16 printable ASCII characters without spaces",
            path.display()
        );
    }
    Ok(secret)
}

fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RINGDB_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(false)
            .flatten_event(true)
            .init(),
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(a.node_id, a.listen, a.data_dir);
    config.seeds = a.seeds.into_iter().filter(|s| !s.is_empty()).collect();
    config.advertise = a.advertise;
    config.http_listen = a.http_listen;
    config.vnodes = a.vnodes.max(1);
    config.zone = a.zone;
    config.max_document_bytes = a.max_document_bytes;
    config.cache_bytes = a.cache_mb * 1024 * 1024;
    config.background_flush_ms = a.background_flush_ms;
    config.storage.threads = a.storage_threads.max(1);
    config.coordinator.replication_factor = a.replication_factor;
    config.coordinator.request_timeout = Duration::from_millis(a.request_timeout_ms.max(1));
    config.coordinator.speculative_retry = Duration::from_millis(a.speculative_retry_ms);
    config.coordinator.max_client_requests = a.max_client_requests.max(1);
    config.hints.max_per_target = a.max_hints_per_target;
    config.hints.max_age = Duration::from_secs(a.max_hint_age_secs);
    config.aae.interval = Duration::from_secs(a.aae_interval_secs);
    config.aae.keys_per_sec = a.aae_keys_per_sec;
    config.index_build.keys_per_sec = a.index_build_keys_per_sec;
    config.aae.tombstone_grace = Duration::from_secs(a.tombstone_grace_secs);
    config.membership.gossip_interval = Duration::from_millis(a.gossip_interval_ms.max(10));
    config.membership.phi_threshold = a.phi_threshold;
    if let (Some(cert), Some(key), Some(ca)) = (a.tls_cert, a.tls_key, a.tls_ca) {
        config.security.tls = Some(ringdb_node::security::tls::TlsFiles { cert, key, ca });
    }
    config.security.transition = match a.tls_transitional.as_deref() {
        Some("plaintext") => ringdb_node::security::Transition::DialPlaintext,
        Some(_) => ringdb_node::security::Transition::DialTls,
        None => ringdb_node::security::Transition::None,
    };
    if a.auth {
        if let Some(f) = &a.auth_bootstrap_token_file {
            config.security.bootstrap_token = Some(read_secret(f, "bootstrap token")?);
        }
    }
    if let Some(f) = &a.cluster_secret_file {
        config.security.cluster_secret = Some(read_secret(f, "cluster secret")?);
    }
    let node = server::start(config)
        .await
        .context("node failed to start")?;
    println!("ringdb node serving on {}", node.address);
    if let Some(http) = &node.http_address {
        println!("HTTP API on http://{http}");
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    node.stop().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(a) = &cli.command {
        if let Some(n) = a.worker_threads {
            builder.worker_threads(n.max(1));
        }
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(a) => serve(*a).await,
            Command::Dev(a) => dev::run(a).await,
            Command::Status(a) => admin::status(a).await,
            Command::Admin(c) => admin::run(c).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
