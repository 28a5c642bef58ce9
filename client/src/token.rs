//! Where a key lives on the ring, computed in the client so requests can go straight to a
//! replica.

/// A position on the ring, as the cluster's `Ring` RPC reports tokens.
pub type Token = i64;

/// The ring position of a document: the low 64 bits (Cassandra's `h1`) of MurmurHash3
/// x64_128, seed 0, of `collection \0 key`, read as a signed i64.
///
/// This is a copy of `ringdb_node::ring::token_for`, kept here on purpose: the client must
/// not depend on the node crate (it would pull storage, gossip and the server into every
/// application). Both crates assert the same fixed key → token vectors in their unit tests,
/// and the integration tests compare the two on many keys, so neither can change alone. A
/// drift would not break correctness (any node coordinates any key) but would silently cost
/// the hop that token-aware routing saves.
pub fn token_for(collection: &str, key: &str) -> Token {
    use std::io::Read;
    let mut input = collection
        .as_bytes()
        .chain(&[0u8][..])
        .chain(key.as_bytes());
    // Reading from in-memory slices cannot fail.
    let h = murmur3::murmur3_x64_128(&mut input, 0).unwrap_or(0);
    (h as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::token_for;

    /// Obtained from `ringdb_node::ring::token_for`; the node's ring tests assert the same
    /// table.
    const VECTORS: [(&str, &str, i64); 5] = [
        ("users", "alice", -3033734117929159040),
        ("usertable", "user0000000042", -7660759409904080294),
        ("c", "", -7085071147438720114),
        ("", "k", -1524241173621435117),
        ("docs", "ключ-🔑", 1027564018599829204),
    ];

    #[test]
    fn matches_the_nodes_tokens() {
        for (c, k, want) in VECTORS {
            assert_eq!(token_for(c, k), want, "token of {c:?}/{k:?}");
        }
    }

    #[test]
    fn the_separator_keeps_collection_and_key_apart() {
        assert_ne!(token_for("users", "alice"), token_for("user", "salice"));
    }
}
