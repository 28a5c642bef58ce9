//! The recursive-descent parser for the grammar in the module docs.

use crate::aggregate::{AggregateSpec, Aggregation, Arg, Func};
use crate::error::Result;
use crate::filter::{Condition, Filter, Op};

use super::cursor::{is_token_char, Cursor};
use super::{Aggregate, Count, Find, Statement};

/// Whether `text` is one of this grammar's statements (by its leading keywords), so the
/// shell knows to hand it to [`parse`] (the shell has its own `CREATE COLLECTION`,
/// `DESCRIBE COLLECTIONS`, ...).
pub fn is_query_statement(text: &str) -> bool {
    let mut c = Cursor::new(text);
    if c.keyword("FIND") || c.keyword("COUNT") || c.keyword("AGGREGATE") {
        return true;
    }
    if c.keyword("CREATE") || c.keyword("DROP") {
        return c.keyword("INDEX");
    }
    c.keyword("DESCRIBE") && c.keyword("INDEXES")
}

/// Parse one statement (an optional trailing `;` is allowed).
pub fn parse(text: &str) -> Result<Statement> {
    let mut c = Cursor::new(text);
    let statement = if c.keyword("CREATE") {
        let (collection, path) = index_target(&mut c)?;
        Statement::CreateIndex { collection, path }
    } else if c.keyword("DROP") {
        let (collection, path) = index_target(&mut c)?;
        Statement::DropIndex { collection, path }
    } else if c.keyword("DESCRIBE") {
        c.expect_keyword("INDEXES", "INDEXES")?;
        let collection = if c.at_end() {
            None
        } else {
            Some(c.collection()?)
        };
        Statement::DescribeIndexes { collection }
    } else if c.keyword("FIND") {
        let collection = c.collection()?;
        let t = tail(&mut c, Kind::Find)?;
        Statement::Find(Find {
            collection,
            fields: t.fields.unwrap_or_default(),
            filter: t.filter.unwrap_or_default(),
            limit: t.limit,
            page: t.page,
            allow_filtering: t.allow_filtering,
            consistency: t.consistency,
        })
    } else if c.keyword("COUNT") {
        let collection = c.collection()?;
        let t = tail(&mut c, Kind::Count)?;
        Statement::Count(Count {
            collection,
            filter: t.filter.unwrap_or_default(),
            allow_filtering: t.allow_filtering,
            consistency: t.consistency,
        })
    } else if c.keyword("AGGREGATE") {
        let collection = c.collection()?;
        let aggregations = aggregations(&mut c)?;
        let t = tail(&mut c, Kind::Aggregate)?;
        let spec = AggregateSpec::new(aggregations, t.group_by)?;
        Statement::Aggregate(Aggregate {
            collection,
            spec,
            filter: t.filter.unwrap_or_default(),
            allow_filtering: t.allow_filtering,
            consistency: t.consistency,
        })
    } else {
        return Err(
            c.expected("CREATE INDEX, DROP INDEX, DESCRIBE INDEXES, FIND, COUNT or AGGREGATE")
        );
    };
    if !c.at_end() {
        return Err(c.expected("the end of the statement"));
    }
    Ok(statement)
}

/// The conditions of a WHERE clause, without the keyword: `cond {AND cond}` (`age >= 18 AND
/// tags[] = "x"`), for programs that build queries from a condition text.
pub fn parse_conditions(text: &str) -> Result<Filter> {
    let mut c = Cursor::new(text);
    let mut conditions = vec![condition(&mut c)?];
    while c.keyword("AND") {
        conditions.push(condition(&mut c)?);
    }
    if !c.at_end() {
        return Err(c.expected("AND or the end of the conditions"));
    }
    Ok(Filter::new(conditions))
}

/// `INDEX ON collection (path)`
fn index_target(c: &mut Cursor<'_>) -> Result<(String, crate::path::Path)> {
    c.expect_keyword("INDEX", "INDEX")?;
    c.expect_keyword("ON", "ON")?;
    let collection = c.collection()?;
    c.expect_punct("(")?;
    let path = c.path()?;
    c.expect_punct(")")?;
    Ok((collection, path))
}

/// `fn(arg) {, fn(arg)}`, refusing repeats where they are written.
fn aggregations(c: &mut Cursor<'_>) -> Result<Vec<Aggregation>> {
    let mut out: Vec<Aggregation> = Vec::new();
    loop {
        c.ws();
        let start = c.pos;
        let name = c.word();
        let func = Func::from_name(name).ok_or_else(|| {
            c.pos = start;
            c.expected("an aggregate function (count, sum, avg, min or max)")
        })?;
        c.expect_punct("(")?;
        let arg = if c.punct("*") {
            Arg::Star
        } else {
            Arg::Path(c.path()?)
        };
        c.expect_punct(")")?;
        let a = Aggregation::new(func, arg).map_err(|e| c.error_at(start, e.to_string()))?;
        if out.contains(&a) {
            return Err(c.error_at(start, format!("{a} is asked for twice")));
        }
        out.push(a);
        if !c.punct(",") {
            return Ok(out);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Find,
    Count,
    Aggregate,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Find => "FIND",
            Kind::Count => "COUNT",
            Kind::Aggregate => "AGGREGATE",
        }
    }

    /// The clauses this statement takes, as listed in errors.
    fn clauses(self) -> &'static str {
        match self {
            Kind::Find => "FIELDS, WHERE, LIMIT, PAGE, ALLOW FILTERING, CONSISTENCY or the end of the statement",
            Kind::Count => "WHERE, ALLOW FILTERING, CONSISTENCY or the end of the statement",
            Kind::Aggregate => "',', WHERE, GROUP BY, ALLOW FILTERING, CONSISTENCY or the end of the statement",
        }
    }
}

