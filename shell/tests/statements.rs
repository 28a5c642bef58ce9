//! `ringsh -e` / `-f` against a real node: the new statements, their JSON lines, their
//! error lines and the exit status.

mod common;

use common::Server;
use serde_json::{json, Value};

/// Run with `--format json`; every stdout line must be one JSON object.
fn json_run(server: &Server, script: &str) -> (i32, Vec<Value>) {
    let out = server.ringsh(&["--format", "json", "-e", script]);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// Run in table format; returns (exit code, stdout, stderr).
fn table_run(server: &Server, args: &[&str]) -> (i32, String, String) {
    let out = server.ringsh(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn collections_use_and_resolve_as_json_lines() {
    let s = Server::start();
    let (code, out) = json_run(
        &s,
        "CREATE COLLECTION events WITH replication = 1; \
         create collection events if not exists; \
         DESCRIBE COLLECTIONS; \
         USE events; \
         PUT k {\"v\": 1}; PUT k {\"v\": 2}; \
         GET k; \
         RESOLVE k {\"v\": 3}; \
         GET events k",
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out.len(), 9, "{out:?}");
    assert_eq!(
        out[0],
        json!({"ok": true, "collection": {"name": "events", "replication": 1}})
    );
    assert_eq!(out[1]["ok"], true);
    let listed = out[2]["collections"].as_array().unwrap();
    assert!(
        listed.contains(&json!({"name": "events", "replication": 1})),
        "{listed:?}"
    );
    assert_eq!(out[2]["default_replication"], 1);
    assert_eq!(out[3], json!({"ok": true, "using": "events"}));
    assert_eq!(out[6]["key"], "k");
    assert_eq!(
        out[6]["values"].as_array().unwrap().len(),
        2,
        "two blind PUTs are siblings"
    );
    assert_eq!(out[7]["ok"], true);
    assert_eq!(out[8]["values"], json!([{"v": 3}]), "RESOLVE replaced both");
}

#[test]
fn failures_are_one_line_each_and_set_the_exit_status() {
    let s = Server::start();
    let (code, out) = json_run(
        &s,
        "GET k; RESOLVE docs nothing {}; CREATE COLLECTION c; CREATE COLLECTION c; REMOVENODE ghost; STATUS",
    );
    assert_eq!(code, 1);
    let codes: Vec<&str> = out
        .iter()
        .map(|v| v["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "INVALID_ARGUMENT",
            "FAILED_PRECONDITION",
            "ok",
            "ALREADY_EXISTS",
            "NOT_FOUND",
            "ok"
        ]
    );
    assert!(out[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("USE <collection> first"));

    let (code, stdout, stderr) = table_run(
        &s,
        &[
            "-e",
            "GTE docs k; RESOLVE docs nothing {}; CREATE COLLECTION c; DESCRIBE COLLECTION; STATUS",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("NORMAL"),
        "later statements still ran: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "one line per failure: {stderr}");
    assert!(lines.iter().all(|l| l.starts_with("error: ")), "{stderr}");
    assert!(lines[0].contains("did you mean GET?"), "{stderr}");
    assert!(lines[1].contains("GET docs nothing first"), "{stderr}");
    assert!(lines[2].contains("ALREADY_EXISTS") && lines[2].contains("IF NOT EXISTS"));
    assert!(lines[3].contains("did you mean COLLECTIONS?"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
fn unavailable_says_what_to_do() {
    let s = Server::start();
    let (code, _, stderr) = table_run(
        &s,
        &[
            "-e",
            "CREATE COLLECTION wide WITH replication = 3; PUT wide k {\"a\": 1}",
        ],
    );
    assert_eq!(code, 1);
    let line = stderr.trim();
    assert!(line.starts_with("error: UNAVAILABLE: "), "{line}");
    assert!(line.contains("wide/k"), "{line}");
    assert!(
        line.ends_with("— retry later or use CONSISTENCY ONE"),
        "{line}"
    );
    // Following the advice works.
    let (code, stdout, stderr) = table_run(&s, &["-e", "CONSISTENCY ONE; PUT wide k {\"a\": 1}"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (acknowledged by n1)"), "{stdout}");
}

#[test]
fn siblings_are_numbered_and_output_is_plain_when_piped() {
    let s = Server::start();
    let (code, stdout, stderr) = table_run(
        &s,
        &[
            "-e",
            "PUT docs s {\"v\": 1}; PUT docs s {\"v\": 2}; GET docs s; RESOLVE docs s {\"v\": 3}; RESOLVE docs s {\"v\": 4}; GET docs s",
        ],
    );
    assert_eq!(code, 1, "the second RESOLVE has no GET before it: {stderr}");
    assert!(
        !stdout.contains('\x1b'),
        "no colour into a pipe: {stdout:?}"
    );
    assert!(stdout.contains("docs/s: 2 siblings"), "{stdout}");
    assert!(stdout.contains("(1) {\n  \"v\": 1\n}"), "{stdout}");
    assert!(stdout.contains("(2) {\n  \"v\": 2\n}"), "{stdout}");
    assert!(stdout.contains("context: "), "{stdout}");
    assert!(stdout.contains("RESOLVE docs s <merged json>"), "{stdout}");
    assert!(
        stdout.contains("replaced the 2 siblings GET showed"),
        "{stdout}"
    );
    assert!(stdout.contains("{\n  \"v\": 3\n}"), "{stdout}");
    assert!(stderr.contains("GET docs s first"), "{stderr}");
}

#[test]
fn source_runs_files_and_reports_their_failures() {
    let s = Server::start();
    let inner = s.path("inner.rsh");
    std::fs::write(
        &inner,
        "USE docs\nPUT d1 {\n  \"title\": \"from a file\"\n}\n",
    )
    .unwrap();
    let outer = s.path("outer rsh");
    std::fs::write(
        &outer,
        format!(
            "-- an outer script {{\nSOURCE {:?}\nGET d1\nPUT d2 [1]\n",
            inner.display().to_string()
        ),
    )
    .unwrap();
    let script = format!("SOURCE {:?}; GET docs d1", outer.display().to_string());
    let (code, out) = json_run(&s, &script);
    assert_eq!(code, 1, "PUT d2 [1] failed inside the file: {out:?}");
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(out[2]["values"], json!([{"title": "from a file"}]));
    assert_eq!(out[3]["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(out[4]["values"], json!([{"title": "from a file"}]));

    let (code, out) = json_run(&s, "SOURCE /nonexistent/file.rsh");
    assert_eq!(code, 1);
    assert!(out[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot read /nonexistent/file.rsh"));

    let looped = s.path("loop.rsh");
    std::fs::write(&looped, format!("SOURCE {}\n", looped.display())).unwrap();
    let (code, _, stderr) = table_run(&s, &["-f", looped.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("more than 16 deep"), "{stderr}");
}

#[test]
fn status_and_admin_statements() {
    let s = Server::start();
    let (code, out) = json_run(&s, "STATUS");
    assert_eq!(code, 0);
    let node = &out[0]["nodes"][0];
    for field in [
        "id",
        "address",
        "up",
        "status",
        "ownership",
        "keys",
        "bytes",
        "hints",
        "zone",
    ] {
        assert!(
            node.get(field).is_some(),
            "STATUS node lacks {field}: {node}"
        );
    }
    // The only node cannot leave while a collection needs it: the server's reason, one line.
    let (code, out) = json_run(&s, "PUT docs k {}; DECOMMISSION");
    assert_eq!(code, 1);
    assert_eq!(out[1]["error"]["code"], "FAILED_PRECONDITION", "{out:?}");
    let (code, stdout, _) = table_run(&s, &["-e", "RING"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("tokens, replication factor 1"), "{stdout}");
}

#[test]
fn repair_and_repair_status_report_as_json_lines() {
    let s = Server::start();
    let (code, out) = json_run(
        &s,
        "PUT docs k {\"v\": 1}; REPAIR; REPAIR docs; REPAIR STATUS",
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out.len(), 4, "{out:?}");
    // One node: no peer to compare with, so nothing to repair, but the pass runs.
    assert_eq!(out[1]["ok"], true, "{out:?}");
    assert_eq!(out[1]["failed"], 0);
    assert_eq!(out[2]["keys_repaired"], 0);
    assert_eq!(out[3]["passes"], 2, "{out:?}");
    assert!(out[3]["last_pass_ms"].as_u64().is_some(), "{out:?}");
    assert!(
        out[3]["roots"]["docs"].is_string(),
        "the tree of docs has a root: {out:?}"
    );
    let (code, _, err) = table_run(&s, &["-e", "REPAIR bad,name"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("bad,name"),
        "{err}"
    );
}

#[test]
fn a_put_with_ttl_reads_as_deleted_once_it_expires() {
    let s = Server::start();
    let (code, out) = json_run(&s, "PUT docs t {\"v\": 1} TTL 1; GET docs t");
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[1]["values"], json!([{"v": 1}]));
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let (code, out) = json_run(&s, "GET docs t; GET docs t LOCAL");
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0]["values"], json!([]), "{out:?}");
    assert_eq!(out[1]["values"], json!([]), "{out:?}");
    let (code, _, err) = table_run(&s, &["-e", "PUT docs t {} TTL never"]);
    assert_eq!(code, 1);
    assert!(err.contains("TTL must be a whole number"), "{err}");
}
