//! `FIELDS a, b.c`: returning only some paths of each document (each sibling).
//!
//! # Semantics
//!
//! The projection of a document keeps, for every listed path, what the path yields, inside
//! the same nesting as in the document, and nothing else:
//! - a path's final step keeps the value it reaches whole (`a` keeps all of `a`, even an
//!   object, an array or `null`);
//! - a field step keeps, inside an object, only the fields some listed path continues
//!   through, in the document's field order;
//! - a `[]` step keeps, inside an array, the projection of each element that keeps
//!   something, in order; elements that keep nothing are left out (so positions may shift:
//!   `items[].sku` over `[{"sku": 1}, {"qty": 2}, {"sku": 3}]` gives
//!   `{"items": [{"sku": 1}, {"sku": 3}]}`). Several `[]` paths through one array are
//!   combined element by element (`items[].sku, items[].qty`).
//! - an object or array that would keep nothing is left out, as is a path that yields
//!   nothing; the projection of a document is always an object, possibly `{}`.
//!
//! Invariant (tested): for every listed path `p`, `p.values(project(doc)) ==
//! p.values(doc)`. Listing no paths keeps the whole document (a query without `FIELDS`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::{Path, Step};

/// What to keep of documents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    /// `None`: keep everything.
    root: Option<Node>,
}

/// What to keep of one value: all of it, or parts of it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    whole: bool,
    fields: BTreeMap<String, Node>,
    each: Option<Box<Node>>,
}

impl Node {
    fn insert(&mut self, steps: &[Step]) {
        let Some((first, rest)) = steps.split_first() else {
            self.whole = true;
            return;
        };
        let child = match first {
            Step::Field(name) => self.fields.entry(name.clone()).or_default(),
            Step::Each => self.each.get_or_insert_with(Box::default),
        };
        child.insert(rest);
    }

    fn apply(&self, v: &Value) -> Option<Value> {
        if self.whole {
            return Some(v.clone());
        }
        match v {
            Value::Object(m) if !self.fields.is_empty() => {
                let kept: Map<String, Value> = m
                    .iter()
                    .filter_map(|(k, child)| {
                        let node = self.fields.get(k)?;
                        Some((k.clone(), node.apply(child)?))
                    })
                    .collect();
                (!kept.is_empty()).then_some(Value::Object(kept))
            }
            Value::Array(items) => {
                let node = self.each.as_ref()?;
                let kept: Vec<Value> = items.iter().filter_map(|item| node.apply(item)).collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            _ => None,
        }
    }
}

impl Projection {
    /// A projection keeping `paths` (none: the whole document).
    pub fn new(paths: &[Path]) -> Projection {
        if paths.is_empty() {
            return Projection { root: None };
        }
        let mut root = Node::default();
        for p in paths {
            root.insert(p.steps());
        }
        Projection { root: Some(root) }
    }

    /// Whether the projection keeps whole documents.
    pub fn is_whole(&self) -> bool {
        self.root.is_none()
    }

    /// The projection of one document (one sibling).
    pub fn apply(&self, doc: &Value) -> Value {
        match &self.root {
            None => doc.clone(),
            Some(root) => root.apply(doc).unwrap_or_else(|| Value::Object(Map::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::{arb_doc, PATHS};
    use crate::path::tests::arb_path;
    use proptest::prelude::*;
    use serde_json::json;

    fn project(paths: &[&str], doc: &Value) -> Value {
        let paths: Vec<Path> = paths.iter().map(|p| Path::parse(p).unwrap()).collect();
        Projection::new(&paths).apply(doc)
    }

    #[test]
    fn keeps_listed_paths_in_their_nesting() {
        let doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": null, "f": {"g": {}}});
        assert_eq!(project(&["a", "b.c"], &doc), json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(project(&["b", "b.c"], &doc), json!({"b": {"c": 2, "d": 3}}));
        assert_eq!(
            project(&["e", "f.g"], &doc),
            json!({"e": null, "f": {"g": {}}})
        );
        assert_eq!(project(&["missing", "a.x", "b.c.x"], &doc), json!({}));
        assert_eq!(project(&[], &doc), doc);
        assert!(Projection::new(&[]).is_whole());
    }

    #[test]
    fn arrays_keep_the_elements_that_keep_something() {
        let doc = json!({
            "items": [{"sku": 1, "qty": 5, "x": 0}, {"qty": 2}, {"x": 9}, {"sku": 3}, 7],
            "tags": ["a", "b"],
            "empty": [],
        });
        assert_eq!(
            project(&["items[].sku"], &doc),
            json!({"items": [{"sku": 1}, {"sku": 3}]})
        );
        assert_eq!(
            project(&["items[].sku", "items[].qty"], &doc),
            json!({"items": [{"sku": 1, "qty": 5}, {"qty": 2}, {"sku": 3}]})
        );
        assert_eq!(project(&["tags[]"], &doc), json!({"tags": ["a", "b"]}));
        assert_eq!(project(&["tags"], &doc), json!({"tags": ["a", "b"]}));
        assert_eq!(project(&["empty[]"], &doc), json!({}));
        assert_eq!(project(&["empty"], &doc), json!({"empty": []}));
        assert_eq!(
            project(&["items.sku"], &doc),
            json!({}),
            "no implicit descent"
        );
        assert_eq!(
            project(&["items[]", "items[].sku"], &doc),
            json!({"items": doc["items"].clone()})
        );
    }

    #[test]
    fn document_field_order_is_kept() {
        let doc: Value = serde_json::from_str(r#"{"z": 1, "a": 2, "m": 3}"#).unwrap();
        let kept = project(&["a", "z"], &doc);
        assert_eq!(kept, json!({"z": 1, "a": 2}));
        // Whatever order the map keeps (sorted, or insertion with `preserve_order`), the
        // projection keeps the document's.
        let want: Vec<&String> = doc
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "m")
            .collect();
        assert_eq!(kept.as_object().unwrap().keys().collect::<Vec<_>>(), want);
    }

    proptest! {
        #[test]
        fn listed_paths_yield_the_same_values(
            doc in arb_doc(),
            fixed in proptest::collection::vec(proptest::sample::select(&PATHS[..]), 1..4),
            random in proptest::collection::vec(arb_path(), 0..2),
        ) {
            let mut paths: Vec<Path> = fixed.iter().map(|p| Path::parse(p).unwrap()).collect();
            paths.extend(random);
            let projection = Projection::new(&paths);
            let kept = projection.apply(&doc);
            prop_assert!(kept.is_object());
            for p in &paths {
                prop_assert_eq!(p.values(&kept), p.values(&doc), "{}", p);
            }
            prop_assert_eq!(projection.apply(&kept), kept.clone(), "idempotent");
        }
    }
}
