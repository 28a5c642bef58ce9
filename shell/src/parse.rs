//! Statement parsing: splitting input into statements and statements into parts.
//!
//! Statements end at `;` or a newline outside JSON, so a JSON document may span lines and
//! contain `;`. Keywords are case-insensitive; keys may be quoted like JSON strings.

use ringdb_client::{Consistency, Context};
use serde_json::Value;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `GET c k [LOCAL] [CONSISTENCY l]`
    Get {
        collection: String,
        key: String,
        local: bool,
        consistency: Option<Consistency>,
    },
    /// `PUT c k {json} [CONTEXT t] [CONSISTENCY l]`
    Put {
        collection: String,
        key: String,
        document: Value,
        context: Option<Context>,
        consistency: Option<Consistency>,
    },
    /// `DELETE c k [CONTEXT t] [CONSISTENCY l]`
    Delete {
        collection: String,
        key: String,
        context: Option<Context>,
        consistency: Option<Consistency>,
    },
    /// `CONSISTENCY [l]`
    Consistency(Option<Consistency>),
    /// `STATUS`
    Status,
    /// `RING`
    Ring,
    /// `HELP [statement]`
    Help(Option<String>),
    /// `EXIT` / `QUIT`
    Exit,
}

/// Statement names, for help, completion and suggestions.
pub const STATEMENTS: [&str; 9] = [
    "GET",
    "PUT",
    "DELETE",
    "CONSISTENCY",
    "STATUS",
    "RING",
    "HELP",
    "EXIT",
    "QUIT",
];

/// Whether `text` ends inside a JSON string or unbalanced braces (more lines are needed).
pub fn is_incomplete(text: &str) -> bool {
    let (depth, in_string) = scan(text, |_, _, _| {});
    depth > 0 || in_string
}

/// Walk text tracking JSON nesting; `at` sees (byte offset, char, depth) outside strings.
fn scan(text: &str, mut at: impl FnMut(usize, char, i32)) -> (i32, bool) {
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth = (depth - 1).max(0),
            _ => at(i, c, depth),
        }
    }
    (depth, in_string)
}

/// Split input into statement texts, dropping blanks and `--` / `#` comment lines.
pub fn split(text: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    scan(text, |i, c, depth| {
        if depth == 0 && (c == ';' || c == '\n') {
            cuts.push(i);
        }
    });
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain(std::iter::once(text.len())) {
        let s = text[start..end].trim();
        start = (end + 1).min(text.len());
        if s.is_empty() || s.starts_with("--") || s.starts_with('#') {
            continue;
        }
        out.push(s.to_string());
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Json(Value),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("{q:?}"),
            Token::Json(v) => v.to_string(),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let first = rest.chars().next().unwrap_or(' ');
        if first == '{' || first == '[' || first == '"' {
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            let v = match stream.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(format!("invalid JSON: {e}")),
                None => return Err("expected a JSON value".into()),
            };
            let used = stream.byte_offset();
            out.push(match v {
                Value::String(s) if first == '"' => Token::Quoted(s),
                v => Token::Json(v),
            });
            rest = rest[used..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(Token::Word(rest[..end].to_string()));
            rest = rest[end..].trim_start();
        }
    }
    Ok(out)
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
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

/// The statement name closest to a typo, if any is close.
pub fn suggest(word: &str) -> Option<&'static str> {
    let w = word.to_ascii_uppercase();
    STATEMENTS
        .iter()
        .map(|s| (distance(&w, s), *s))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, s)| s)
}

struct Parts {
    tokens: std::vec::IntoIter<Token>,
    usage: &'static str,
}

impl Parts {
    fn name(&mut self, what: &str) -> Result<String, String> {
        match self.tokens.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(w),
            Some(t) => Err(format!(
                "expected {what}, found {}; usage: {}",
                t.describe(),
                self.usage
            )),
            None => Err(format!("missing {what}; usage: {}", self.usage)),
        }
    }

    /// Trailing `CONTEXT t`, `CONSISTENCY l` and (for GET) `LOCAL`, in any order.
    fn options(
        &mut self,
        allow_context: bool,
        allow_local: bool,
    ) -> Result<(Option<Context>, Option<Consistency>, bool), String> {
        let (mut context, mut consistency, mut local) = (None, None, false);
        while let Some(t) = self.tokens.next() {
            let word = match &t {
                Token::Word(w) => w.to_ascii_uppercase(),
                other => {
                    return Err(format!(
                        "unexpected {}; usage: {}",
                        other.describe(),
                        self.usage
                    ))
                }
            };
            match word.as_str() {
                "CONSISTENCY" => {
                    let l = self.name("a consistency level")?;
                    consistency = Some(
                        l.parse::<Consistency>()
                            .map_err(|e| e.message().to_string())?,
                    );
                }
                "CONTEXT" if allow_context => {
                    context = Some(Context::from_token(self.name("a context token")?))
                }
                "LOCAL" if allow_local => local = true,
                _ => return Err(format!("unexpected {word:?}; usage: {}", self.usage)),
            }
        }
        Ok((context, consistency, local))
    }
}

