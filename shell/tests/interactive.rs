//! The interactive shell driven as a person would, through a pseudo-terminal: typing,
//! multi-line documents, Tab, the up arrow, Ctrl-C, Ctrl-D, colours.
//!
//! Each test starts its own node (see `common`), and keeps HOME and the history file in
//! that node's temp dir, so no test reads or writes the user's own history.

mod common;

use std::process::Command;

use common::{Server, RINGSH};
use rexpect::session::{spawn_with_options, Options, PtySession};

const TIMEOUT_MS: u64 = 20_000;
const UP: &str = "\x1b[A";

/// A person at the `ringsh` prompt.
struct Person {
    pty: PtySession,
    host: String,
}

impl Person {
    /// Start `ringsh` on a terminal connected to `server`, history in `history`.
    fn start(server: &Server, history: &str, extra_env: &[(&str, &str)], strip: bool) -> Self {
        let mut cmd = Command::new(RINGSH);
        cmd.args(["--host", &server.address])
            .env("TERM", "xterm")
            .env("HOME", server.dir.path())
            .env("RINGSH_HISTORY", server.path(history))
            .env_remove("NO_COLOR");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let options = Options::new()
            .timeout_ms(Some(TIMEOUT_MS))
            .strip_ansi_escape_codes(strip);
        let pty = spawn_with_options(cmd, options).expect("spawn ringsh on a pty");
        let mut p = Person {
            pty,
            host: server.address.clone(),
        };
        p.expect("HELP lists statements");
        p.expect(&p.prompt(None));
        p
    }

    /// A plain-text session (escape codes stripped, colour off).
    fn plain(server: &Server) -> Self {
        Person::start(server, "history", &[("NO_COLOR", "1")], true)
    }

    fn prompt(&self, using: Option<&str>) -> String {
        match using {
            Some(c) => format!("ringsh@{}:{c}> ", self.host),
            None => format!("ringsh@{}> ", self.host),
        }
    }

    /// Wait for `text` on the screen; returns everything before it.
    fn expect(&mut self, text: &str) -> String {
        self.pty
            .exp_string(text)
            .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"))
    }

    /// Type a line and press Enter.
    fn type_line(&mut self, line: &str) {
        self.pty.send_line(line).expect("type");
    }

    /// Type keys without Enter.
    fn keys(&mut self, keys: &str) {
        self.pty.send(keys).expect("type");
        self.pty.flush().expect("flush");
    }

    /// Type a statement, wait for `answer`, then for the next prompt.
    fn say(&mut self, line: &str, answer: &str, using: Option<&str>) -> String {
        self.type_line(line);
        let before = self.expect(answer);
        let prompt = self.prompt(using);
        self.expect(&prompt);
        before
    }

    /// Leave with EXIT and wait for the process to end.
    fn exit(mut self) {
        self.type_line("EXIT");
        self.pty.exp_eof().expect("ringsh exits");
    }
}

#[test]
fn typing_a_statement_and_a_multi_line_put() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("STATUS", "NORMAL", None);
    p.type_line("PUT docs d1 {");
    p.expect("...> ");
    p.type_line("  \"title\": \"spans lines; has a semicolon\",");
    p.expect("...> ");
    p.type_line("  \"tags\": [\"a\",");
    p.expect("...> ");
    p.type_line("  \"b\"]}");
    p.expect("ok (acknowledged by n1)");
    p.expect(&p.prompt(None));
    p.say(
        "get docs d1",
        "\"title\": \"spans lines; has a semicolon\"",
        None,
    );
    p.exit();
}

#[test]
fn tab_completes_keywords_and_collection_names() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("PUT inventory apple {\"n\": 7}", "ok (", None);
    p.keys("DESCR\t");
    p.expect("DESCRIBE ");
    p.keys("COLL\t");
    p.expect("COLLECTIONS ");
    p.type_line("");
    p.expect("default replication factor: 1");
    p.expect(&p.prompt(None));
    // A collection name the shell learnt from the cluster, in the user's lower case.
    p.keys("get inv\t");
    p.expect("get inventory ");
    p.type_line("apple");
    p.expect("\"n\": 7");
    p.exit();
}

