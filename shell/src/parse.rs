//! Statement parsing: one statement's text into a [`Statement`].
//!
//! Keywords are case-insensitive; names and keys may be quoted like JSON strings (a quoted
//! word is never a keyword). The collection of GET/PUT/DELETE/RESOLVE may be left out after
//! `USE`; the parser is told the collection in use and fills it in.
//!
//! Ambiguity rule: `GET a local` reads key `local` of collection `a` when no collection is
//! in use (as before USE existed), and key `a` of the used collection with LOCAL after USE.
//! Quote a key that is spelled like a keyword (`GET users "local"`) to be unambiguous.

use ringdb_client::{Consistency, Context};
use serde_json::Value;

pub use crate::lex::{is_incomplete, split};

use crate::error::ShellError;
use crate::help::{self, STATEMENT_KEYWORDS};
use crate::lex::{tokenize, Token};
use ringdb_query::statement as query;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `GET c k [LOCAL] [CONSISTENCY l]`
    Get {
        /// The collection (named, or the one in USE).
        collection: String,
        /// The document key.
        key: String,
        /// Read only the connected node's replica (`LOCAL`).
        local: bool,
        /// The statement's level; `None`: the session's.
        consistency: Option<Consistency>,
    },
    /// `PUT c k {json} [CONTEXT t] [CONSISTENCY l] [TTL seconds]`
    Put {
        /// The collection (named, or the one in USE).
        collection: String,
        /// The document key.
        key: String,
        /// The JSON object to write.
        document: Value,
        /// The context of the read this write is based on.
        context: Option<Context>,
        /// The statement's level; `None`: the session's.
        consistency: Option<Consistency>,
        /// Seconds until the document expires; `None`: the collection's default.
        ttl_secs: Option<u64>,
    },
    /// `DELETE c k [CONTEXT t] [CONSISTENCY l]`
    Delete {
        /// The collection (named, or the one in USE).
        collection: String,
        /// The document key.
        key: String,
        /// The context of the read this write is based on.
        context: Option<Context>,
        /// The statement's level; `None`: the session's.
        consistency: Option<Consistency>,
    },
    /// `RESOLVE c k {json} [CONSISTENCY l]`: PUT with the context of this session's last GET.
    Resolve {
        /// The collection (named, or the one in USE).
        collection: String,
        /// The document key.
        key: String,
        /// The JSON object to write.
        document: Value,
        /// The statement's level; `None`: the session's.
        consistency: Option<Consistency>,
    },
    /// `USE c`
    Use(String),
    /// `CREATE COLLECTION name [WITH replication = N] [IF NOT EXISTS]`
    CreateCollection {
        /// The new collection.
        name: String,
        /// Replicas per key; 0: the cluster default.
        replication: u32,
        /// Succeed if it exists already.
        if_not_exists: bool,
    },
    /// `DESCRIBE COLLECTIONS`
    DescribeCollections,
    /// `CREATE INDEX ON c (path)`
    CreateIndex {
        /// The collection (created with the defaults if it does not exist).
        collection: String,
        /// The path to index, canonical.
        path: String,
    },
    /// `DROP INDEX ON c (path)`
    DropIndex {
        /// The collection.
        collection: String,
        /// The indexed path, canonical.
        path: String,
    },
    /// `DESCRIBE INDEXES [c]`
    DescribeIndexes(Option<String>),
    /// `CONSISTENCY [l]`
    Consistency(Option<Consistency>),
    /// `TRACING [ON|OFF]`: `None` shows whether tracing is on.
    Tracing(Option<bool>),
    /// `STATUS`
    Status,
    /// `RING`
    Ring,
    /// `DECOMMISSION`
    Decommission,
    /// `REMOVENODE id`
    RemoveNode(String),
    /// `REPAIR [collection]`: an anti-entropy pass on the connected node.
    Repair(Option<String>),
    /// `REPAIR STATUS`
    RepairStatus,
    /// `SOURCE file`
    Source(String),
    /// `HELP [statement]`
    Help(Option<String>),
    /// `EXIT` / `QUIT`
    Exit,
    /// `FIND`, `COUNT`, `AGGREGATE`: parsed by `ringdb-query`'s grammar (see `query`).
    Query(crate::query::QueryStatement),
}

