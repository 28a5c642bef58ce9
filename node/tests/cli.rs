//! `ringdb` refuses bad settings with a message and a non-zero exit, never a panic.

use std::process::Command;

fn ringdb(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringdb"))
        .args(args)
        .output()
        .expect("run ringdb");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_node_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = ringdb(&[
        "serve",
        "--node-id",
        "bad id!",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("node id"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unusable_listen_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = ringdb(&[
        "serve",
        "--node-id",
        "n1",
        "--listen",
        "not-an-address",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot listen on not-an-address"), "{err}");
}

#[test]
fn a_data_dir_belongs_to_one_node() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let mut n1 = Command::new(env!("CARGO_BIN_EXE_ringdb"))
        .args([
            "serve",
            "--node-id",
            "n1",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(n1.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("serving on"), "{line}");
    n1.kill().unwrap();
    n1.wait().unwrap();
    let (code, err) = ringdb(&[
        "serve",
        "--node-id",
        "n2",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("belongs to node \"n1\""), "{err}");
}

#[test]
fn missing_required_flags_explain_themselves() {
    let (code, err) = ringdb(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--node-id"), "{err}");
}
