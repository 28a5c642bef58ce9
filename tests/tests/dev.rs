//! `ringdb dev`, the README's first command: starts a cluster, serves, stops on Ctrl-C,
//! and keeps its data for the next start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringdb_tests::binary;
use serde_json::json;

/// Three consecutive free ports (best effort: checked free, then released).
fn free_base_port() -> u16 {
    loop {
        let base = ringdb_tests::free_port();
        if base < 65000
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

/// Kills `ringdb dev` if the test fails before stopping it.
struct Dev(Option<Child>);

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_dev(dir: &std::path::Path, base: u16, http_base: u16) -> (Dev, Vec<String>) {
    let mut child = Command::new(binary("ringdb"))
        .args(["dev", "--base-port", &base.to_string()])
        .args(["--http-base-port", &http_base.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child = Dev(Some(child));
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev did not become ready: {printed:?}"
        );
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, printed)
}

fn interrupt_and_wait(mut dev: Dev) {
    let mut child = dev.0.take().unwrap();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "dev exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "dev did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_starts_a_cluster_stops_on_ctrl_c_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port();
    let http_base = loop {
        let p = free_base_port();
        if p.abs_diff(base) >= 3 {
            break p;
        }
    };
    let hosts: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let https: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", http_base + i))
        .collect();

    let (child, printed) = start_dev(dir.path(), base, http_base);
    let text = printed.join("\n");
    for h in &hosts {
        assert!(text.contains(h), "dev prints every node address: {text}");
    }
    for h in &https {
        assert!(
            text.contains(&format!("http://{h}")),
            "and every HTTP URL: {text}"
        );
    }
    assert!(text.contains("ringsh --host"), "and how to connect: {text}");
    let client = ringdb_client::Client::connect(&hosts).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(
        status.nodes.iter().filter(|n| n.up).count(),
        3,
        "{status:?}"
    );
    client
        .put("dev", "kept", &json!({"across": "restarts"}))
        .await
        .unwrap();
    // What the client wrote, the HTTP API of another node reads.
    let r = ringdb_tests::http(
        &https[2],
        "GET",
        "/v1/dev/kept?consistency=QUORUM",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["values"], json!([{"across": "restarts"}]));
    interrupt_and_wait(child);
    for h in &hosts {
        assert!(
            std::net::TcpStream::connect(h).is_err(),
            "{h} still listening after Ctrl-C"
        );
    }

    let (child, _) = start_dev(dir.path(), base, http_base);
    let client = ringdb_client::Client::connect(&hosts).await.unwrap();
    let read = client
        .get_with(
            "dev",
            "kept",
            &ringdb_client::ReadOptions::new().consistency(ringdb_client::Consistency::All),
        )
        .await
        .unwrap();
    assert_eq!(read.values, vec![json!({"across": "restarts"})]);
    interrupt_and_wait(child);
}