/// Option keywords that may follow a key.
const OPTIONS: [&str; 4] = ["LOCAL", "CONSISTENCY", "CONTEXT", "TTL"];

fn is_option(t: &Token) -> bool {
    t.keyword().is_some_and(|k| OPTIONS.contains(&k.as_str()))
}

fn parse_err(m: impl Into<String>) -> ShellError {
    ShellError::Parse(m.into())
}

/// The tokens after the statement keyword, consumed left to right.
struct Parts<'a> {
    tokens: &'a [Token],
    pos: usize,
    usage: &'static str,
}

impl<'a> Parts<'a> {
    fn new(tokens: &'a [Token], usage: &'static str) -> Self {
        Parts {
            tokens,
            pos: 0,
            usage,
        }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.pos);
        self.pos += usize::from(t.is_some());
        t
    }

    fn fail(&self, what: String) -> ShellError {
        parse_err(format!("{what}; usage: {}", self.usage))
    }

    fn name(&mut self, what: &str) -> Result<String, ShellError> {
        match self.next() {
            Some(t) => match t.name() {
                Some(n) => Ok(n.to_string()),
                None => Err(self.fail(format!("expected {what}, found {}", t.describe()))),
            },
            None => Err(self.fail(format!("missing {what}"))),
        }
    }

    /// The next token must be this keyword.
    fn expect(&mut self, keyword: &str) -> Result<(), ShellError> {
        match self.next() {
            Some(t) if t.keyword().as_deref() == Some(keyword) => Ok(()),
            Some(t) => Err(self.fail(format!("expected {keyword}, found {}", t.describe()))),
            None => Err(self.fail(format!("missing {keyword}"))),
        }
    }

    fn document(&mut self) -> Result<Value, ShellError> {
        match self.next() {
            Some(Token::Json(v @ Value::Object(_))) => Ok(v.clone()),
            Some(t) => Err(self.fail(format!(
                "the document must be a JSON object, found {}",
                t.describe()
            ))),
            None => Err(self.fail("missing the JSON document".into())),
        }
    }

    fn level(&mut self) -> Result<Consistency, ShellError> {
        let l = self.name("a consistency level")?;
        l.parse::<Consistency>()
            .map_err(|e| parse_err(e.message().to_string()))
    }

    /// Trailing `CONTEXT t`, `CONSISTENCY l` and `LOCAL` (where allowed), in any order.
    fn options(&mut self, allowed: &[&'static str]) -> Result<Opts, ShellError> {
        let mut o = Opts::default();
        while let Some(t) = self.next() {
            let Some(word) = t.keyword().filter(|w| allowed.contains(&w.as_str())) else {
                let mut m = format!("unexpected {}", t.describe());
                if let Some(s) = t
                    .keyword()
                    .filter(|w| !OPTIONS.contains(&w.as_str()))
                    .and_then(|w| help::suggest(&w, allowed))
                {
                    m.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(self.fail(m));
            };
            match word.as_str() {
                "CONSISTENCY" => o.consistency = Some(self.level()?),
                "CONTEXT" => o.context = Some(Context::from_token(self.name("a context token")?)),
                "TTL" => {
                    let secs = self.name("a number of seconds")?;
                    o.ttl_secs = Some(secs.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        self.fail(format!(
                            "TTL must be a whole number of seconds above 0, not {secs:?}"
                        ))
                    })?);
                }
                _ => o.local = true,
            }
        }
        Ok(o)
    }

    fn end(&mut self) -> Result<(), ShellError> {
        match self.next() {
            None => Ok(()),
            Some(t) => Err(self.fail(format!("unexpected {} at the end", t.describe()))),
        }
    }
}

