//! Checks on client input, done once at the node that receives a request so that bad
//! input is refused with a message naming the problem and nothing is written.

use base64::Engine as _;
use bytes::Bytes;
use serde::de::IgnoredAny;

use crate::error::{Error, Result};
use crate::version::CausalContext;

/// Longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest collection name.
pub const MAX_COLLECTION_BYTES: usize = 128;
/// Default limit on one document.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// A collection name: 1 to 128 of `A-Z a-z 0-9 _ - .`.
pub fn collection(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("collection name is empty".into()));
    }
    if name.len() > MAX_COLLECTION_BYTES {
        return Err(Error::InvalidArgument(format!(
            "collection name is {} bytes; the limit is {MAX_COLLECTION_BYTES}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(Error::InvalidArgument(format!(
            "collection name {name:?} contains {c:?}; use letters, digits, '_', '-' and '.'"
        )));
    }
    Ok(())
}

/// A document key: 1 to 1024 bytes of UTF-8 (the wire already guarantees UTF-8).
pub fn key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// A document: a JSON object no larger than `max_bytes`.
pub fn document(doc: &Bytes, max_bytes: usize) -> Result<()> {
    if doc.len() > max_bytes {
        return Err(Error::InvalidArgument(format!(
            "document is {} bytes; the limit is {max_bytes}",
            doc.len()
        )));
    }
    let first = doc.iter().find(|b| !b.is_ascii_whitespace());
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(doc) {
        return Err(Error::InvalidArgument(format!(
            "document is not valid JSON: {e}"
        )));
    }
    if first != Some(&b'{') {
        return Err(Error::InvalidArgument(
            "document must be a JSON object ({...})".into(),
        ));
    }
    Ok(())
}

/// Decode a client's opaque context token; empty means none.
pub fn context(token: &str) -> Result<CausalContext> {
    if token.is_empty() {
        return Ok(CausalContext::new());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| {
            Error::InvalidArgument(
                "context is not a token this cluster issued (bad encoding)".into(),
            )
        })?;
    CausalContext::decode(&raw).map_err(|e| {
        Error::InvalidArgument(format!("context is not a token this cluster issued ({e})"))
    })
}

/// The opaque token form of a context handed to clients.
pub fn context_token(ctx: &CausalContext) -> String {
    if ctx.is_empty() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_named() {
        assert!(key("").unwrap_err().to_string().contains("empty"));
        assert!(key(&"k".repeat(1025))
            .unwrap_err()
            .to_string()
            .contains("1025"));
        assert!(key(&"k".repeat(1024)).is_ok());
        assert!(collection("a b").unwrap_err().to_string().contains("' '"));
        assert!(document(&Bytes::from_static(b"[1]"), 100)
            .unwrap_err()
            .to_string()
            .contains("object"));
        assert!(document(&Bytes::from_static(b"{\"a\":"), 100)
            .unwrap_err()
            .to_string()
            .contains("JSON"));
        assert!(document(&Bytes::from_static(b"{\"a\":1}"), 3)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        assert!(document(&Bytes::from_static(b" {\"a\":1}"), 100).is_ok());
        assert!(context("!!").is_err());
        assert!(context("AAAA").is_err());
    }

    #[test]
    fn context_tokens_round_trip() {
        let mut s = crate::version::SiblingSet::new();
        s.apply_write(
            "n1.1",
            &CausalContext::new(),
            Some(Bytes::from_static(b"{}")),
            1,
        );
        let tok = context_token(s.context());
        assert_eq!(&context(&tok).unwrap(), s.context());
        assert_eq!(context_token(&CausalContext::new()), "");
    }
}
