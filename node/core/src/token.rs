//! Where a document lives on the ring. Nodes place keys with it and clients route with it,
//! so both must compute the same token for every key: it is written here once.

use std::io::Read;

/// A position on the ring: keys and virtual nodes share this space, and the cluster's
/// `Ring` RPC reports tokens in it.
pub type Token = i64;

/// The ring position of a document: the low 64 bits (Cassandra's `h1`) of MurmurHash3
/// x64_128, seed 0, of `collection \0 key`, read as a signed i64.
pub fn token_for(collection: &str, key: &str) -> Token {
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

    /// Fixed key → token pairs: tokens already placed on disk and in rings depend on them,
    /// so they must never change.
    const VECTORS: [(&str, &str, i64); 5] = [
        ("users", "alice", -3033734117929159040),
        ("usertable", "user0000000042", -7660759409904080294),
        ("c", "", -7085071147438720114),
        ("", "k", -1524241173621435117),
        ("docs", "ключ-🔑", 1027564018599829204),
    ];

    #[test]
    fn tokens_never_change() {
        for (c, k, want) in VECTORS {
            assert_eq!(token_for(c, k), want, "token of {c:?}/{k:?}");
        }
    }

    #[test]
    fn token_is_cassandra_h1_of_collection_nul_key() {
        let mut direct = &b"users\0alice"[..];
        let h = murmur3::murmur3_x64_128(&mut direct, 0).unwrap();
        assert_eq!(token_for("users", "alice"), (h as u64) as i64);
    }

    #[test]
    fn the_separator_keeps_collection_and_key_apart() {
        assert_ne!(token_for("users", "alice"), token_for("user", "salice"));
    }
}
