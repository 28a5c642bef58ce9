//! Visiting one collection's stored documents in a token range, for queries that scan:
//! each call reads a bounded chunk on a storage thread and hands every document of the
//! collection to a visitor there, so decoding and filtering stay off the async threads and
//! the operations queued behind a chunk run before the next one.

use bytes::Bytes;
use ringdb_core::ring::Token;

use crate::keys::{parse_entry, token_prefix};
use crate::{Storage, StorageError};

/// What sees each document of a chunked visit, on the storage thread; it is handed back
/// after each chunk with whatever it gathered.
pub trait Visitor: Send + 'static {
    /// One stored document: its key and its encoded sibling set as stored.
    fn visit(&mut self, key: &str, siblings: Bytes);
}

/// Where a chunked visit goes on: the engine key to resume after, or done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visited {
    /// More entries may follow this engine key.
    More(Vec<u8>),
    /// The range is done.
    Done,
}

impl Storage {
    /// On a storage thread, read at most `rows` engine entries (of any collection) whose
    /// tokens lie in `[first, last]` (no wrap-around), in token order, strictly after
    /// engine key `after` when given, and show each of them that belongs to `collection`
    /// to `visitor`. Returns the visitor, with whatever it gathered, and where the range
    /// goes on.
    pub async fn visit_collection<V: Visitor>(
        &self,
        collection: &str,
        (first, last): (Token, Token),
        after: Option<Vec<u8>>,
        rows: usize,
        mut visitor: V,
    ) -> Result<(V, Visited), StorageError> {
        let from = match after {
            Some(mut a) => {
                a.push(0);
                a
            }
            None => token_prefix(first).to_vec(),
        };
        let mut to = token_prefix(last).to_vec();
        to.extend_from_slice(&[0xff; 8]);
        let collection = collection.to_string();
        let rows = rows.max(1);
        self.run(move |e| {
            let pairs = e.scan_data(&from, &to, rows)?;
            let full = pairs.len() == rows;
            let mut last_key = None;
            for (k, v) in pairs {
                if full {
                    last_key = Some(k.clone());
                }
                if let Some(entry) = parse_entry(k, v) {
                    if entry.collection == collection {
                        visitor.visit(&entry.key, entry.siblings);
                    }
                }
            }
            let next = match last_key {
                Some(k) => Visited::More(k),
                None => Visited::Done,
            };
            Ok((visitor, next))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Durability, MemEngine, Mint, PoolConfig};
    use ringdb_core::ring::token_for;
    use ringdb_core::version::CausalContext;

    /// Collects the keys it is shown.
    struct Keys(Vec<String>);

    impl Visitor for Keys {
        fn visit(&mut self, key: &str, siblings: Bytes) {
            assert!(!siblings.is_empty());
            self.0.push(key.to_string());
        }
    }

    #[tokio::test]
    async fn a_chunked_visit_sees_each_document_of_the_collection_in_range_once() {
        let s = Storage::start(Arc::new(MemEngine::default()), PoolConfig::default()).unwrap();
        for c in ["c", "other"] {
            for i in 0..100 {
                let mint = Mint {
                    actor: "n1.1".into(),
                    context: CausalContext::new(),
                    value: Some(Bytes::from(format!("{{\"i\":{i}}}"))),
                    timestamp_ms: 1,
                    expires_ms: None,
                };
                s.mint(c, &format!("k{i}"), mint, Durability::Memory)
                    .await
                    .unwrap();
            }
        }
        // The upper half of the token space, 7 entries (of both collections) at a time.
        let range = (0, Token::MAX);
        let (mut keys, mut after, mut chunks) = (Keys(Vec::new()), None, 0);
        loop {
            let (k, next) = s
                .visit_collection("c", range, after, 7, keys)
                .await
                .unwrap();
            keys = k;
            chunks += 1;
            match next {
                Visited::More(at) => after = Some(at),
                Visited::Done => break,
            }
        }
        let mut expected: Vec<String> = (0..100)
            .map(|i| format!("k{i}"))
            .filter(|k| token_for("c", k) >= 0)
            .collect();
        expected.sort_by_key(|k| token_for("c", k));
        assert!(!expected.is_empty());
        assert_eq!(
            keys.0, expected,
            "in token order, each once, only collection c"
        );
        assert!(chunks > expected.len() / 7, "{chunks} chunks");
    }
}