#[derive(Default)]
struct Opts {
    context: Option<Context>,
    consistency: Option<Consistency>,
    ttl_secs: Option<u64>,
    local: bool,
}

/// The index statements, parsed with the query grammar (`ringdb_query::statement`), or
/// `None` for any other text. `DESC` stands for `DESCRIBE` as everywhere.
fn index_statement(text: &str) -> Option<Result<Statement, ShellError>> {
    let trimmed = text.trim_start();
    let head_len = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let text = if trimmed[..head_len].eq_ignore_ascii_case("DESC") {
        format!("DESCRIBE{}", &trimmed[head_len..])
    } else {
        text.to_string()
    };
    if !query::is_query_statement(&text) {
        return None;
    }
    let head = text.split_whitespace().next().unwrap_or_default();
    let usage = help::usage(head);
    Some(match query::parse(&text) {
        Ok(query::Statement::CreateIndex { collection, path }) => Ok(Statement::CreateIndex {
            collection,
            path: path.to_string(),
        }),
        Ok(query::Statement::DropIndex { collection, path }) => Ok(Statement::DropIndex {
            collection,
            path: path.to_string(),
        }),
        Ok(query::Statement::DescribeIndexes { collection }) => {
            Ok(Statement::DescribeIndexes(collection))
        }
        // FIND, COUNT and AGGREGATE are routed by `crate::query`.
        Ok(_) => return None,
        Err(e) => Err(parse_err(format!("{e}; usage: {usage}"))),
    })
}

/// Parse one statement's text. `using` is the collection chosen with USE, if any.
pub fn parse(text: &str, using: Option<&str>) -> Result<Statement, ShellError> {
    if let Some(st) = index_statement(text) {
        return st;
    }
    if crate::query::handles(text) {
        return crate::query::parse(text).map(Statement::Query);
    }
    let tokens = tokenize(text).map_err(parse_err)?;
    let (head, rest) = match tokens.split_first() {
        Some((t, rest)) => match t.keyword() {
            Some(k) => (k, rest),
            None => {
                return Err(parse_err(format!(
                    "a statement starts with a keyword, not {}; HELP lists statements",
                    t.describe()
                )))
            }
        },
        None => return Err(parse_err("empty statement")),
    };
    let head = if head == "DESC" {
        "DESCRIBE".to_string()
    } else {
        head
    };
    let Some(entry) = help::lookup(&head) else {
        return Err(parse_err(match help::suggest(&head, STATEMENT_KEYWORDS) {
            Some(s) => {
                format!("unknown statement {head}; did you mean {s}? (HELP lists statements)")
            }
            None => format!("unknown statement {head}; HELP lists statements"),
        }));
    };
    let mut p = Parts::new(rest, entry.usage);
    let st = match head.as_str() {
        "GET" | "DELETE" => return keyed(&head, rest, entry.usage, using),
        "PUT" | "RESOLVE" => return with_document(&head, rest, entry.usage, using),
        "USE" => Statement::Use(p.name("a collection")?),
        "CREATE" => create_collection(&mut p)?,
        "DESCRIBE" => {
            match p.next() {
                Some(t) if t.keyword().as_deref() == Some("COLLECTIONS") => {}
                Some(t) => {
                    let mut m = format!("cannot describe {}", t.describe());
                    if let Some(s) = t
                        .keyword()
                        .and_then(|w| help::suggest(&w, &["COLLECTIONS", "INDEXES"]))
                    {
                        m.push_str(&format!(" (did you mean {s}?)"));
                    }
                    return Err(p.fail(m));
                }
                None => return Err(p.fail("describe what?".into())),
            }
            Statement::DescribeCollections
        }
        "CONSISTENCY" => match p.peek() {
            None => Statement::Consistency(None),
            Some(_) => Statement::Consistency(Some(p.level()?)),
        },
        "TRACING" => match p.next() {
            None => Statement::Tracing(None),
            Some(t) => match t.keyword().as_deref() {
                Some("ON") => Statement::Tracing(Some(true)),
                Some("OFF") => Statement::Tracing(Some(false)),
                _ => {
                    let mut m = format!("expected ON or OFF, found {}", t.describe());
                    if let Some(s) = t.keyword().and_then(|w| help::suggest(&w, &["ON", "OFF"])) {
                        m.push_str(&format!(" (did you mean {s}?)"));
                    }
                    return Err(p.fail(m));
                }
            },
        },
        "STATUS" => Statement::Status,
        "RING" => Statement::Ring,
        "DECOMMISSION" => Statement::Decommission,
        "REMOVENODE" => Statement::RemoveNode(p.name("a node id")?),
        "REPAIR" => match p.next() {
            None => Statement::Repair(None),
            Some(t) if t.keyword().as_deref() == Some("STATUS") => Statement::RepairStatus,
            Some(t) => match t.name() {
                Some(n) => Statement::Repair(Some(n.to_string())),
                None => {
                    return Err(p.fail(format!(
                        "expected a collection or STATUS, found {}",
                        t.describe()
                    )))
                }
            },
        },
        "FIND" | "COUNT" | "AGGREGATE" => return crate::query::parse(text).map(Statement::Query),
        "SOURCE" => Statement::Source(p.name("a file name")?),
        // `DROP INDEX ...` was parsed above; anything else after DROP is not a statement.
        "DROP" => {
            return Err(match p.next() {
                Some(t) => p.fail(format!("expected INDEX, found {}", t.describe())),
                None => p.fail("missing INDEX".into()),
            })
        }
        "HELP" => {
            let topic = p
                .next()
                .map(|t| t.name().map_or_else(|| t.describe(), str::to_string));
            // `HELP CREATE COLLECTION`: the rest names the same statement.
            p.pos = p.tokens.len();
            Statement::Help(topic)
        }
        _ => Statement::Exit,
    };
    p.end()?;
    Ok(st)
}

