//! A position in a statement's text and the tokens read there; every error points at the
//! byte where the expected token was missing.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::path::Path;

/// Characters of a bare collection name (the node's rule for collection names).
pub(crate) fn is_collection_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Characters of a bare page token (URL-safe base64, padding tolerated).
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The statement text and how far it has been read.
pub(crate) struct Cursor<'a> {
    pub(crate) text: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// Skip whitespace.
    pub(crate) fn ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// An error at the current position (after whitespace): `expected`, and what was found.
    pub(crate) fn expected(&mut self, expected: &str) -> Error {
        self.ws();
        Error::syntax(self.text, self.pos, expected)
    }

    /// An error with its own message at byte `at`.
    pub(crate) fn error_at(&self, at: usize, message: impl Into<String>) -> Error {
        Error::syntax_message(self.text, at, message.into())
    }

    /// Whether only whitespace and an optional `;` remain.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        let rest = self.rest();
        rest.is_empty() || rest.strip_prefix(';').is_some_and(|r| r.trim().is_empty())
    }

    /// Consume `keyword` (case-insensitive, as a whole word) if it comes next.
    pub(crate) fn keyword(&mut self, keyword: &str) -> bool {
        self.ws();
        let rest = self.rest();
        let matches = rest
            .get(..keyword.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
            && !rest[keyword.len()..].starts_with(is_word_char);
        if matches {
            self.pos += keyword.len();
        }
        matches
    }

    /// Consume `keyword` or fail naming `expected`.
    pub(crate) fn expect_keyword(&mut self, keyword: &str, expected: &str) -> Result<()> {
        if self.keyword(keyword) {
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    /// Consume `symbol` if it comes next.
    pub(crate) fn punct(&mut self, symbol: &str) -> bool {
        self.ws();
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len();
            true
        } else {
            false
        }
    }

    /// Consume `symbol` or fail naming it.
    pub(crate) fn expect_punct(&mut self, symbol: &str) -> Result<()> {
        if self.punct(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{symbol}'")))
        }
    }

    /// A run of characters passing `ok` (possibly empty), after whitespace.
    pub(crate) fn run(&mut self, ok: impl Fn(char) -> bool) -> &'a str {
        self.ws();
        let rest = self.rest();
        let len = rest.find(|c: char| !ok(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// A JSON string literal if one starts here.
    fn quoted(&mut self) -> Result<Option<String>> {
        self.ws();
        if !self.rest().starts_with('"') {
            return Ok(None);
        }
        let mut stream = serde_json::Deserializer::from_str(self.rest()).into_iter::<String>();
        match stream.next() {
            Some(Ok(s)) => {
                self.pos += stream.byte_offset();
                Ok(Some(s))
            }
            _ => Err(self.error_at(
                self.pos,
                "invalid JSON string (unclosed quote or bad escape)",
            )),
        }
    }

    /// A bare word of `ok` characters or a JSON string; fails naming `what`.
    pub(crate) fn word_or_quoted(&mut self, ok: fn(char) -> bool, what: &str) -> Result<String> {
        if let Some(s) = self.quoted()? {
            return Ok(s);
        }
        let w = self.run(ok);
        if w.is_empty() {
            return Err(self.expected(what));
        }
        Ok(w.to_string())
    }

    /// A collection name.
    pub(crate) fn collection(&mut self) -> Result<String> {
        self.word_or_quoted(is_collection_char, "a collection name")
    }

    /// A bare word of letters, digits and '_' (a function name or level); may be empty.
    pub(crate) fn word(&mut self) -> &'a str {
        self.run(is_word_char)
    }

    /// A path.
    pub(crate) fn path(&mut self) -> Result<Path> {
        self.ws();
        let (path, end) = Path::parse_at(self.text, self.pos)?;
        self.pos = end;
        Ok(path)
    }

    /// A scalar JSON operand.
    pub(crate) fn operand(&mut self) -> Result<Value> {
        const WHAT: &str = "a JSON value (a \"string\", a number, true, false or null)";
        self.ws();
        let start = self.pos;
        if let Some(s) = self.quoted()? {
            return Ok(Value::String(s));
        }
        match self.rest().chars().next() {
            Some('{' | '[') => Err(self.error_at(
                start,
                "a comparison operand is a string, number, true, false or null: objects and arrays cannot be compared",
            )),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let text = self.run(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
                match serde_json::from_str::<Value>(text) {
                    Ok(v @ Value::Number(_)) => Ok(v),
                    Ok(_) | Err(_) => Err(self.error_at(start, format!("invalid number {text:?}"))),
                }
            }
            _ => match self.word() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                "" => Err(self.expected(WHAT)),
                w => Err(self.error_at(
                    start,
                    format!("expected {WHAT}, found {w:?} (strings need double quotes; true, false and null are lower case)"),
                )),
            },
        }
    }

    /// A whole number of 1 or more.
    pub(crate) fn count(&mut self, clause: &str) -> Result<u64> {
        self.ws();
        let start = self.pos;
        let digits = self.run(|c| c.is_ascii_digit());
        if digits.is_empty() {
            return Err(self.expected(&format!("a whole number after {clause}")));
        }
        match digits.parse::<u64>() {
            Ok(0) => Err(self.error_at(start, format!("{clause} must be at least 1"))),
            Ok(n) => Ok(n),
            Err(_) => Err(self.error_at(start, format!("{clause} {digits} is too large"))),
        }
    }
}
