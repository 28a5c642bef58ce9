//! `ringsh` reports failures as one line and a non-zero exit.

use std::io::Write;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn unreachable_cluster_is_an_error_line_and_exit_status() {
    let host = format!("127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_ringsh"))
        .args(["--host", &host, "--format", "json", "-e", "GET users alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(v["error"]["code"], "UNAVAILABLE", "{line}");
}

#[test]
fn parse_errors_from_stdin_fail_the_run_without_a_server() {
    let host = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringsh"))
        .args(["--host", &host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GTE users alice\nCONSISTENCY ALL\nCONSISTENCY\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean GET"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Current consistency level is ALL"),
        "later statements still ran: {stdout}"
    );
}