/// The clauses after the collection (and aggregations), each at most once.
#[derive(Default)]
struct Tail {
    fields: Option<Vec<crate::path::Path>>,
    filter: Option<Filter>,
    limit: Option<u64>,
    page: Option<String>,
    allow_filtering: bool,
    consistency: Option<String>,
    group_by: Option<crate::path::Path>,
}

fn tail(c: &mut Cursor<'_>, kind: Kind) -> Result<Tail> {
    let mut t = Tail::default();
    let mut seen_allow = false;
    loop {
        if c.at_end() {
            return Ok(t);
        }
        let start = c.pos;
        // Which clause, and whether this statement takes it.
        let clause = [
            "FIELDS",
            "WHERE",
            "LIMIT",
            "PAGE",
            "ALLOW",
            "CONSISTENCY",
            "GROUP",
        ]
        .into_iter()
        .find(|k| c.keyword(k))
        .ok_or_else(|| c.expected(kind.clauses()))?;
        let allowed = match clause {
            "FIELDS" | "LIMIT" | "PAGE" => kind == Kind::Find,
            "GROUP" => kind == Kind::Aggregate,
            _ => true,
        };
        let shown = match clause {
            "GROUP" => "GROUP BY",
            "ALLOW" => "ALLOW FILTERING",
            other => other,
        };
        if !allowed {
            return Err(c.error_at(start, format!("{} takes no {shown} clause", kind.name())));
        }
        let twice = c.error_at(start, format!("{shown} is given twice"));
        match clause {
            "FIELDS" => {
                if t.fields.is_some() {
                    return Err(twice);
                }
                let mut fields = vec![c.path()?];
                while c.punct(",") {
                    fields.push(c.path()?);
                }
                t.fields = Some(fields);
            }
            "WHERE" => {
                if t.filter.is_some() {
                    return Err(twice);
                }
                let mut conditions = vec![condition(c)?];
                while c.keyword("AND") {
                    conditions.push(condition(c)?);
                }
                t.filter = Some(Filter::new(conditions));
            }
            "LIMIT" => {
                if t.limit.is_some() {
                    return Err(twice);
                }
                t.limit = Some(c.count("LIMIT")?);
            }
            "PAGE" => {
                if t.page.is_some() {
                    return Err(twice);
                }
                t.page = Some(c.word_or_quoted(is_token_char, "a page token")?);
            }
            "ALLOW" => {
                if seen_allow {
                    return Err(twice);
                }
                c.expect_keyword("FILTERING", "FILTERING")?;
                seen_allow = true;
                t.allow_filtering = true;
            }
            "CONSISTENCY" => {
                if t.consistency.is_some() {
                    return Err(twice);
                }
                let level = c.word();
                if level.is_empty() {
                    return Err(c.expected("a consistency level (ONE, QUORUM, ALL, ...)"));
                }
                t.consistency = Some(level.to_string());
            }
            _ => {
                if t.group_by.is_some() {
                    return Err(twice);
                }
                c.expect_keyword("BY", "BY")?;
                t.group_by = Some(c.path()?);
            }
        }
    }
}

/// Builds an [`Op`] from its operand.
type MakeOp = fn(serde_json::Value) -> Op;

/// `path op json`, `path IN (json, ...)` or `path EXISTS`.
fn condition(c: &mut Cursor<'_>) -> Result<Condition> {
    c.ws();
    let start = c.pos;
    let path = c.path()?;
    let op = if c.keyword("EXISTS") {
        Op::Exists
    } else if c.keyword("IN") {
        c.expect_punct("(")?;
        let mut list = vec![c.operand()?];
        while c.punct(",") {
            list.push(c.operand()?);
        }
        c.expect_punct(")")?;
        Op::In(list)
    } else {
        // Two-character operators first.
        let ops: [(&str, MakeOp); 6] = [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let make = ops
            .iter()
            .find(|(symbol, _)| c.punct(symbol))
            .map(|(_, make)| *make)
            .ok_or_else(|| c.expected("an operator (=, !=, <, <=, >, >=, IN or EXISTS)"))?;
        make(c.operand()?)
    };
    Condition::new(path, op).map_err(|e| c.error_at(start, e.to_string()))
}
