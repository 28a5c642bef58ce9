//! A real one-node RingDB for the shell's tests: `ringdb serve` on a free loopback port
//! with its own data directory, stopped when dropped.
//!
//! The `ringdb` binary is not part of this crate, so cargo does not build it for
//! `cargo test -p ringdb-shell`: it is found through `RINGDB_BIN` or beside the test
//! executable (`target/debug/ringdb`), and a missing binary fails the test with the
//! command that builds it. CI builds it (`cargo build --workspace --bins`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `ringsh` binary under test.
pub const RINGSH: &str = env!("CARGO_BIN_EXE_ringsh");

/// Where the `ringdb` server binary is; panics with how to build it if it is absent.
pub fn ringdb_bin() -> PathBuf {
    let path = match std::env::var_os("RINGDB_BIN") {
        Some(p) => PathBuf::from(p),
        // target/<profile>/deps/<test> -> target/<profile>/ringdb
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| {
                exe.parent()
                    .and_then(Path::parent)
                    .map(|d| d.join("ringdb"))
            })
            .unwrap_or_else(|| PathBuf::from("ringdb")),
    };
    assert!(
        path.exists(),
        "these tests need a running RingDB server, and the ringdb binary is not at {}.\n\
         Build it first:  cargo build -p ringdb-node --bin ringdb\n\
         (CI's `cargo build --workspace --bins` does), or set RINGDB_BIN to its path.",
        path.display()
    );
    path
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `ringdb serve` node with replication factor 1.
pub struct Server {
    /// `127.0.0.1:port`.
    pub address: String,
    /// Holds the data directory, the log and anything a test writes (scripts, history).
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Server {
    /// Start a node and wait until it answers STATUS as NORMAL (at most 30 s).
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("ringdb.log")).expect("log file");
        let child = Command::new(ringdb_bin())
            .args(["serve", "--node-id", "n1", "--listen", &address])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--replication-factor", "1", "--worker-threads", "1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ringdb serve");
        let server = Server {
            address,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = server.ringsh(&["--format", "json", "-e", "STATUS"]);
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("NORMAL") {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "ringdb did not come up at {}; its log:\n{}",
                server.address,
                std::fs::read_to_string(server.dir.path().join("ringdb.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run `ringsh --host <this node> ARGS` to completion.
    pub fn ringsh(&self, args: &[&str]) -> Output {
        Command::new(RINGSH)
            .args(["--host", &self.address])
            .args(args)
            .env("RINGSH_HISTORY", "")
            .output()
            .expect("run ringsh")
    }

    /// Freeze (`STOP`) or thaw (`CONT`) the node process, to make requests hang.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// A path inside this server's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
