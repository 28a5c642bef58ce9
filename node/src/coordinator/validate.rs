//! Checks on client input, done once at the node that receives a request so that bad
//! input is refused with a message naming the problem and nothing is written.

use base64::Engine as _;
use bytes::Bytes;
use serde::de::IgnoredAny;

use crate::error::{Error, Result};
use crate::ring::{token_for, Token};
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
    // JSON text is UTF-8 (RFC 8259); the parser below skips string contents unchecked, and
    // a stored invalid byte would break every other client's parser on Get.
    if let Err(e) = std::str::from_utf8(doc) {
        return Err(Error::InvalidArgument(format!(
            "document is not valid UTF-8 (invalid byte at offset {}); JSON text must be UTF-8",
            e.valid_up_to()
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

/// First byte of a context token, so the layout can change without misreading old tokens.
const CONTEXT_TOKEN_FORMAT: u8 = 1;

/// Decode a client's opaque context token for `collection`/`key`; empty means none.
/// A token carries the ring token of the key it was issued for, so a context read on one
/// key can never supersede versions of another (it would silently replace or delete them).
pub fn context(token: &str, collection: &str, key: &str) -> Result<CausalContext> {
    if token.is_empty() {
        return Ok(CausalContext::new());
    }
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "context is not a token this cluster issued ({why}); pass the context string a \
             Get, Put, Delete or Find returned for this key unchanged, or none"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| bad("bad encoding"))?;
    let (format, rest) = raw.split_first().ok_or_else(|| bad("empty"))?;
    if *format != CONTEXT_TOKEN_FORMAT {
        return Err(bad(&format!("unknown format {format}")));
    }
    if rest.len() < 8 {
        return Err(bad("truncated"));
    }
    let (bound, ctx) = rest.split_at(8);
    let issued_for = i64::from_be_bytes(bound.try_into().expect("8 bytes"));
    if issued_for != token_for(collection, key) {
        return Err(Error::InvalidArgument(format!(
            "context was issued for another key or collection, not {collection}/{key:?}; a \
             context only applies to the document it was read from"
        )));
    }
    CausalContext::decode(ctx).map_err(|e| bad(&e.to_string()))
}

/// The opaque token form of a context handed to clients for `collection`/`key`. Never
/// empty: a not-found read gets a token that covers nothing, so a delete made with it
/// deletes nothing newer (an empty context on delete means "read first").
pub fn context_token(collection: &str, key: &str, ctx: &CausalContext) -> String {
    context_token_at(token_for(collection, key), ctx)
}

/// `context_token` for the key whose ring token is `bound` (computed before the request's
/// key moved into the operation).
pub fn context_token_at(bound: Token, ctx: &CausalContext) -> String {
    let mut raw = Vec::with_capacity(9 + 16);
    raw.push(CONTEXT_TOKEN_FORMAT);
    raw.extend_from_slice(&bound.to_be_bytes());
    if !ctx.is_empty() {
        raw.extend_from_slice(&ctx.encode());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
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
        assert!(document(&Bytes::from_static(b"{\"a\":\"\xff\xfe\"}"), 100)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
        assert!(document(&Bytes::from_static("{\"a\":\"éè\"}".as_bytes()), 100).is_ok());
        assert!(context("!!", "c", "k").is_err());
        assert!(context("AAAA", "c", "k").is_err());
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
        let tok = context_token("c", "k", s.context());
        assert_eq!(&context(&tok, "c", "k").unwrap(), s.context());
        let other = context(&tok, "c", "j").unwrap_err().to_string();
        assert!(other.contains("another key"), "{other}");
        assert!(context(&tok, "d", "k").is_err());
        // A not-found read's token is not empty (empty means "read first" on delete) and
        // covers nothing.
        let nothing = context_token("c", "k", &CausalContext::new());
        assert!(!nothing.is_empty());
        assert!(context(&nothing, "c", "k").unwrap().is_empty());
        assert!(context(&nothing, "c", "other").is_err());
    }
}
