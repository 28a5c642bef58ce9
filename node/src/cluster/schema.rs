//! Collection metadata: which collections exist and their replication factor N, and the
//! index definitions (`indexes.rs`), spread by gossip like member states.
//!
//! Invariants kept here:
//! - definitions only ever get added; of two definitions of one name the one created first
//!   (then by the smaller creator id) wins everywhere, so every node converges on the same
//!   options whatever order gossip delivers them in;
//! - a collection nobody defined replicates with the cluster default, exactly as it will
//!   once its first write defines it, so a key's replicas never depend on whether the
//!   definition has arrived yet unless it was created with other options.

use std::collections::BTreeMap;
use std::sync::RwLock;

use ringdb_proto::v1::CollectionDef;

use super::indexes::IndexDefs;
use super::tokens::TokenDefs;

/// Why a collection cannot be created.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// A collection of that name exists already.
    #[error("collection {name} already exists (replication = {replication})")]
    Exists {
        /// Its name.
        name: String,
        /// Its N.
        replication: u32,
    },
    /// Options out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The collections this node knows.
pub struct Schema {
    default_replication: u32,
    defs: RwLock<BTreeMap<String, CollectionDef>>,
    indexes: IndexDefs,
    tokens: TokenDefs,
}

/// Which collections one streaming pass covers: those with one replication factor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// Only these (when not empty).
    pub only: Vec<String>,
    /// None of these.
    pub except: Vec<String>,
}

impl Filter {
    /// Whether a collection falls under this filter.
    pub fn admits(&self, collection: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|c| c == collection))
            && !self.except.iter().any(|c| c == collection)
    }
}

fn earlier(a: &CollectionDef, b: &CollectionDef) -> bool {
    (a.created_ms, &a.created_by) < (b.created_ms, &b.created_by)
}

impl Schema {
    /// Largest N a collection may ask for.
    pub const MAX_REPLICATION: u32 = 15;

    /// A schema holding `known` (from the last run), creating unknown collections with N =
    /// `default_replication`.
    pub fn new(default_replication: u32, known: Vec<CollectionDef>) -> Self {
        let s = Schema {
            default_replication,
            defs: RwLock::new(BTreeMap::new()),
            indexes: IndexDefs::default(),
            tokens: TokenDefs::default(),
        };
        s.merge(&known);
        s
    }

    /// The index definitions.
    pub fn indexes(&self) -> &IndexDefs {
        &self.indexes
    }

    /// The access-token records.
    pub fn tokens(&self) -> &TokenDefs {
        &self.tokens
    }

    /// N of collections created by a first write.
    pub fn default_replication(&self) -> u32 {
        self.default_replication
    }

    /// N of a collection (the default when it is not defined yet).
    pub fn replication(&self, collection: &str) -> usize {
        self.defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .map(|d| d.replication)
            .unwrap_or(self.default_replication) as usize
    }

    /// The default TTL of a collection's documents in seconds (0: none).
    pub fn ttl_secs(&self, collection: &str) -> u64 {
        self.defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .map_or(0, |d| d.default_ttl_secs)
    }

    /// Define a collection with the default options if it is not defined; returns whether
    /// it was new (so the caller persists and gossip spreads it).
    pub fn ensure(&self, collection: &str, by: &str, now_ms: u64) -> bool {
        if self
            .defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(collection)
        {
            return false;
        }
        self.create(collection, 0, by, now_ms).is_ok()
    }

    /// Create a collection; `replication` 0 means the default.
    pub fn create(
        &self,
        name: &str,
        replication: u32,
        by: &str,
        now_ms: u64,
    ) -> Result<CollectionDef, SchemaError> {
        self.create_with_ttl(name, replication, 0, by, now_ms)
    }

    /// Create a collection whose documents expire `ttl_secs` after each write (0: never).
    pub fn create_with_ttl(
        &self,
        name: &str,
        replication: u32,
        ttl_secs: u64,
        by: &str,
        now_ms: u64,
    ) -> Result<CollectionDef, SchemaError> {
        let replication = if replication == 0 {
            self.default_replication
        } else {
            replication
        };
        if replication > Self::MAX_REPLICATION {
            return Err(SchemaError::Invalid(format!(
                "replication = {replication} is above the maximum of {}",
                Self::MAX_REPLICATION
            )));
        }
        let mut defs = self.defs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = defs.get(name) {
            return Err(SchemaError::Exists {
                name: name.to_string(),
                replication: d.replication,
            });
        }
        let def = CollectionDef {
            name: name.to_string(),
            replication,
            created_ms: now_ms,
            created_by: by.to_string(),
            default_ttl_secs: ttl_secs,
        };
        defs.insert(name.to_string(), def.clone());
        Ok(def)
    }

