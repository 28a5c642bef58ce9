//! The crate's one error type. Every variant carries a message meant for the user; the node
//! maps all of them to `INVALID_ARGUMENT` (a request the user can fix) except [`Error::Decode`]
//! on bytes exchanged between nodes, which means a bug or a version mismatch.

/// Why a query text, page token or encoded state could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Statement or path text that does not follow the grammar.
    #[error("{message} at column {column}")]
    Syntax {
        /// 1-based character column of the offending input.
        column: usize,
        /// Byte offset of the offending input in the text that was parsed.
        offset: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// Well-formed input that asks for something the semantics do not allow.
    #[error("{0}")]
    Invalid(String),
    /// Bytes that are not a valid encoding (a value, an index entry, a partial aggregate).
    #[error("invalid {what}: {reason}")]
    Decode {
        /// Which kind of encoding.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A page token that is garbage or belongs to another query.
    #[error("{0}")]
    PageToken(String),
}

impl Error {
    /// A syntax error at byte `offset` of `text`, found while expecting `expected`.
    pub(crate) fn syntax(text: &str, offset: usize, expected: &str) -> Error {
        let offset = offset.min(text.len());
        let found = match text.get(offset..).and_then(|rest| rest.chars().next()) {
            None => "the end of the input".to_string(),
            Some(c) if c.is_whitespace() => "a space".to_string(),
            Some(_) => {
                let rest = &text[offset..];
                let word: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(20)
                    .collect();
                format!("{word:?}")
            }
        };
        Error::syntax_message(text, offset, format!("expected {expected}, found {found}"))
    }

    /// A syntax error at byte `offset` of `text` with a message of its own.
    pub(crate) fn syntax_message(text: &str, offset: usize, message: String) -> Error {
        let offset = offset.min(text.len());
        let column = text
            .get(..offset)
            .map_or(offset, |before| before.chars().count())
            + 1;
        Error::Syntax {
            column,
            offset,
            message,
        }
    }

    /// A decoding error for `what`.
    pub(crate) fn decode(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Decode {
            what,
            reason: reason.into(),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_column_and_what_was_found() {
        let e = Error::syntax("FIND é )x", 8, "a path");
        assert_eq!(e.to_string(), "expected a path, found \")x\" at column 8");
        let e = Error::syntax("FIND", 4, "a collection");
        assert_eq!(
            e.to_string(),
            "expected a collection, found the end of the input at column 5"
        );
    }
}
