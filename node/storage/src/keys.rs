//! The engine key layout of documents: `token (8 bytes, order-preserving) ‖ collection ‖ 0
//! ‖ key`, so a token range is one contiguous scan. Every file that builds or takes apart a
//! document's engine key does it here.

use bytes::Bytes;
use ringdb_core::ring::Token;

/// A token as 8 bytes whose byte order is the tokens' numeric order.
pub(crate) fn token_prefix(token: Token) -> [u8; 8] {
    ((token as u64) ^ (1 << 63)).to_be_bytes()
}

/// A stored document entry found by a range scan.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its engine key (resume a scan after it).
    pub storage_key: Vec<u8>,
    /// Collection name.
    pub collection: String,
    /// Document key.
    pub key: String,
    /// The encoded sibling set.
    pub siblings: Bytes,
}

/// Take apart a data key (and its value) found by a scan; `None` if it is not one.
pub(crate) fn parse_entry(k: Vec<u8>, v: Vec<u8>) -> Option<Entry> {
    let rest = k.get(8..)?;
    let cut = rest.iter().position(|b| *b == 0)?;
    let collection = std::str::from_utf8(&rest[..cut]).ok()?.to_string();
    let key = std::str::from_utf8(&rest[cut + 1..]).ok()?.to_string();
    Some(Entry {
        storage_key: k,
        collection,
        key,
        siblings: Bytes::from(v),
    })
}

/// The engine key of a document: order-preserving token prefix, then its address.
pub fn storage_key(token: Token, collection: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + collection.len() + 1 + key.len());
    k.extend_from_slice(&token_prefix(token));
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The collection and document key of an engine key (`token ‖ collection ‖ 0 ‖ key`).
pub(crate) fn address_of(storage_key: &[u8]) -> Option<(&str, &str)> {
    let rest = storage_key.get(8..)?;
    let cut = rest.iter().position(|b| *b == 0)?;
    let collection = std::str::from_utf8(&rest[..cut]).ok()?;
    let key = std::str::from_utf8(&rest[cut + 1..]).ok()?;
    Some((collection, key))
}

/// The collection part of an engine key (`token ‖ collection ‖ 0 ‖ key`).
pub(crate) fn collection_of(storage_key: &[u8]) -> Option<&str> {
    let rest = storage_key.get(8..)?;
    let cut = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..cut]).ok()
}

/// The token part of an engine key.
pub(crate) fn token_of(storage_key: &[u8]) -> Option<Token> {
    let p = u64::from_be_bytes(storage_key.get(..8)?.try_into().ok()?);
    Some((p ^ (1 << 63)) as Token)
}