/// Usage line of each statement.
pub fn usage(statement: &str) -> Option<&'static str> {
    Some(match statement.to_ascii_uppercase().as_str() {
        "GET" => "GET <collection> <key> [LOCAL] [CONSISTENCY <level>]",
        "PUT" => "PUT <collection> <key> <json-object> [CONTEXT <token>] [CONSISTENCY <level>]",
        "DELETE" => "DELETE <collection> <key> [CONTEXT <token>] [CONSISTENCY <level>]",
        "CONSISTENCY" => "CONSISTENCY [ONE|TWO|THREE|QUORUM|ALL|ANY]",
        "STATUS" => "STATUS",
        "RING" => "RING",
        "HELP" => "HELP [statement]",
        "EXIT" | "QUIT" => "EXIT",
        _ => return None,
    })
}

/// Parse one statement's text.
pub fn parse(text: &str) -> Result<Statement, String> {
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter();
    let head = match it.next() {
        Some(Token::Word(w)) => w.to_ascii_uppercase(),
        Some(t) => {
            return Err(format!(
                "a statement starts with a keyword, not {}",
                t.describe()
            ))
        }
        None => return Err("empty statement".into()),
    };
    let Some(usage) = usage(&head) else {
        return Err(match suggest(&head) {
            Some(s) => {
                format!("unknown statement {head:?}; did you mean {s}? (HELP lists statements)")
            }
            None => format!("unknown statement {head:?}; HELP lists statements"),
        });
    };
    let mut p = Parts { tokens: it, usage };
    let st = match head.as_str() {
        "GET" => {
            let (collection, key) = (p.name("a collection")?, p.name("a key")?);
            let (_, consistency, local) = p.options(false, true)?;
            Statement::Get {
                collection,
                key,
                local,
                consistency,
            }
        }
        "PUT" => {
            let (collection, key) = (p.name("a collection")?, p.name("a key")?);
            let document = match p.tokens.next() {
                Some(Token::Json(v @ Value::Object(_))) => v,
                Some(t) => {
                    return Err(format!(
                        "the document must be a JSON object, found {}; usage: {usage}",
                        t.describe()
                    ))
                }
                None => return Err(format!("missing the JSON document; usage: {usage}")),
            };
            let (context, consistency, _) = p.options(true, false)?;
            Statement::Put {
                collection,
                key,
                document,
                context,
                consistency,
            }
        }
        "DELETE" => {
            let (collection, key) = (p.name("a collection")?, p.name("a key")?);
            let (context, consistency, _) = p.options(true, false)?;
            Statement::Delete {
                collection,
                key,
                context,
                consistency,
            }
        }
        "CONSISTENCY" => match p.tokens.next() {
            None => Statement::Consistency(None),
            Some(Token::Word(l)) => Statement::Consistency(Some(
                l.parse()
                    .map_err(|e: ringdb_client::Error| e.message().to_string())?,
            )),
            Some(t) => return Err(format!("unexpected {}; usage: {usage}", t.describe())),
        },
        "STATUS" => Statement::Status,
        "RING" => Statement::Ring,
        "HELP" => Statement::Help(p.tokens.next().map(|t| match t {
            Token::Word(w) | Token::Quoted(w) => w,
            Token::Json(v) => v.to_string(),
        })),
        _ => Statement::Exit,
    };
    if let Some(extra) = p.tokens.next() {
        return Err(format!(
            "unexpected {} at the end; usage: {usage}",
            extra.describe()
        ));
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_on_semicolons_and_newlines_but_not_inside_json() {
        let parts = split("PUT c k {\"a\": \"x;y\",\n \"b\": 2}; GET c k\n-- comment\nSTATUS");
        assert_eq!(parts.len(), 3);
        assert!(parts[0].contains("x;y"));
        assert!(is_incomplete("PUT c k {\"a\":"));
        assert!(!is_incomplete("PUT c k {\"a\": 1}"));
    }

    #[test]
    fn parses_the_contract_statements() {
        assert_eq!(
            parse("put users \"alice smith\" {\"n\": 1} consistency all").unwrap(),
            Statement::Put {
                collection: "users".into(),
                key: "alice smith".into(),
                document: json!({"n": 1}),
                context: None,
                consistency: Some(Consistency::All)
            }
        );
        assert_eq!(
            parse("GET users alice LOCAL").unwrap(),
            Statement::Get {
                collection: "users".into(),
                key: "alice".into(),
                local: true,
                consistency: None
            }
        );
        assert!(matches!(
            parse("DELETE c k CONTEXT abc").unwrap(),
            Statement::Delete {
                context: Some(_),
                ..
            }
        ));
        assert_eq!(parse("consistency").unwrap(), Statement::Consistency(None));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(parse("GTE c k").unwrap_err().contains("did you mean GET"));
        assert!(parse("PUT c k [1]").unwrap_err().contains("JSON object"));
        assert!(parse("PUT c k {\"a\":")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(parse("GET c k CONSISTENCY MOST")
            .unwrap_err()
            .contains("MOST"));
        assert!(parse("GET c").unwrap_err().contains("missing a key"));
        assert!(parse("STATUS now").unwrap_err().contains("unexpected"));
    }
}
