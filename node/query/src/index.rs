//! Index entries: what a replica stores for one document in one index, and what changes
//! when the document changes.
//!
//! An index on path `p` holds, for a document with key `k`, one entry key
//! `encode(v) ++ k` for each distinct value `v` (typed-order equality, so `1` and `1.0` are
//! one entry) that `p` yields in any **live** sibling. A tombstone or expired version
//! contributes nothing, so a document whose versions are all deleted has no entries. The
//! entry key alone carries the value and the key ([`crate::value::split_entry`]); the entry
//! needs no stored value. Storage writes [`changes`] on the key's storage thread right
//! after the document (two engine writes, not one transaction: see `ringdb-storage`'s
//! `indexes`), and after an unclean stop it checks the entries against the documents and
//! repairs those that disagree.

use serde_json::Value;

use crate::path::Path;
use crate::value;

/// The entry key of value `v` for document `key`.
pub fn entry_key(v: &Value, key: &str) -> Vec<u8> {
    let mut e = value::encode(v);
    e.extend_from_slice(key.as_bytes());
    e
}

/// The entry keys of a document in the index on `path`, given its live siblings: sorted,
/// without repeats.
pub fn entries(path: &Path, key: &str, live_siblings: &[Value]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = live_siblings
        .iter()
        .flat_map(|s| path.values(s))
        .map(|v| entry_key(v, key))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The entries to remove and to add when a document's live siblings change from `before`
/// to `after` (both as given by [`entries`]): `(remove, add)`, each sorted.
pub fn changes(before: &[Vec<u8>], after: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let remove = before
        .iter()
        .filter(|e| after.binary_search(e).is_err())
        .cloned()
        .collect();
    let add = after
        .iter()
        .filter(|e| before.binary_search(e).is_err())
        .cloned()
        .collect();
    (remove, add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::{arb_doc, PATHS};
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    #[test]
    fn one_entry_per_distinct_value_over_live_siblings() {
        let p = Path::parse("tags[]").unwrap();
        let siblings = [
            json!({"tags": [1, "a", 1.0]}),
            json!({"tags": ["a", null]}),
            json!({"x": 1}),
        ];
        let got = entries(&p, "k", &siblings);
        let want: Vec<Vec<u8>> = [json!(null), json!(1), json!("a")]
            .iter()
            .map(|v| entry_key(v, "k"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(value::split_entry(&got[2]).unwrap(), (json!("a"), "k"));
        assert!(entries(&p, "k", &[]).is_empty(), "deleted: no entries");
    }

    #[test]
    fn changes_remove_what_went_and_add_what_came() {
        let p = Path::parse("a").unwrap();
        let before = entries(&p, "k", &[json!({"a": 1}), json!({"a": 2})]);
        let after = entries(&p, "k", &[json!({"a": 2.0}), json!({"a": 3})]);
        let (remove, add) = changes(&before, &after);
        assert_eq!(remove, vec![entry_key(&json!(1), "k")]);
        assert_eq!(add, vec![entry_key(&json!(3), "k")]);
    }

    proptest! {
        #[test]
        fn applying_changes_gives_the_new_entries(
            p in proptest::sample::select(&PATHS[..]),
            before in proptest::collection::vec(arb_doc(), 0..3),
            after in proptest::collection::vec(arb_doc(), 0..3),
        ) {
            let p = Path::parse(p).unwrap();
            let (b, a) = (entries(&p, "key", &before), entries(&p, "key", &after));
            let (remove, add) = changes(&b, &a);
            let mut stored: BTreeSet<Vec<u8>> = b.iter().cloned().collect();
            for e in &remove {
                prop_assert!(stored.remove(e));
            }
            for e in &add {
                prop_assert!(stored.insert(e.clone()));
            }
            prop_assert_eq!(stored.into_iter().collect::<Vec<_>>(), a);
        }
    }
}
