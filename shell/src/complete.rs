//! Tab completion: statement keywords, option keywords, consistency levels, collection
//! names (from the session's cache) and, after SOURCE, file names.
//!
//! Invariants: completion never talks to the cluster (it reads the cache the session fills),
//! never completes inside a JSON document, and answers keywords in the case the user typed.

use std::borrow::Cow;

use ringdb_client::Consistency;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Helper;

use crate::exec::CollectionCache;
use crate::help::STATEMENT_KEYWORDS;
use crate::lex::is_incomplete;

/// What kind of word fits where the cursor is.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Keywords(Vec<&'static str>),
    Collections,
    Files,
    Nothing,
}

fn levels() -> Vec<&'static str> {
    Consistency::ALL_LEVELS.iter().map(|l| l.name()).collect()
}

/// What fits after the complete words `before` of the current statement.
fn want(before: &[&str]) -> Want {
    let Some(head) = before.first() else {
        return Want::Keywords(STATEMENT_KEYWORDS.to_vec());
    };
    let head = head.to_ascii_uppercase();
    let last = before
        .last()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    let n = before.len();
    if n > 1 && last == "CONSISTENCY" {
        return Want::Keywords(levels());
    }
    if last == "CONTEXT" {
        return Want::Nothing;
    }
    match head.as_str() {
        "GET" | "DELETE" | "PUT" | "RESOLVE" | "USE" | "FIND" | "COUNT" | "AGGREGATE" if n == 1 => {
            Want::Collections
        }
        "FIND" | "COUNT" | "AGGREGATE" if last == "ALLOW" => Want::Keywords(vec!["FILTERING"]),
        "FIND" => Want::Keywords(vec![
            "FIELDS",
            "WHERE",
            "AND",
            "LIMIT",
            "PAGE",
            "ALLOW",
            "CONSISTENCY",
        ]),
        "COUNT" => Want::Keywords(vec!["WHERE", "AND", "ALLOW", "CONSISTENCY"]),
        "AGGREGATE" => Want::Keywords(vec!["WHERE", "AND", "GROUP", "BY", "ALLOW", "CONSISTENCY"]),
        "GET" => Want::Keywords(vec!["LOCAL", "CONSISTENCY"]),
        "DELETE" => Want::Keywords(vec!["CONTEXT", "CONSISTENCY"]),
        // After the document: only options (a key or collection cannot be guessed).
        "PUT" | "RESOLVE" if before.iter().any(|w| w.ends_with('}')) => {
            Want::Keywords(if head == "PUT" {
                vec!["CONTEXT", "CONSISTENCY"]
            } else {
                vec!["CONSISTENCY"]
            })
        }
        "CREATE" if n == 1 => Want::Keywords(vec!["COLLECTION", "INDEX"]),
        "CREATE" | "DROP"
            if before
                .get(1)
                .is_some_and(|w| w.eq_ignore_ascii_case("INDEX")) =>
        {
            match n {
                2 => Want::Keywords(vec!["ON"]),
                3 => Want::Collections,
                _ => Want::Nothing,
            }
        }
        "DROP" if n == 1 => Want::Keywords(vec!["INDEX"]),
        "CREATE" => match last.as_str() {
            "COLLECTION" => Want::Keywords(vec!["IF"]),
            "IF" => Want::Keywords(vec!["NOT"]),
            "NOT" => Want::Keywords(vec!["EXISTS"]),
            "WITH" => Want::Keywords(vec!["replication"]),
            _ if n >= 3 && !last.ends_with('=') && last != "REPLICATION" => {
                Want::Keywords(vec!["WITH", "IF"])
            }
            _ => Want::Nothing,
        },
        "DESCRIBE" | "DESC" if n == 1 => Want::Keywords(vec!["COLLECTIONS", "INDEXES"]),
        "DESCRIBE" | "DESC" if n == 2 && last == "INDEXES" => Want::Collections,
        "CONSISTENCY" if n == 1 => Want::Keywords(levels()),
        "TRACING" if n == 1 => Want::Keywords(vec!["ON", "OFF"]),
        "HELP" if n == 1 => Want::Keywords(STATEMENT_KEYWORDS.to_vec()),
        "SOURCE" if n == 1 => Want::Files,
        _ => Want::Nothing,
    }
}

/// Completions of the word before `pos` in `line`: its start offset and the candidates
/// (each with a trailing space). `collections` are the names the session knows.
pub fn complete_words(line: &str, pos: usize, collections: &[String]) -> (usize, Vec<String>) {
    let upto = line.get(..pos).unwrap_or(line);
    if is_incomplete(upto) {
        return (pos, Vec::new());
    }
    // The statement under the cursor starts after the last `;` or newline.
    let stmt_start = upto.rfind([';', '\n']).map_or(0, |i| i + 1);
    let stmt = &upto[stmt_start..];
    let word_start = stmt.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let partial = &stmt[word_start..];
    let before: Vec<&str> = stmt[..word_start].split_whitespace().collect();
    let start = stmt_start + word_start;
    let lower = if partial.is_empty() {
        before
            .first()
            .is_some_and(|w| w.chars().all(|c| !c.is_ascii_uppercase()))
    } else {
        partial.chars().all(|c| !c.is_ascii_uppercase())
    };
    let candidates = match want(&before) {
        Want::Keywords(words) => words
            .into_iter()
            .filter(|w| {
                w.to_ascii_uppercase()
                    .starts_with(&partial.to_ascii_uppercase())
            })
            .map(|w| {
                if lower {
                    format!("{} ", w.to_ascii_lowercase())
                } else {
                    format!("{w} ")
                }
            })
            .collect(),
        Want::Collections => collections
            .iter()
            .filter(|c| c.to_lowercase().starts_with(&partial.to_lowercase()))
            .map(|c| format!("{} ", crate::render::quote_name(c)))
            .collect(),
        Want::Files | Want::Nothing => Vec::new(),
    };
    (start, candidates)
}

