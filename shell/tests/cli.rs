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

fn run(args: &[&str]) -> (i32, String, String) {
    let host = format!("127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_ringsh"))
        .args(["--host", &host])
        .args(args)
        .env("RINGSH_HISTORY", "")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_needs_no_server_and_lists_every_statement() {
    let (code, stdout, stderr) = run(&["-e", "HELP; help create; HELP quit"]);
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "GET",
        "PUT",
        "DELETE",
        "RESOLVE",
        "USE",
        "CREATE",
        "DESCRIBE",
        "CONSISTENCY",
        "STATUS",
        "RING",
        "DECOMMISSION",
        "REMOVENODE",
        "SOURCE",
        "HELP",
        "EXIT",
    ] {
        assert!(
            stdout.contains(&format!("  {name} ")),
            "HELP lacks {name}: {stdout}"
        );
    }
    assert!(stdout.contains("CREATE COLLECTION <name> [WITH replication = N] [IF NOT EXISTS]"));
    assert!(stdout.contains("Examples:"));
    assert!(stdout.contains("EXIT | QUIT"));

    let (code, stdout, _) = run(&["--format", "json", "-e", "HELP GET"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert!(v["help"]
        .as_str()
        .unwrap()
        .starts_with("GET [<collection>] <key>"));
}

#[test]
fn short_forms_without_use_fail_before_any_request() {
    let (code, stdout, _) = run(&["--format", "json", "-e", "GET k; PUT k {}; EXIT; STATUS"]);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "EXIT stops the script: {stdout}");
    for l in &lines {
        assert_eq!(l["error"]["code"], "INVALID_ARGUMENT");
        assert!(l["error"]["message"]
            .as_str()
            .unwrap()
            .contains("USE <collection> first"));
    }
}

#[test]
fn unreachable_node_is_one_readable_line_with_a_hint() {
    let (code, _, stderr) = run(&["-e", "STATUS"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: UNAVAILABLE: "), "{stderr}");
    assert!(lines[0].contains("ringdb dev"), "{stderr}");
}
