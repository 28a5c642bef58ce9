//! Lexing: where statements end, whether more lines are needed, and the tokens of one
//! statement.
//!
//! Invariants: a statement ends at `;` or a newline only outside JSON (outside strings and
//! with every `{`/`[` closed), so a document may span lines and contain `;`. A `--` or `#`
//! at the start of a statement comments out the rest of its line, braces included.

use serde_json::Value;

/// Whether `text` ends inside a JSON string or with unclosed braces or brackets, so the
/// REPL must read another line before running it.
pub fn is_incomplete(text: &str) -> bool {
    let (depth, in_string) = scan(text, |_, _| {});
    depth > 0 || in_string
}

/// Walk `text` tracking JSON nesting; `cut` sees the byte offset of every `;` and newline
/// that ends a statement. Returns the final depth and whether a string is still open.
fn scan(text: &str, mut cut: impl FnMut(usize, char)) -> (i32, bool) {
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    let mut statement_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
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
        let comment = c == '#' || (c == '-' && chars.peek().is_some_and(|(_, n)| *n == '-'));
        if depth == 0 && statement_start && comment {
            // Skip to the end of the line; the newline itself still ends the statement.
            while chars.peek().is_some_and(|(_, n)| *n != '\n') {
                chars.next();
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth = (depth - 1).max(0),
            ';' | '\n' if depth == 0 => {
                cut(i, c);
                statement_start = true;
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            statement_start = false;
        }
    }
    (depth, in_string)
}

/// Split input into statement texts, dropping blanks and `--` / `#` comments.
pub fn split(text: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    scan(text, |i, _| cuts.push(i));
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

/// One token of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A bare word: keyword, name, key, level, token.
    Word(String),
    /// A JSON string, for names with spaces; never a keyword.
    Quoted(String),
    /// Any other JSON value (a document).
    Json(Value),
}

impl Token {
    /// The token as the user wrote it, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("{q:?}"),
            Token::Json(v) => v.to_string(),
        }
    }

    /// The upper-cased text of a bare word (keywords are only ever bare words).
    pub fn keyword(&self) -> Option<String> {
        match self {
            Token::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// A name (word or quoted string), if this token can be one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            Token::Json(_) => None,
        }
    }
}

/// Split one statement into tokens; JSON values (documents, quoted names) are parsed whole.
pub fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while let Some(first) = rest.chars().next() {
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
            rest = rest.get(used..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(Token::Word(rest[..end].to_string()));
            rest = rest[end..].trim_start();
        }
    }
    Ok(out)
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
        assert_eq!(parts[1], "GET c k");
        assert_eq!(parts[2], "STATUS");
    }

    #[test]
    fn multi_line_balance() {
        assert!(is_incomplete("PUT c k {\"a\":"));
        assert!(is_incomplete("PUT c k {\"a\": [1, 2"));
        assert!(is_incomplete("PUT c k {\"a\": \"open string"));
        assert!(is_incomplete("PUT c k {\"a\": {\"b\": 1}\n"));
        assert!(!is_incomplete("PUT c k {\"a\": 1}"));
        assert!(
            !is_incomplete("PUT c k {\"a\": \"}{ [\"}"),
            "braces in strings"
        );
        assert!(
            !is_incomplete("PUT c k {\"a\": \"\\\"{\"}"),
            "escaped quote"
        );
        assert!(!is_incomplete("GET c k } ]"), "stray closers never wait");
        assert!(!is_incomplete("STATUS"));
    }

    #[test]
    fn comments_may_hold_braces() {
        assert!(!is_incomplete("-- an example: PUT c k {"));
        assert!(!is_incomplete("GET c k; -- {\n"));
        assert_eq!(
            split("# PUT c k {\nGET c k; -- trailing [\nSTATUS"),
            vec!["GET c k", "STATUS"]
        );
        assert!(
            is_incomplete("PUT c k {\n-- \"a\": 1"),
            "inside JSON -- is not a comment"
        );
    }

    #[test]
    fn tokens() {
        assert_eq!(
            tokenize("PUT  \"my key\" {\"a\": [1]} x").unwrap(),
            vec![
                Token::Word("PUT".into()),
                Token::Quoted("my key".into()),
                Token::Json(json!({"a": [1]})),
                Token::Word("x".into())
            ]
        );
        assert!(tokenize("PUT k {\"a\":")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(tokenize("").unwrap().is_empty());
        assert_eq!(tokenize("é ü").unwrap().len(), 2);
    }
}