/// The rustyline helper: completion only; no hints, highlighting or validation (the REPL
/// itself decides when a statement is complete).
pub struct ShellHelper {
    collections: CollectionCache,
    files: FilenameCompleter,
}

impl ShellHelper {
    /// A helper completing collection names from `collections`.
    pub fn new(collections: CollectionCache) -> Self {
        ShellHelper {
            collections,
            files: FilenameCompleter::new(),
        }
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let upto = line.get(..pos).unwrap_or(line);
        let stmt = &upto[upto.rfind([';', '\n']).map_or(0, |i| i + 1)..];
        let words: Vec<&str> = stmt.split_whitespace().collect();
        let at_second = words.len() == 1 && stmt.ends_with(char::is_whitespace)
            || words.len() == 2 && !stmt.ends_with(char::is_whitespace);
        if at_second && words[0].eq_ignore_ascii_case("SOURCE") {
            return self.files.complete(line, pos, ctx);
        }
        let names: Vec<String> = self
            .collections
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let (start, words) = complete_words(line, pos, &names);
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.trim_end().to_string(),
                replacement: w,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["docs".into(), "users".into(), "my docs".into()]
    }

    fn complete(line: &str) -> Vec<String> {
        complete_words(line, line.len(), &names()).1
    }

    #[test]
    fn statement_keywords_in_the_users_case() {
        assert_eq!(complete("DESCR"), vec!["DESCRIBE "]);
        assert_eq!(complete("descr"), vec!["describe "]);
        assert_eq!(complete("RE"), vec!["RESOLVE ", "REMOVENODE ", "REPAIR "]);
        assert_eq!(complete("").len(), STATEMENT_KEYWORDS.len());
        assert_eq!(complete("STATUS; G"), vec!["GET "]);
        assert_eq!(complete_words("GET docs k; DEL", 15, &names()).0, 12);
    }

    #[test]
    fn collections_levels_and_options() {
        assert_eq!(complete("USE d"), vec!["docs "]);
        assert_eq!(complete("GET u"), vec!["users "]);
        assert_eq!(complete("use "), vec!["docs ", "users ", "\"my docs\" "]);
        assert_eq!(complete("GET docs k CONSISTENCY Q"), vec!["QUORUM "]);
        assert_eq!(complete("consistency a"), vec!["all ", "any "]);
        assert_eq!(complete("GET docs k L"), vec!["LOCAL "]);
        assert_eq!(complete("DESCRIBE "), vec!["COLLECTIONS ", "INDEXES "]);
        assert_eq!(complete("create c"), vec!["collection "]);
        assert_eq!(complete("CREATE COLLECTION x "), vec!["WITH ", "IF "]);
        assert_eq!(complete("CREATE COLLECTION x IF N"), vec!["NOT "]);
        assert_eq!(complete("FIND u"), vec!["users "]);
        assert_eq!(complete("find users WHERE a > 1 al"), vec!["allow "]);
        assert_eq!(complete("FIND users ALLOW F"), vec!["FILTERING "]);
        assert_eq!(complete("AGGREGATE users count(*) G"), vec!["GROUP "]);
        assert_eq!(
            complete("PUT docs k {\"a\": 1} C"),
            vec!["CONTEXT ", "CONSISTENCY "]
        );
        assert_eq!(complete("HELP RI"), vec!["RING "]);
        assert_eq!(complete("TRAC"), vec!["TRACING "]);
        assert_eq!(complete("tracing o"), vec!["on ", "off "]);
    }

    #[test]
    fn index_statements() {
        assert_eq!(complete("create i"), vec!["index "]);
        assert_eq!(complete("CREATE INDEX "), vec!["ON "]);
        assert_eq!(complete("CREATE INDEX ON u"), vec!["users "]);
        assert!(complete("CREATE INDEX ON users ").is_empty());
        assert_eq!(complete("DROP "), vec!["INDEX "]);
        assert_eq!(complete("drop index o"), vec!["on "]);
        assert_eq!(complete("DROP INDEX ON d"), vec!["docs "]);
        assert_eq!(complete("DESCRIBE I"), vec!["INDEXES "]);
        assert_eq!(complete("DESC INDEXES u"), vec!["users "]);
        assert_eq!(complete("DR"), vec!["DROP "]);
    }

    #[test]
    fn nothing_inside_json_or_after_context() {
        assert!(complete("PUT docs k {\"a\": G").is_empty());
        assert!(complete("PUT docs k {\"a\": \"G").is_empty());
        assert!(complete("PUT docs k {} CONTEXT ").is_empty());
        assert!(complete("STATUS ").is_empty());
    }
}
