//! Cluster harness for RingDB's integration and fault tests: real `ringdb` processes on
//! loopback ports, each with its own data directory and log file.
//!
//! Binaries are found beside the test executable (`cargo test --workspace` builds them), or
//! through `RINGDB_BIN` / `RINGSH_BIN`. Waiting is always a deadline loop, never a bare sleep.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringdb_client::{Client, ClientBuilder, Routing};

pub mod faults;
pub mod history;
mod http;
pub mod indexes;
pub mod load;
pub mod sim;

pub use http::{http, HttpAnswer};

/// Path of a workspace binary built next to the running test; panics with what to do
/// when it is not there.
pub fn binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|looked| {
        panic!(
            "{} not found: build the binaries first (`cargo test --workspace` does), or set {}",
            looked.display(),
            binary_var(name)
        )
    })
}

fn binary_var(name: &str) -> String {
    format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"))
}

/// Path of a workspace binary: `<NAME>_BIN` if set, else beside the running executable
/// (a binary of this crate, like the soak runner) or one directory up (a test, which runs
/// from `target/<profile>/deps`). `Err` carries the path looked at last.
pub fn find_binary(name: &str) -> Result<PathBuf, PathBuf> {
    if let Ok(p) = std::env::var(binary_var(name)) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().expect("current executable");
    let beside = exe.parent().expect("target dir").join(name);
    if beside.exists() {
        return Ok(beside);
    }
    let up = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    if up.exists() {
        Ok(up)
    } else {
        Err(up)
    }
}

