//! `TRACING ON` typed at the interactive shell, through a pseudo-terminal, against a real
//! 3-node cluster (the `ringdb-tests` harness): the trace block names the coordinator and
//! the replicas that answered, the hint written for a node killed with kill -9, and the
//! replica a later read repaired because it missed the write (its hint is held by a
//! coordinator that was killed in turn).
//!
//! Like the other terminal tests this needs the `ringdb` binary built beside the test
//! (`cargo build --workspace --bins`).

use std::process::Command;

use rexpect::session::{spawn_with_options, Options, PtySession};
use ringdb_tests::Cluster;

const RINGSH: &str = env!("CARGO_BIN_EXE_ringsh");
const TIMEOUT_MS: u64 = 30_000;

/// A person at the `ringsh` prompt, connected to one node.
struct Person {
    pty: PtySession,
    prompt: String,
}

impl Person {
    fn start(host: &str, home: &std::path::Path) -> Person {
        let mut cmd = Command::new(RINGSH);
        cmd.args(["--host", host])
            .env("TERM", "xterm")
            .env("HOME", home)
            .env("RINGSH_HISTORY", "")
            .env("NO_COLOR", "1");
        let options = Options::new()
            .timeout_ms(Some(TIMEOUT_MS))
            .strip_ansi_escape_codes(true);
        let pty = spawn_with_options(cmd, options).expect("spawn ringsh on a pty");
        let mut p = Person {
            pty,
            prompt: format!("ringsh@{host}> "),
        };
        p.expect("HELP lists statements");
        let prompt = p.prompt.clone();
        p.expect(&prompt);
        p
    }

    /// Wait for `text` (ASCII: the pty reader sees bytes, not UTF-8 characters); returns
    /// everything before it, decoded as UTF-8 again.
    fn expect(&mut self, text: &str) -> String {
        let seen = self
            .pty
            .exp_string(text)
            .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"));
        let bytes: Vec<u8> = seen.chars().map(|c| c as u32 as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Type a statement, wait for `answer`, then for the prompt; returns what came
    /// between the statement and `answer`.
    fn say(&mut self, line: &str, answer: &str) -> String {
        self.pty.send_line(line).expect("type");
        let before = self.expect(answer);
        let prompt = self.prompt.clone();
        self.expect(&prompt);
        before
    }
}

/// The node id after "coordinator " in a trace header.
fn coordinator(shown: &str) -> String {
    let at = shown
        .find("coordinator ")
        .unwrap_or_else(|| panic!("no coordinator in {shown}"));
    shown[at + "coordinator ".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn tracing_shows_the_coordinator_the_replicas_hints_and_read_repair() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cluster = rt.block_on(Cluster::start_with(3, &["--aae-interval-secs", "0"]));
    let home = tempfile::tempdir().expect("home");
    let mut p = Person::start(&cluster.nodes[0].address, home.path());

    p.say("TRACING", "Tracing is off.");
    p.say("TRACING ON", "Tracing is on");
    let shown = p.say(
        "PUT docs k {\"v\": 1} CONSISTENCY ALL",
        "3 acknowledged (3 needed)",
    );
    assert!(shown.contains("trace: write · coordinator n"), "{shown}");
    assert!(shown.contains("ALL needs 3"), "{shown}");
    let who = coordinator(&shown);
    assert!(
        shown.contains(&format!("{who}  local")),
        "the coordinator wrote its own copy: {shown}"
    );
    for n in ["n1", "n2", "n3"] {
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no line for {n}: {shown}"));
        assert!(line.contains(" ok"), "{n} acknowledged: {line}");
    }
    let shown = p.say("GET docs k", "no read repair");
    assert!(shown.contains("replies agreed"), "{shown}");
    assert!(shown.contains("\"v\": 1"), "{shown}");
    assert!(shown.contains("digest "), "{shown}");

    // kill -9 n3: the next write is hinted for it.
    rt.block_on(async {
        cluster.node("n3").kill9();
        cluster.wait_all_up().await;
    });
    let shown = p.say("PUT docs k2 {\"v\": 2}", "hints stored for n3");
    assert!(shown.contains("(n3 down)"), "{shown}");
    assert!(shown.contains("down; hint stored"), "{shown}");
    let holder = coordinator(&shown);
    assert_ne!(holder, "n3");

    // Kill the node holding the hint, bring n3 back: n3 still lacks k2, and a read of it
    // by the surviving replica and n3 differs and repairs n3.
    rt.block_on(async {
        cluster.node(&holder).kill9();
        cluster.node("n3").restart().await;
        cluster.wait_all_up().await;
    });
    let shown = p.say("GET docs k2", "read repair sent to n3");
    assert!(shown.contains("replies differed"), "{shown}");
    assert!(shown.contains("holds nothing"), "n3's empty reply: {shown}");
    assert!(shown.contains(&format!("({holder} down)")), "{shown}");

    p.say("TRACING OFF", "Tracing is off.");
    let shown = p.say("GET docs k2", "context:");
    assert!(!shown.contains("trace:"), "{shown}");
    p.pty.send_line("EXIT").expect("type");
    p.pty.exp_eof().expect("ringsh exits");
}