/// Which way a key statement names its collection.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// `STATEMENT <collection> <key> ...`
    Long,
    /// `STATEMENT <key> ...` after USE.
    Short,
}

/// The keyword as a `'static` name for messages.
fn static_name(head: &str) -> &'static str {
    help::lookup(head).map_or("GET", |s| s.name)
}

/// GET and DELETE: `<collection> <key>` or, after USE, `<key>`; then options.
fn keyed(
    head: &str,
    tokens: &[Token],
    usage: &'static str,
    using: Option<&str>,
) -> Result<Statement, ShellError> {
    let allowed: &[&'static str] = if head == "GET" {
        &["LOCAL", "CONSISTENCY"]
    } else {
        &["CONTEXT", "CONSISTENCY"]
    };
    let two_names = tokens.len() >= 2 && tokens[0].name().is_some() && tokens[1].name().is_some();
    let forms: &[Form] = match (two_names, tokens.get(1).is_some_and(is_option)) {
        (false, _) => &[Form::Short],
        (true, true) if using.is_some() => &[Form::Short, Form::Long],
        (true, true) => &[Form::Long, Form::Short],
        (true, false) => &[Form::Long],
    };
    let attempt = |form: Form| -> Result<(Option<String>, String, Opts), ShellError> {
        let mut p = Parts::new(tokens, usage);
        let collection = match form {
            Form::Long => Some(p.name("a collection")?),
            Form::Short => None,
        };
        let key = p.name("a key")?;
        let o = p.options(allowed)?;
        Ok((collection, key, o))
    };
    let (collection, key, o) = match attempt(forms[0]) {
        Ok(r) => r,
        Err(first) => match forms.get(1).map(|f| attempt(*f)) {
            Some(Ok(r)) => r,
            _ => return Err(first),
        },
    };
    let collection = in_collection(head, collection, using)?;
    Ok(if head == "GET" {
        Statement::Get {
            collection,
            key,
            local: o.local,
            consistency: o.consistency,
        }
    } else {
        Statement::Delete {
            collection,
            key,
            context: o.context,
            consistency: o.consistency,
        }
    })
}

