//! The text grammar of the query statements (pure parsing; the shell runs them).
//!
//! # Grammar
//!
//! Keywords and function names are case-insensitive; whitespace separates tokens and may
//! be left out next to punctuation and operators (`age>=18`, `IN(1,2)`, `count(*)`).
//!
//! ```text
//! statement  = create | drop | describe | find | count | aggregate   [";"]
//! create     = CREATE INDEX ON collection "(" path ")"
//! drop       = DROP INDEX ON collection "(" path ")"
//! describe   = DESCRIBE INDEXES [collection]
//! find       = FIND collection { FIELDS path {"," path} | where | LIMIT n | PAGE token
//!                                | ALLOW FILTERING | CONSISTENCY level }
//! count      = COUNT collection { where | ALLOW FILTERING | CONSISTENCY level }
//! aggregate  = AGGREGATE collection agg {"," agg}
//!                  { where | GROUP BY path | ALLOW FILTERING | CONSISTENCY level }
//! agg        = (count | sum | avg | min | max) "(" ("*" | path) ")"     -- * only for count
//! where      = WHERE cond {AND cond}
//! cond       = path ("=" | "!=" | "<" | "<=" | ">" | ">=") json
//!            | path IN "(" json {"," json} ")"
//!            | path EXISTS
//! json       = a JSON string ("..."), number, true, false or null (lower case)
//! collection = letters, digits, '_', '-' and '.', or a JSON string
//! n          = a whole number of 1 or more
//! token      = a page token as printed (letters, digits, '-', '_'), or a JSON string
//! level      = a word, kept as written (the shell maps it to a consistency level)
//! ```
//!
//! `path` is [`crate::path`]'s grammar (no whitespace inside). The clauses after the
//! collection (and after the aggregations) may come in any order, each at most once.
//! Objects and arrays are refused as operands with a message saying so. Every error gives
//! the column and what was expected there.
//!
//! `Display` writes the canonical form (clauses in the order of the grammar above, keywords
//! upper case), which parses back to an equal statement.

mod cursor;
mod parser;

use std::fmt;

use crate::aggregate::AggregateSpec;
use crate::filter::Filter;
use crate::path::Path;

pub use parser::{is_query_statement, parse, parse_conditions};

/// One query statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE INDEX ON c (path)`
    CreateIndex {
        /// The collection.
        collection: String,
        /// The indexed path.
        path: Path,
    },
    /// `DROP INDEX ON c (path)`
    DropIndex {
        /// The collection.
        collection: String,
        /// The indexed path.
        path: Path,
    },
    /// `DESCRIBE INDEXES [c]`
    DescribeIndexes {
        /// Only this collection's indexes; `None`: every collection's.
        collection: Option<String>,
    },
    /// `FIND …`
    Find(Find),
    /// `COUNT …`
    Count(Count),
    /// `AGGREGATE …`
    Aggregate(Aggregate),
}

/// `FIND c [FIELDS …] [WHERE …] [LIMIT n] [PAGE t] [ALLOW FILTERING] [CONSISTENCY l]`
#[derive(Debug, Clone, PartialEq)]
pub struct Find {
    /// The collection.
    pub collection: String,
    /// The `FIELDS` paths; empty: whole documents.
    pub fields: Vec<Path>,
    /// The `WHERE` conditions; empty: every document.
    pub filter: Filter,
    /// The `LIMIT`; `None`: the server's default page size.
    pub limit: Option<u64>,
    /// The `PAGE` token, as written.
    pub page: Option<String>,
    /// `ALLOW FILTERING` was given.
    pub allow_filtering: bool,
    /// The `CONSISTENCY` level, as written; `None`: the session's.
    pub consistency: Option<String>,
}

/// `COUNT c [WHERE …] [ALLOW FILTERING] [CONSISTENCY l]`
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    /// The collection.
    pub collection: String,
    /// The `WHERE` conditions; empty: every document.
    pub filter: Filter,
    /// `ALLOW FILTERING` was given.
    pub allow_filtering: bool,
    /// The `CONSISTENCY` level, as written; `None`: the session's.
    pub consistency: Option<String>,
}

