//! The shell's one error type: every failure a statement can have, each with the gRPC-style
//! code scripts see and a one-line message people read.
//!
//! Invariants: `message()` is a single line (no newlines, no backtrace); `hint()` says what
//! to do next when there is something useful to say; nothing here panics.

use ringdb_client::Error as ClientError;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The statement text is not valid: nothing was sent to the cluster.
    #[error("{0}")]
    Parse(String),
    /// A short form (`GET <key>`) was used without `USE <collection>` first.
    #[error("{statement} <key> needs a collection: USE <collection> first, or write {statement} <collection> <key>")]
    NoCollection {
        /// The statement keyword, as the user will type it again.
        statement: &'static str,
    },
    /// `RESOLVE` of a key this session has not read.
    #[error("no context for {collection}/{key} in this session: GET {collection} {key} first (RESOLVE replaces the siblings that GET showed)")]
    NoContext {
        /// Collection of the key.
        collection: String,
        /// The key.
        key: String,
    },
    /// A `SOURCE` file could not be read, or files source each other too deeply.
    #[error("{0}")]
    Source(String),
    /// The interrupted statement stopped waiting; a write may or may not have been applied.
    #[error(
        "stopped waiting (Ctrl-C); a write that was under way may or may not have been applied"
    )]
    Cancelled,
    /// The cluster (or the client library) refused or failed the request.
    #[error("{}", .0.message())]
    Client(#[from] ClientError),
}

impl ShellError {
    /// The code shown to people and in `--format json` (`{"error": {"code": ...}}`).
    pub fn code(&self) -> &'static str {
        match self {
            ShellError::Parse(_) | ShellError::NoCollection { .. } => "INVALID_ARGUMENT",
            ShellError::NoContext { .. } => "FAILED_PRECONDITION",
            ShellError::Source(_) => "NOT_FOUND",
            ShellError::Cancelled => "CANCELLED",
            ShellError::Client(e) => e.code(),
        }
    }

    /// The message on one line, whatever the server or transport put in it.
    pub fn message(&self) -> String {
        one_line(&self.to_string())
    }

    /// What the user could do about it, when the code alone does not say.
    pub fn hint(&self) -> Option<String> {
        let ShellError::Client(e) = self else {
            return None;
        };
        match e {
            ClientError::Unavailable(m) => Some(match replicas_up(m) {
                Some(0) => "retry later, when one of its replicas is back".to_string(),
                Some(up) => format!("retry later or use CONSISTENCY {}", level_for(up)),
                None => "retry later".to_string(),
            }),
            ClientError::Unreachable(_) => Some(
                "is ringdb running there? `ringdb dev` starts a local cluster; --host chooses the node"
                    .to_string(),
            ),
            ClientError::Timeout(m) if m.contains("write") => {
                Some("the write may still have been stored: GET the key to see".to_string())
            }
            ClientError::Timeout(_) => Some("retry, or use a lower CONSISTENCY".to_string()),
            ClientError::AlreadyExists(_) => {
                Some("add IF NOT EXISTS to accept an existing one".to_string())
            }
            ClientError::Overloaded(_) => Some("slow down and retry".to_string()),
            _ => None,
        }
    }

    /// `CODE: message — hint`, the text after `error: ` in table format.
    pub fn human(&self) -> String {
        match self.hint() {
            Some(h) => format!("{}: {} — {h}", self.code(), self.message()),
            None => format!("{}: {}", self.code(), self.message()),
        }
    }
}

/// Collapse newlines and runs of whitespace so an error is always one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The number in "... but only 1 is up ..." of the server's UNAVAILABLE message.
fn replicas_up(message: &str) -> Option<usize> {
    let rest = &message[message.find("only ")? + 5..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The highest named level that `up` live replicas can meet.
fn level_for(up: usize) -> &'static str {
    match up {
        1 => "ONE",
        2 => "TWO",
        _ => "THREE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_suggests_a_level_the_live_replicas_can_meet() {
        let e = ShellError::from(ClientError::Unavailable(
            "QUORUM write of docs/k needs 2 of its 3 replicas but only 1 is up (n2, n3 down); nothing was written".into(),
        ));
        let line = e.human();
        assert!(
            line.starts_with("UNAVAILABLE: QUORUM write of docs/k"),
            "{line}"
        );
        assert!(
            line.ends_with(" — retry later or use CONSISTENCY ONE"),
            "{line}"
        );
        let none_up = ShellError::from(ClientError::Unavailable(
            "ONE read of d/k needs 1 of its 3 replicas but only 0 are up".into(),
        ));
        assert!(none_up.human().contains("when one of its replicas is back"));
    }

    #[test]
    fn messages_are_one_line() {
        let e = ShellError::from(ClientError::Internal("boom\n  at line 3\n\tstack".into()));
        assert_eq!(e.message(), "boom at line 3 stack");
        assert_eq!(e.code(), "INTERNAL");
        assert!(e.hint().is_none());
    }

    #[test]
    fn session_errors_say_what_to_do() {
        let e = ShellError::NoCollection { statement: "GET" };
        assert!(e.human().contains("USE <collection> first"));
        let e = ShellError::NoContext {
            collection: "docs".into(),
            key: "k".into(),
        };
        assert!(e.human().contains("GET docs k first"));
    }
}
