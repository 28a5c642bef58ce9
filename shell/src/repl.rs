//! The interactive shell: line editing, history across sessions, completion, multi-line
//! statements, Ctrl-C and Ctrl-D.
//!
//! Invariants: a statement is run only once its JSON is balanced (until then the prompt is
//! `...> `); Ctrl-C at the prompt drops the pending input, Ctrl-C while a statement runs
//! stops waiting for it; Ctrl-D (or EXIT) leaves; history is appended after every entry so
//! a killed shell loses nothing.

use std::path::PathBuf;

use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::Editor;
use tokio::runtime::Runtime;

use crate::complete::ShellHelper;
use crate::error::ShellError;
use crate::exec::{Flow, Session};
use crate::parse::{self, is_incomplete, Statement};

/// Where history lives: `$RINGSH_HISTORY` (empty: keep none), else `~/.ringsh_history`.
pub fn history_path() -> Option<PathBuf> {
    match std::env::var_os("RINGSH_HISTORY") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ringsh_history")),
    }
}

/// The prompt: `ringsh@HOST> `, or `ringsh@HOST:COLLECTION> ` after USE.
pub fn prompt(host: &str, using: Option<&str>) -> String {
    match using {
        Some(c) => format!("ringsh@{host}:{c}> "),
        None => format!("ringsh@{host}> "),
    }
}

/// The continuation prompt, `...> ` right-aligned under `prompt`.
pub fn continuation(prompt: &str) -> String {
    let width = prompt.chars().count();
    format!("{:>width$}", "...> ")
}

/// Ask a yes/no question on the terminal; anything but y/yes is no.
fn confirm(editor: &mut Editor<ShellHelper, FileHistory>, question: &str) -> bool {
    match editor.readline(&format!("{question} [y/N] ")) {
        Ok(a) => matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        Err(_) => false,
    }
}

/// Run one statement, giving up on it (not on the shell) at Ctrl-C.
fn run_one(rt: &Runtime, session: &mut Session, st: Statement) -> Flow {
    let outcome = rt.block_on(async {
        tokio::select! {
            r = session.run_parsed(st) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some((_, flow)) => flow,
        None => {
            session.report(&ShellError::Cancelled);
            Flow::Continue
        }
    }
}

/// Run the interactive shell until EXIT or Ctrl-D. `hosts[0]` is shown in the prompt.
pub fn run(rt: &Runtime, session: &mut Session, hosts: &[String]) -> Result<(), ReadlineError> {
    let host = hosts.first().map_or("?", String::as_str);
    let config = Config::builder()
        .max_history_size(2000)?
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(ShellHelper::new(session.collection_cache())));
    let history = history_path();
    if let Some(p) = &history {
        // A missing file is a first run; an unreadable one only costs the old entries.
        let _ = editor.load_history(p);
    }
    println!(
        "ringsh {} connected to {} — HELP lists statements, Tab completes, EXIT or Ctrl-D quits.",
        env!("CARGO_PKG_VERSION"),
        hosts.join(", ")
    );
    rt.block_on(session.refresh_collections());
    let mut buffer = String::new();
    let mut history_warned = false;
    loop {
        let main = prompt(host, session.using());
        let p = if buffer.is_empty() {
            main.clone()
        } else {
            continuation(&main)
        };
        let line = match editor.readline(&p) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => {
                println!();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if is_incomplete(&buffer) {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        if text.trim().is_empty() {
            continue;
        }
        let leaving = matches!(text.trim().to_ascii_uppercase().as_str(), "EXIT" | "QUIT");
        if !leaving {
            let _ = editor.add_history_entry(text.trim_end());
        }
        if let (Some(p), false) = (&history, leaving) {
            if let Err(e) = editor.append_history(p) {
                if !history_warned {
                    eprintln!("warning: cannot save history to {}: {e}", p.display());
                    history_warned = true;
                }
            }
        }
        for st in parse::split(&text) {
            let parsed = match parse::parse(&st, session.using()) {
                Ok(p) => p,
                Err(e) => {
                    session.report(&e);
                    continue;
                }
            };
            let question = match &parsed {
                Statement::Decommission => Some(format!(
                    "decommission the node at {host}? It streams its data to the others and leaves the ring."
                )),
                Statement::RemoveNode(id) => Some(format!(
                    "remove node {id} from the ring? Its ranges are re-replicated from the survivors."
                )),
                _ => None,
            };
            if let Some(q) = question {
                if !confirm(&mut editor, &q) {
                    println!("not done");
                    continue;
                }
            }
            if run_one(rt, session, parsed) == Flow::Exit {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        let p = prompt("127.0.0.1:7401", Some("docs"));
        assert_eq!(p, "ringsh@127.0.0.1:7401:docs> ");
        assert_eq!(prompt("h:1", None), "ringsh@h:1> ");
        let c = continuation(&p);
        assert_eq!(c.chars().count(), p.chars().count());
        assert!(c.ends_with("...> "));
    }
}
