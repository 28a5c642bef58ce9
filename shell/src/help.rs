//! The statement catalogue: names, usage lines, examples, and "did you mean" suggestions.
//!
//! Invariant: every statement the parser accepts has an entry here with a usage line and at
//! least one example, so HELP, completion and suggestions never fall out of step.

/// What HELP says about one statement.
#[derive(Debug)]
pub struct StatementHelp {
    /// The keyword that starts it.
    pub name: &'static str,
    /// Its grammar, one line.
    pub usage: &'static str,
    /// What it does, one line.
    pub summary: &'static str,
    /// Statements to copy, each with an optional `-- comment`.
    pub examples: &'static [&'static str],
}

/// Every statement, in the order HELP lists them.
pub const STATEMENTS: &[StatementHelp] = &[
    StatementHelp {
        name: "GET",
        usage: "GET [<collection>] <key> [LOCAL] [CONSISTENCY <level>]",
        summary: "read a document: every sibling and the context that covers them",
        examples: &[
            "GET users alice",
            "GET users alice CONSISTENCY ALL",
            "GET users alice LOCAL          -- this node's own replica only",
            "GET alice                      -- after USE users",
        ],
    },
    StatementHelp {
        name: "PUT",
        usage: "PUT [<collection>] <key> <json-object> [CONTEXT <token>] [CONSISTENCY <level>] [TTL <seconds>]",
        summary: "write a document; without CONTEXT it becomes a sibling of what exists",
        examples: &[
            "PUT users alice {\"name\": \"Alice\"}",
            "PUT users alice {\"name\": \"Al\"} CONTEXT <token from GET>   -- replace what you read",
            "PUT alice {\"name\": \"Alice\"}   -- after USE users",
            "PUT sessions s1 {\"user\": \"alice\"} TTL 3600   -- reads as deleted after an hour",
        ],
    },
    StatementHelp {
        name: "DELETE",
        usage: "DELETE [<collection>] <key> [CONTEXT <token>] [CONSISTENCY <level>]",
        summary: "delete a document (a tombstone replaces what the context covers)",
        examples: &[
            "DELETE users alice",
            "DELETE users alice CONTEXT <token> CONSISTENCY ALL",
        ],
    },
    StatementHelp {
        name: "RESOLVE",
        usage: "RESOLVE [<collection>] <key> <json-object> [CONSISTENCY <level>]",
        summary: "replace the siblings the last GET of this key showed with one document",
        examples: &[
            "GET users alice                          -- shows (1), (2), ...",
            "RESOLVE users alice {\"name\": \"Alice\"}   -- write with that GET's context",
        ],
    },
    StatementHelp {
        name: "USE",
        usage: "USE <collection>",
        summary: "make GET/PUT/DELETE/RESOLVE <key> ... work on this collection",
        examples: &["USE users", "GET alice"],
    },
    StatementHelp {
        name: "CREATE",
        usage: "CREATE COLLECTION <name> [WITH replication = N] [IF NOT EXISTS] | CREATE INDEX ON <collection> (<path>)",
        summary: "create a collection with N replicas per key (0 or none: the cluster default), or an index on a JSON path (every node builds it over what it stores)",
        examples: &[
            "CREATE COLLECTION users",
            "CREATE COLLECTION events WITH replication = 2 IF NOT EXISTS",
            "CREATE INDEX ON users (age)",
            "CREATE INDEX ON users (address.city)      -- a nested field",
            "CREATE INDEX ON users (tags[])            -- each element of an array",
            "CREATE INDEX ON users (\"first name\")     -- a name that is not an identifier",
        ],
    },
    StatementHelp {
        name: "DROP",
        usage: "DROP INDEX ON <collection> (<path>)",
        summary: "drop an index; every node deletes its entries in the background",
        examples: &["DROP INDEX ON users (age)"],
    },
    StatementHelp {
        name: "DESCRIBE",
        usage: "DESCRIBE COLLECTIONS | DESCRIBE INDEXES [<collection>]",
        summary: "list collections with their replication factor and the cluster default, or indexes with their state (building, with progress, or ready)",
        examples: &[
            "DESCRIBE COLLECTIONS",
            "DESCRIBE INDEXES",
            "DESCRIBE INDEXES users",
        ],
    },
    StatementHelp {
        name: "FIND",
        usage: "FIND <collection> [FIELDS <path>, ...] [WHERE <cond> [AND <cond>]...] [LIMIT <n>] [PAGE <token>] [ALLOW FILTERING] [CONSISTENCY <level>]",
        summary: "documents whose fields match, with their siblings and contexts, ordered by the first condition with a ready index (else by key); a condition on a path without a ready index needs ALLOW FILTERING (a full scan); <cond> is <path> =|!=|<|<=|>|>= <json>, <path> IN (<json>, ...) or <path> EXISTS",
        examples: &[
            "FIND users LIMIT 10                                   -- every document, in key order",
            "FIND users WHERE age >= 18                            -- served by an index on age, in age order",
            "FIND users WHERE age >= 18 AND tags[] = \"rust\" ALLOW FILTERING   -- tags[] has no index",
            "FIND users FIELDS name, address.city WHERE address.city IN (\"Oslo\", \"Bergen\") ALLOW FILTERING",
            "FIND users LIMIT 10 PAGE <token printed by the last page>",
        ],
    },
    StatementHelp {
        name: "COUNT",
        usage: "COUNT <collection> [WHERE <cond> [AND <cond>]...] [ALLOW FILTERING] [CONSISTENCY <level>]",
        summary: "how many documents the same FIND would return",
        examples: &[
            "COUNT users",
            "COUNT users WHERE \"first name\" EXISTS ALLOW FILTERING CONSISTENCY ONE",
        ],
    },
    StatementHelp {
        name: "AGGREGATE",
        usage: "AGGREGATE <collection> <fn>(<path> | *) [, ...] [WHERE ...] [GROUP BY <path>] [ALLOW FILTERING] [CONSISTENCY <level>]",
        summary: "count, sum, avg, min, max over the documents the same FIND would return, optionally per group",
        examples: &[
            "AGGREGATE users count(*), avg(age) GROUP BY address.city",
            "AGGREGATE orders sum(total), max(total) WHERE status = \"paid\" ALLOW FILTERING",
        ],
    },
    StatementHelp {
        name: "CONSISTENCY",
        usage: "CONSISTENCY [ONE|TWO|THREE|QUORUM|ALL|ANY]",
        summary: "show or set the session's default level (QUORUM at start)",
        examples: &["CONSISTENCY          -- show it", "CONSISTENCY ONE"],
    },
    StatementHelp {
        name: "TRACING",
        usage: "TRACING [ON|OFF]",
        summary: "show, under each GET/PUT/DELETE and query, what happened inside the cluster",
        examples: &[
            "TRACING ON",
            "GET users alice   -- then: coordinator, replicas asked, latencies, read repair",
            "TRACING           -- show whether it is on",
            "TRACING OFF",
        ],
    },
    StatementHelp {
        name: "STATUS",
        usage: "STATUS",
        summary: "nodes as the connected node sees them: state, ownership, load, hints",
        examples: &["STATUS"],
    },
    StatementHelp {
        name: "RING",
        usage: "RING",
        summary: "every token on the ring and the node that owns it",
        examples: &["RING"],
    },
    StatementHelp {
        name: "DECOMMISSION",
        usage: "DECOMMISSION",
        summary: "the connected (first --host) node streams its data away and leaves the ring",
        examples: &["DECOMMISSION        -- then STATUS shows it LEAVING, then LEFT"],
    },
    StatementHelp {
        name: "REMOVENODE",
        usage: "REMOVENODE <node-id>",
        summary: "remove a dead node; its ranges are re-replicated from the survivors",
        examples: &["REMOVENODE n3"],
    },
    StatementHelp {
        name: "REPAIR",
        usage: "REPAIR [<collection>] | REPAIR STATUS",
        summary: "run an anti-entropy pass on the connected node now (replicas swap what differs, agreed tombstones are purged), or show its anti-entropy state and tree roots",
        examples: &["REPAIR", "REPAIR users", "REPAIR STATUS"],
    },
    StatementHelp {
        name: "SOURCE",
        usage: "SOURCE <file>",
        summary: "run the statements in a file",
        examples: &["SOURCE setup.rsh", "SOURCE \"my scripts/load.rsh\""],
    },
    StatementHelp {
        name: "HELP",
        usage: "HELP [<statement>]",
        summary: "list statements, or show one statement's usage and examples",
        examples: &["HELP", "HELP PUT"],
    },
    StatementHelp {
        name: "EXIT",
        usage: "EXIT | QUIT",
        summary: "leave the shell (Ctrl-D does too)",
        examples: &["EXIT"],
    },
];