/// PUT and RESOLVE: `[<collection>] <key> <json>`: the document's position tells the form.
fn with_document(
    head: &str,
    tokens: &[Token],
    usage: &'static str,
    using: Option<&str>,
) -> Result<Statement, ShellError> {
    let mut p = Parts::new(tokens, usage);
    let short = matches!(tokens.get(1), Some(Token::Json(_)));
    let collection = if short {
        None
    } else {
        Some(p.name("a collection")?)
    };
    let key = p.name("a key")?;
    let document = p.document()?;
    if head == "PUT" {
        let o = p.options(&["CONTEXT", "CONSISTENCY", "TTL"])?;
        Ok(Statement::Put {
            collection: in_collection(head, collection, using)?,
            key,
            document,
            context: o.context,
            consistency: o.consistency,
            ttl_secs: o.ttl_secs,
        })
    } else {
        let o = p.options(&["CONSISTENCY"])?;
        Ok(Statement::Resolve {
            collection: in_collection(head, collection, using)?,
            key,
            document,
            consistency: o.consistency,
        })
    }
}

/// The collection named in the statement, else the one in use, else an error saying how.
fn in_collection(
    head: &str,
    named: Option<String>,
    using: Option<&str>,
) -> Result<String, ShellError> {
    named
        .or_else(|| using.map(str::to_string))
        .ok_or(ShellError::NoCollection {
            statement: static_name(head),
        })
}

/// `CREATE COLLECTION [IF NOT EXISTS] name [WITH replication = N] [IF NOT EXISTS]`
fn create_collection(p: &mut Parts<'_>) -> Result<Statement, ShellError> {
    match p.next() {
        Some(t) if t.keyword().as_deref() == Some("COLLECTION") => {}
        Some(t) => {
            return Err(p.fail(format!(
                "expected COLLECTION or INDEX, found {}",
                t.describe()
            )))
        }
        None => return Err(p.fail("missing COLLECTION or INDEX".into())),
    }
    let mut if_not_exists = if_not_exists(p)?;
    let name = p.name("a collection name")?;
    let mut replication = 0;
    while let Some(t) = p.peek() {
        match t.keyword().as_deref() {
            Some("WITH") => {
                p.next();
                replication = with_replication(p)?;
            }
            Some("IF") => if_not_exists |= self::if_not_exists(p)?,
            _ => {
                let mut m = format!("unexpected {}", t.describe());
                if let Some(s) = t.keyword().and_then(|w| help::suggest(&w, &["WITH", "IF"])) {
                    m.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(p.fail(m));
            }
        }
    }
    Ok(Statement::CreateCollection {
        name,
        replication,
        if_not_exists,
    })
}

fn if_not_exists(p: &mut Parts<'_>) -> Result<bool, ShellError> {
    if p.peek().and_then(Token::keyword).as_deref() != Some("IF") {
        return Ok(false);
    }
    p.next();
    p.expect("NOT")?;
    p.expect("EXISTS")?;
    Ok(true)
}

/// `replication = N`, spaced or not (`replication=3`).
fn with_replication(p: &mut Parts<'_>) -> Result<u32, ShellError> {
    let mut text = String::new();
    while let Some(t) = p.peek() {
        let Token::Word(w) = t else { break };
        if w.eq_ignore_ascii_case("IF") {
            break;
        }
        text.push_str(w);
        p.next();
        if text.contains('=') && !text.ends_with('=') {
            break;
        }
    }
    let Some((option, value)) = text.split_once('=') else {
        return Err(p.fail(format!(
            "expected replication = N after WITH, found {text:?}"
        )));
    };
    if !option.eq_ignore_ascii_case("replication") {
        return Err(p.fail(format!(
            "unknown option {option:?}; the option is replication"
        )));
    }
    value
        .parse::<u32>()
        .map_err(|_| p.fail(format!("replication must be a whole number, not {value:?}")))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