/// Run the `ringdb` command line against `host`: (exit status success, stdout, stderr).
pub fn run_ringdb(host: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("ringdb"))
        .args(args)
        .args(["--host", host])
        .output()
        .expect("run ringdb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Poll `cond` until it returns true or `within` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the harness's own clients reach nodes started with TLS or `--auth`.
#[derive(Clone, Default)]
pub struct Access {
    /// The cluster CA (PEM): connect with TLS.
    pub tls_ca: Option<Vec<u8>>,
    /// The token to send.
    pub token: Option<String>,
}

impl Access {
    /// A client builder for `addresses` with this access.
    pub fn builder<I, S>(&self, addresses: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut b = Client::builder(addresses);
        if let Some(ca) = &self.tls_ca {
            b = b.tls_ca_pem(ca.clone());
        }
        if let Some(t) = &self.token {
            b = b.token(t.clone());
        }
        b
    }
}

/// One `ringdb serve` process.
pub struct NodeProc {
    /// Node id.
    pub id: String,
    /// `127.0.0.1:port`.
    pub address: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file (stderr).
    pub log: PathBuf,
    seeds: Vec<String>,
    extra: Vec<String>,
    child: Option<Child>,
    /// How the harness's clients reach it.
    pub access: Access,
    /// Where its HTTP/JSON API listens, when it serves one.
    pub http_address: Option<String>,
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling a child process we spawned and have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

impl NodeProc {
    /// Start a node outside any `Cluster` (its data and log under `dir`), seeded by
    /// `seeds`; returns at once, without waiting for it to serve.
    pub fn launch(
        id: &str,
        dir: &Path,
        seeds: Vec<String>,
        extra: &[&str],
        access: Access,
    ) -> NodeProc {
        let address = format!("127.0.0.1:{}", free_port());
        let mut node = NodeProc::at(id, address, dir, seeds, extra, access);
        node.spawn();
        node
    }

    /// A node at `address` with its data and log under `dir`, not started yet.
    fn at(
        id: &str,
        address: String,
        dir: &Path,
        seeds: Vec<String>,
        extra: &[&str],
        access: Access,
    ) -> NodeProc {
        NodeProc {
            id: id.to_string(),
            address,
            data_dir: dir.join(id),
            log: dir.join(format!("{id}.log")),
            seeds,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            access,
            http_address: None,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(binary("ringdb"));
        cmd.args(["serve", "--node-id", &self.id, "--listen", &self.address])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(if self.extra.iter().any(|a| a == "--gossip-interval-ms") {
                &[][..]
            } else {
                &["--gossip-interval-ms", "200"][..]
            })
            .args(&self.extra)
            .env("RINGDB_LOG", "info,ringdb_node=debug")
            .stdout(Stdio::null())
            .stderr(log);
        if !self.seeds.is_empty() {
            cmd.args(["--seeds", &self.seeds.join(",")]);
        }
        if let Some(http) = &self.http_address {
            cmd.args(["--http-listen", http]);
        }
        self.child = Some(cmd.spawn().expect("spawn ringdb serve"));
    }

    /// Whether the process is running (not killed or stopped by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A client that talks only to this node (routing off, so this node coordinates
    /// every request).
    pub async fn client(&self) -> Client {
        self.access
            .builder([self.address.as_str()])
            .routing(Routing::RoundRobin)
            .connect()
            .await
            .expect("client")
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            let _ = c.wait();
        }
    }

    /// Freeze the process (SIGSTOP): it holds its sockets but answers nothing.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            signal(c, libc::SIGSTOP);
        }
    }

    /// Thaw a paused process.
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            signal(c, libc::SIGCONT);
        }
    }

    /// Replace the extra `ringdb serve` flags (and client access) the next `restart` uses.
    pub fn set_flags(&mut self, extra: &[&str], access: Access) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.access = access;
    }

    /// Start again on the same port and data directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "node {} is still running", self.id);
        self.spawn();
        self.wait_serving().await;
    }

    /// Wait until the node serves and calls itself NORMAL (done joining); on timeout the
    /// panic message carries the node's log. The bound rules out "never", not "slow": a
    /// debug build joining under 16 writers on 2 shared cores streams for ~20 s, and took
    /// over 60 s once with a soak running beside it. Join speed is measured, not tested.
    pub async fn wait_serving(&self) {
        let client = self.client().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            if client.status().await.is_ok_and(|s| {
                s.serving
                    && s.nodes
                        .iter()
                        .any(|m| m.id == self.id && m.status == "NORMAL")
            }) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} did not serve as NORMAL within 180 s; its log:\n{}",
                    self.id,
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every version (tombstones as `None`) of `collection`/`key` in this node's own replica
    /// (raw `Admin.LocalGet`); empty when the replica has never seen the key.
    pub async fn local_versions(&self, collection: &str, key: &str) -> Vec<Option<Vec<u8>>> {
        use ringdb_proto::v1::admin_client::AdminClient;
        use ringdb_proto::v1::LocalGetRequest;
        let mut admin = AdminClient::connect(format!("http://{}", self.address))
            .await
            .expect("admin connection");
        let r = admin
            .local_get(LocalGetRequest {
                collection: collection.into(),
                key: key.into(),
            })
            .await
            .expect("LocalGet")
            .into_inner();
        r.versions
            .into_iter()
            .map(|v| v.value.map(|b| b.to_vec()))
            .collect()
    }

    /// Every entry key of the index on `path` of `collection` in this node's own replica
    /// (raw `Admin.LocalIndexScan`, paged), whatever the index's state.
    pub async fn local_index_entries(
        &self,
        collection: &str,
        path: &str,
    ) -> std::collections::BTreeSet<Vec<u8>> {
        use ringdb_proto::v1::admin_client::AdminClient;
        use ringdb_proto::v1::LocalIndexScanRequest;
        const PAGE: u32 = 10_000;
        let mut admin = AdminClient::connect(format!("http://{}", self.address))
            .await
            .expect("admin connection");
        let mut out = std::collections::BTreeSet::new();
        let mut after = Vec::new();
        loop {
            let page = admin
                .local_index_scan(LocalIndexScanRequest {
                    collection: collection.into(),
                    path: path.into(),
                    after: after.clone().into(),
                    limit: PAGE,
                })
                .await
                .expect("LocalIndexScan")
                .into_inner();
            let done = page.entries.len() < PAGE as usize;
            if let Some(last) = page.entries.last() {
                after = last.entry.to_vec();
            }
            out.extend(page.entries.into_iter().map(|e| e.entry.to_vec()));
            if done {
                return out;
            }
        }
    }

    /// Last lines of the log, for failure reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProc {
    /// A node never outlives its test (a lone `launch`ed one included).
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