/// Keywords that start a statement, aliases included (for completion and suggestions).
pub const STATEMENT_KEYWORDS: &[&str] = &[
    "GET",
    "PUT",
    "DELETE",
    "RESOLVE",
    "USE",
    "CREATE",
    "DROP",
    "DESCRIBE",
    "FIND",
    "COUNT",
    "AGGREGATE",
    "CONSISTENCY",
    "TRACING",
    "STATUS",
    "RING",
    "DECOMMISSION",
    "REMOVENODE",
    "REPAIR",
    "SOURCE",
    "HELP",
    "EXIT",
    "QUIT",
];

/// The help entry for a statement keyword (case-insensitive; `QUIT` and `DESC` are aliases).
pub fn lookup(name: &str) -> Option<&'static StatementHelp> {
    let upper = name.to_ascii_uppercase();
    let canonical = match upper.as_str() {
        "QUIT" => "EXIT",
        "DESC" => "DESCRIBE",
        other => other,
    };
    STATEMENTS.iter().find(|s| s.name == canonical)
}

/// The usage line of a statement, for error messages.
pub fn usage(name: &str) -> &'static str {
    lookup(name).map_or("HELP lists statements", |s| s.usage)
}

/// HELP's text: the list of statements, or one statement's usage and examples.
pub fn text(topic: Option<&str>) -> Result<String, String> {
    match topic {
        Some(t) => match lookup(t) {
            Some(s) => {
                let mut out = format!("{}\n  {}\nExamples:\n", s.usage, s.summary);
                for e in s.examples {
                    out.push_str(&format!("  {e}\n"));
                }
                Ok(out.trim_end().to_string())
            }
            None => Err(match suggest(t, STATEMENT_KEYWORDS) {
                Some(k) => format!("no statement {t:?}; did you mean {k}? HELP lists statements"),
                None => format!("no statement {t:?}; HELP lists statements"),
            }),
        },
        None => {
            let mut out = String::from(
                "Statements (keywords are case-insensitive; end with ';' or a newline):\n",
            );
            let width = STATEMENTS.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for s in STATEMENTS {
                out.push_str(&format!("  {:<width$}  {}\n", s.name, s.summary));
            }
            out.push_str(
                "Levels: ONE TWO THREE QUORUM ALL, and ANY for writes.\n\
                 HELP <statement> shows its usage and examples. Keys with spaces are JSON strings: \"my key\".",
            );
            Ok(out)
        }
    }
}