#[test]
fn up_arrow_recalls_history_within_and_across_sessions() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("CONSISTENCY ALL", "Consistency level set to ALL.", None);
    p.say("CONSISTENCY ONE", "Consistency level set to ONE.", None);
    p.keys(UP);
    p.keys(UP);
    p.type_line("");
    p.expect("Consistency level set to ALL.");
    p.expect(&p.prompt(None));
    p.exit();

    let saved = std::fs::read_to_string(s.path("history")).expect("history file");
    assert!(saved.contains("CONSISTENCY ONE"), "{saved}");

    // A new session starts at the default level and recalls the old statements.
    let mut p = Person::plain(&s);
    p.say("CONSISTENCY", "Current consistency level is QUORUM.", None);
    p.keys(UP);
    p.keys(UP);
    p.type_line("");
    p.expect("Consistency level set to ALL.");
    p.exit();
}

#[test]
fn use_then_short_statements() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("GET k", "USE <collection> first", None);
    p.say("USE docs", "using collection docs", Some("docs"));
    p.say("PUT k {\"short\": true}", "ok (", Some("docs"));
    p.say("GET k", "\"short\": true", Some("docs"));
    p.say("GET docs k LOCAL", "\"short\": true", Some("docs"));
    p.say("DELETE k", "ok (", Some("docs"));
    p.say("GET k", "docs/k: not found", Some("docs"));
    p.exit();
}

#[test]
fn create_collection_then_describe() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say(
        "CREATE COLLECTION events WITH replication = 1",
        "created collection events with replication 1",
        None,
    );
    let table = p.say(
        "DESCRIBE COLLECTIONS",
        "default replication factor: 1",
        None,
    );
    assert!(table.contains("COLLECTION"), "{table}");
    assert!(table.contains("events"), "{table}");
    // The new name is offered by Tab at once.
    p.keys("USE ev\t");
    p.expect("USE events ");
    p.type_line("");
    p.expect(&p.prompt(Some("events")));
    p.exit();
}

#[test]
fn typos_get_suggestions_and_siblings_are_numbered() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("GTE docs k", "did you mean GET?", None);
    p.say("HELP RESOLVE", "Examples:", None);
    p.say("PUT docs s {\"v\": 1}", "ok (", None);
    p.say("PUT docs s {\"v\": 2}", "ok (", None);
    let shown = p.say("GET docs s", "resolve: RESOLVE docs s", None);
    assert!(shown.contains("2 siblings"), "{shown}");
    assert!(
        shown.contains("(1) {") && shown.contains("(2) {"),
        "{shown}"
    );
    assert!(shown.contains("context: "), "{shown}");
    p.say(
        "RESOLVE docs s {\"v\": 3}",
        "replaced the 2 siblings GET showed",
        None,
    );
    p.say("RESOLVE docs s {\"v\": 4}", "GET docs s first", None);
    p.exit();
}

#[test]
fn ctrl_c_drops_the_input_and_ctrl_d_leaves() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.type_line("PUT docs k {");
    p.expect("...> ");
    p.pty.send_control('c').expect("ctrl-c");
    p.expect(&p.prompt(None));
    // The dropped half statement is gone: this runs on its own.
    p.say("GET docs k", "docs/k: not found", None);
    // Risky statements ask first; no is the default.
    p.type_line("DECOMMISSION");
    p.expect("[y/N] ");
    p.type_line("");
    p.expect("not done");
    p.expect(&p.prompt(None));
    p.pty.send_control('d').expect("ctrl-d");
    p.pty.exp_eof().expect("ringsh exits on Ctrl-D");
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let s = Server::start();
    let mut p = Person::start(&s, "history", &[], false);
    p.type_line("PUT docs c {\"name\": \"Al\", \"n\": 3}");
    p.expect("acknowledged by n1");
    p.type_line("GET docs c");
    p.expect("\x1b[34m\"name\"\x1b[0m: \x1b[32m\"Al\"\x1b[0m");
    p.expect("\x1b[33m3\x1b[0m");
    p.type_line("EXIT");
    p.pty.exp_eof().expect("exit");

    let mut p = Person::start(&s, "history", &[("NO_COLOR", "1")], false);
    p.type_line("GET docs c");
    let shown = p.expect("\"Al\"");
    p.expect("context:");
    assert!(!shown.contains("\x1b[34m"), "NO_COLOR: {shown:?}");
    p.type_line("EXIT");
    p.pty.exp_eof().expect("exit");
}

#[test]
fn ctrl_c_stops_waiting_for_a_hung_request() {
    let s = Server::start();
    let mut p = Person::plain(&s);
    p.say("STATUS", "NORMAL", None);
    s.signal("STOP");
    p.type_line("GET docs k");
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.pty.send_control('c').expect("ctrl-c");
    p.expect("error: CANCELLED: stopped waiting (Ctrl-C)");
    p.expect(&p.prompt(None));
    s.signal("CONT");
    p.say("GET docs k", "docs/k: not found", None);
    p.exit();
}