    /// A collection's definition.
    pub fn get(&self, name: &str) -> Option<CollectionDef> {
        self.defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every definition, by name.
    pub fn all(&self) -> Vec<CollectionDef> {
        self.defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Fold in definitions from a peer; returns whether anything changed.
    pub fn merge(&self, incoming: &[CollectionDef]) -> bool {
        let mut defs = self.defs.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for d in incoming {
            if d.name.is_empty() || d.replication == 0 {
                continue;
            }
            match defs.get(&d.name) {
                Some(mine) if !earlier(d, mine) => {}
                _ => {
                    defs.insert(d.name.clone(), d.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    /// Hash of the collection, index and token definitions: equal digests mean equal schemas
    /// (gossip skips sending them).
    pub fn digest(&self) -> u64 {
        // FNV-1a: stable across builds, so nodes of different versions still agree.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        };
        for d in self.defs.read().unwrap_or_else(|p| p.into_inner()).values() {
            eat(d.name.as_bytes());
            eat(&[0]);
            eat(&d.replication.to_be_bytes());
            eat(&d.created_ms.to_be_bytes());
            eat(d.created_by.as_bytes());
            eat(&[0]);
        }
        self.indexes.digest_into(&mut eat);
        self.tokens.digest_into(&mut eat);
        h
    }

    /// The collections grouped by N, each group as a filter: what one streaming pass with
    /// that N must cover. The default group admits every collection not listed elsewhere.
    pub fn groups(&self) -> Vec<(usize, Filter)> {
        let defs = self.defs.read().unwrap_or_else(|p| p.into_inner());
        let mut others: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for d in defs.values() {
            if d.replication != self.default_replication {
                others
                    .entry(d.replication)
                    .or_default()
                    .push(d.name.clone());
            }
        }
        let except: Vec<String> = others.values().flatten().cloned().collect();
        let mut out = vec![(
            self.default_replication as usize,
            Filter {
                only: Vec::new(),
                except,
            },
        )];
        out.extend(others.into_iter().map(|(n, only)| {
            (
                n as usize,
                Filter {
                    only,
                    except: Vec::new(),
                },
            )
        }));
        out
    }

    /// The largest N of any collection (or the default).
    pub fn max_replication(&self) -> usize {
        self.defs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|d| d.replication)
            .chain([self.default_replication])
            .max()
            .unwrap_or(self.default_replication) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_creations_converge_on_the_earliest() {
        let a = Schema::new(3, vec![]);
        let b = Schema::new(3, vec![]);
        a.create("users", 5, "n1", 100).unwrap();
        b.create("users", 2, "n2", 90).unwrap();
        assert!(a.merge(&b.all()));
        assert!(!b.merge(&a.all()));
        assert_eq!(a.replication("users"), 2);
        assert_eq!(b.replication("users"), 2);
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn undefined_collections_use_the_default_and_second_creation_is_refused() {
        let s = Schema::new(3, vec![]);
        assert_eq!(s.replication("x"), 3);
        assert!(s.ensure("x", "n1", 1));
        assert!(!s.ensure("x", "n1", 2));
        assert!(matches!(
            s.create("x", 1, "n1", 3),
            Err(SchemaError::Exists { replication: 3, .. })
        ));
        assert!(matches!(
            s.create("y", 99, "n1", 3),
            Err(SchemaError::Invalid(_))
        ));
    }

    #[test]
    fn groups_partition_the_collections_by_n() {
        let s = Schema::new(3, vec![]);
        s.create("one", 1, "n", 1).unwrap();
        s.create("five", 5, "n", 1).unwrap();
        s.create("def", 0, "n", 1).unwrap();
        let groups = s.groups();
        for c in ["one", "five", "def", "undefined"] {
            let admitted: Vec<usize> = groups
                .iter()
                .filter(|(_, f)| f.admits(c))
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(admitted, [s.replication(c)], "{c}");
        }
        assert_eq!(s.max_replication(), 5);
    }
}