/// Edit distance (Levenshtein), for "did you mean".
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The keyword in `candidates` closest to a typo: a unique prefix of it, or within a few
/// edits (more for longer words). Ties go to the earlier candidate.
pub fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let w = word.to_ascii_uppercase();
    if w.is_empty() {
        return None;
    }
    let prefixed: Vec<&'static str> = candidates
        .iter()
        .copied()
        .filter(|c| w.len() >= 2 && c.starts_with(&w))
        .collect();
    if prefixed.len() == 1 {
        return Some(prefixed[0]);
    }
    let allowed = if w.chars().count() <= 6 { 2 } else { 3 };
    candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (distance(&w, c), i, *c))
        .filter(|(d, _, _)| *d <= allowed && *d < w.chars().count())
        .min()
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_has_usage_and_an_example() {
        for k in STATEMENT_KEYWORDS {
            let s = lookup(k).unwrap_or_else(|| panic!("{k} has no help"));
            assert!(!s.usage.is_empty() && !s.examples.is_empty(), "{k}");
        }
        assert_eq!(
            STATEMENTS.len(),
            STATEMENT_KEYWORDS.len() - 1,
            "QUIT is EXIT"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("GTE", STATEMENT_KEYWORDS), Some("GET"));
        assert_eq!(suggest("gte", STATEMENT_KEYWORDS), Some("GET"));
        assert_eq!(suggest("DESCR", STATEMENT_KEYWORDS), Some("DESCRIBE"));
        assert_eq!(
            suggest("DECOMISSION", STATEMENT_KEYWORDS),
            Some("DECOMMISSION")
        );
        assert_eq!(suggest("STAUTS", STATEMENT_KEYWORDS), Some("STATUS"));
        assert_eq!(
            suggest("CONSISTENCE", &["CONSISTENCY", "CONTEXT"]),
            Some("CONSISTENCY")
        );
        assert_eq!(suggest("SELECT", STATEMENT_KEYWORDS), None);
        assert_eq!(suggest("X", STATEMENT_KEYWORDS), None);
        assert_eq!(suggest("", STATEMENT_KEYWORDS), None);
    }

    #[test]
    fn help_texts() {
        let all = text(None).unwrap();
        for s in STATEMENTS {
            assert!(all.contains(s.name), "{}", s.name);
        }
        let put = text(Some("put")).unwrap();
        assert!(put.starts_with("PUT [<collection>] <key>"), "{put}");
        assert!(put.contains("Examples:"));
        assert!(text(Some("quit")).unwrap().starts_with("EXIT"));
        assert!(text(Some("GTE")).unwrap_err().contains("did you mean GET"));
    }
}