/// Several nodes forming one cluster, torn down (kill -9) on drop.
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<NodeProc>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Start `n` nodes with default settings, one at a time, and wait until all see each other.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// Start `n` nodes passing `extra` flags to every `ringdb serve`.
    pub async fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Self::start_secured(n, extra, Access::default()).await
    }

    /// Start `n` nodes with `extra` flags whose clients (the harness's too) need `access`.
    pub async fn start_secured(n: usize, extra: &[&str], access: Access) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<NodeProc> = Vec::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let address = format!("127.0.0.1:{}", free_port());
            let seeds = nodes
                .first()
                .map(|s| vec![s.address.clone()])
                .unwrap_or_default();
            let mut node = NodeProc::at(&id, address, dir.path(), seeds, extra, access.clone());
            node.spawn();
            node.wait_serving().await;
            nodes.push(node);
        }
        let cluster = Cluster { nodes, _dir: dir };
        cluster.wait_all_up().await;
        cluster
    }

    /// Start `n` nodes at once, every one seeded by all of them (as a deploy script or
    /// compose starts a cluster) and serving the HTTP API too, and wait until each serves
    /// as NORMAL and sees the others.
    pub async fn start_together(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let addresses: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut nodes: Vec<NodeProc> = addresses
            .iter()
            .enumerate()
            .map(|(i, address)| {
                let id = format!("n{}", i + 1);
                let seeds = addresses.clone();
                let access = Access::default();
                let mut node = NodeProc::at(&id, address.clone(), dir.path(), seeds, extra, access);
                node.http_address = Some(format!("127.0.0.1:{}", free_port()));
                node
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_serving().await;
        }
        let cluster = Cluster { nodes, _dir: dir };
        cluster.wait_all_up().await;
        cluster
    }

    /// Every running node's ring (token, owner) as its `Ring` call answers it.
    pub async fn rings(&self) -> Vec<Vec<(i64, String)>> {
        let running = self.nodes.iter().filter(|n| n.is_running());
        futures::future::join_all(
            running.map(|n| async move { n.client().await.ring().await.expect("ring").tokens }),
        )
        .await
    }

    /// Start one more node (seeded by the first) and wait until it has joined (NORMAL).
    pub async fn add_node(&mut self) -> &NodeProc {
        let id = format!("n{}", self.nodes.len() + 1);
        let first = &self.nodes[0];
        let extra: Vec<&str> = first.extra.iter().map(String::as_str).collect();
        let mut node = NodeProc::at(
            &id,
            format!("127.0.0.1:{}", free_port()),
            self._dir.path(),
            vec![first.address.clone()],
            &extra,
            first.access.clone(),
        );
        node.spawn();
        self.nodes.push(node);
        let node = self.nodes.last().expect("just pushed");
        node.wait_serving().await;
        node
    }

    /// Wait until every running node has every node in its ring, the running ones up and
    /// the others down.
    pub async fn wait_all_up(&self) {
        for observer in self.nodes.iter().filter(|n| n.is_running()) {
            let client = observer.client().await;
            let expected: Vec<(String, bool)> = self
                .nodes
                .iter()
                .map(|n| (n.id.clone(), n.is_running()))
                .collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let seen = client.status().await;
                let agrees = seen.as_ref().is_ok_and(|s| {
                    expected.iter().all(|(id, up)| {
                        s.nodes
                            .iter()
                            .any(|m| &m.id == id && m.up == *up && m.ownership > 0.0)
                    })
                });
                if agrees {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    let logs: Vec<String> = self
                        .nodes
                        .iter()
                        .map(|n| format!("--- {} ---\n{}", n.id, n.log_tail(40)))
                        .collect();
                    panic!(
                        "{} did not see {expected:?} within 20 s; it sees {seen:?}\n{}",
                        observer.id,
                        logs.join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Wait until every running node other than `id` sees `id` in `status`.
    pub async fn wait_status(&self, id: &str, status: &str, within: Duration) {
        for observer in self.nodes.iter().filter(|n| n.is_running() && n.id != id) {
            let client = observer.client().await;
            wait_until(
                within,
                &format!("{} to see {id} {status}", observer.id),
                || {
                    let c = client.clone();
                    async move {
                        c.status()
                            .await
                            .is_ok_and(|s| s.nodes.iter().any(|m| m.id == id && m.status == status))
                    }
                },
            )
            .await;
        }
    }

    /// Wait until every running node itself lists every index of `collection` as ready
    /// (queries use an index once the coordinator's own view says so; views lag by about a
    /// gossip interval), asking each node's admin service directly.
    pub async fn wait_indexes_ready(&self, collection: &str, within: Duration) {
        use ringdb_proto::v1::admin_client::AdminClient;
        use ringdb_proto::v1::ListIndexesRequest;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let what = format!("{} to list the indexes of {collection} ready", node.id);
            wait_until(within, &what, || async move {
                let Ok(mut admin) = AdminClient::connect(format!("http://{}", node.address)).await
                else {
                    return false;
                };
                let req = ListIndexesRequest {
                    collection: collection.to_string(),
                };
                admin.list_indexes(req).await.is_ok_and(|r| {
                    let l = r.into_inner().indexes;
                    !l.is_empty() && l.iter().all(|i| i.state == "ready")
                })
            })
            .await;
        }
    }

    /// A client that knows every node.
    pub async fn client(&self) -> Client {
        let access = self
            .nodes
            .first()
            .map(|n| n.access.clone())
            .unwrap_or_default();
        access
            .builder(self.nodes.iter().map(|n| n.address.as_str()))
            .connect()
            .await
            .expect("client")
    }

    /// The directory the nodes' data and logs live in (for test files such as certificates).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Node by id (`n1`...).
    pub fn node(&mut self, id: &str) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!(
                    "----- log of {} ({}) -----\n{}",
                    n.id,
                    n.address,
                    n.log_tail(40)
                );
            }
        }
        for n in &mut self.nodes {
            n.resume();
            n.kill9();
        }
    }
}