/// `AGGREGATE c fn(arg), … [WHERE …] [GROUP BY p] [ALLOW FILTERING] [CONSISTENCY l]`
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The collection.
    pub collection: String,
    /// The aggregations and the `GROUP BY` path.
    pub spec: AggregateSpec,
    /// The `WHERE` conditions; empty: every document.
    pub filter: Filter,
    /// `ALLOW FILTERING` was given.
    pub allow_filtering: bool,
    /// The `CONSISTENCY` level, as written; `None`: the session's.
    pub consistency: Option<String>,
}

/// Write a word bare when every character passes `plain`, else as a JSON string.
fn write_word(f: &mut fmt::Formatter<'_>, word: &str, plain: fn(char) -> bool) -> fmt::Result {
    if !word.is_empty() && word.chars().all(plain) {
        f.write_str(word)
    } else {
        let quoted = serde_json::to_string(word).map_err(|_| fmt::Error)?;
        f.write_str(&quoted)
    }
}

fn write_collection(f: &mut fmt::Formatter<'_>, c: &str) -> fmt::Result {
    write_word(f, c, cursor::is_collection_char)
}

fn write_tail(
    f: &mut fmt::Formatter<'_>,
    allow_filtering: bool,
    consistency: &Option<String>,
) -> fmt::Result {
    if allow_filtering {
        f.write_str(" ALLOW FILTERING")?;
    }
    if let Some(level) = consistency {
        write!(f, " CONSISTENCY {level}")?;
    }
    Ok(())
}

fn write_where(f: &mut fmt::Formatter<'_>, filter: &Filter) -> fmt::Result {
    if filter.conditions().is_empty() {
        Ok(())
    } else {
        write!(f, " WHERE {filter}")
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateIndex { collection, path } => {
                f.write_str("CREATE INDEX ON ")?;
                write_collection(f, collection)?;
                write!(f, " ({path})")
            }
            Statement::DropIndex { collection, path } => {
                f.write_str("DROP INDEX ON ")?;
                write_collection(f, collection)?;
                write!(f, " ({path})")
            }
            Statement::DescribeIndexes { collection } => {
                f.write_str("DESCRIBE INDEXES")?;
                if let Some(c) = collection {
                    f.write_str(" ")?;
                    write_collection(f, c)?;
                }
                Ok(())
            }
            Statement::Find(q) => {
                f.write_str("FIND ")?;
                write_collection(f, &q.collection)?;
                if !q.fields.is_empty() {
                    let fields: Vec<String> = q.fields.iter().map(Path::to_string).collect();
                    write!(f, " FIELDS {}", fields.join(", "))?;
                }
                write_where(f, &q.filter)?;
                if let Some(n) = q.limit {
                    write!(f, " LIMIT {n}")?;
                }
                if let Some(t) = &q.page {
                    f.write_str(" PAGE ")?;
                    write_word(f, t, cursor::is_token_char)?;
                }
                write_tail(f, q.allow_filtering, &q.consistency)
            }
            Statement::Count(q) => {
                f.write_str("COUNT ")?;
                write_collection(f, &q.collection)?;
                write_where(f, &q.filter)?;
                write_tail(f, q.allow_filtering, &q.consistency)
            }
            Statement::Aggregate(q) => {
                f.write_str("AGGREGATE ")?;
                write_collection(f, &q.collection)?;
                let aggs: Vec<String> = q
                    .spec
                    .aggregations()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                write!(f, " {}", aggs.join(", "))?;
                write_where(f, &q.filter)?;
                if let Some(p) = q.spec.group_by() {
                    write!(f, " GROUP BY {p}")?;
                }
                write_tail(f, q.allow_filtering, &q.consistency)
            }
        }
    }
}

#[cfg(test)]
mod tests;
