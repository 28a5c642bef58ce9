//! Access-token records, spread by gossip with the collection and index definitions so
//! every node can check every token on its own (no login fails because one node is down).
//!
//! Invariants kept here:
//! - only a SHA-256 hash of a token's secret is ever stored or sent;
//! - of two records of one name the later change wins (then the larger node id, then the
//!   revoked one), so every node converges whatever order gossip delivers them in;
//! - a revoked token stays as a tombstone: an old copy of its live record cannot revive it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use ringdb_proto::v1::TokenDef;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Gets, queries, status.
    Read,
    /// Reads, puts and deletes.
    ReadWrite,
    /// Everything, every collection, admin operations included.
    Admin,
}

impl Role {
    /// Parse a role as the wire and the command line spell it.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "readwrite" => Some(Role::ReadWrite),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::ReadWrite => "readwrite",
            Role::Admin => "admin",
        }
    }
}

/// What one token grants, as checked on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's name (for messages).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Collections it is limited to; empty: all.
    pub collections: Vec<String>,
}

impl Grant {
    /// Whether the grant covers `collection` (admins cover every collection).
    pub fn covers(&self, collection: &str) -> bool {
        self.role == Role::Admin
            || self.collections.is_empty()
            || self.collections.iter().any(|c| c == collection)
    }
}

fn newer(a: &TokenDef, b: &TokenDef) -> bool {
    (a.changed_ms, &a.changed_by, a.revoked) > (b.changed_ms, &b.changed_by, b.revoked)
}

#[derive(Default)]
struct Table {
    by_name: BTreeMap<String, TokenDef>,
    by_hash: HashMap<[u8; 32], Arc<Grant>>,
}

impl Table {
    fn reindex(&mut self) {
        self.by_hash = self
            .by_name
            .values()
            .filter(|d| !d.revoked)
            .filter_map(|d| {
                let hash: [u8; 32] = d.secret_hash.as_ref().try_into().ok()?;
                let role = Role::parse(&d.role)?;
                Some((
                    hash,
                    Arc::new(Grant {
                        name: d.name.clone(),
                        role,
                        collections: d.collections.clone(),
                    }),
                ))
            })
            .collect();
    }
}

/// The token records this node knows.
#[derive(Default)]
pub struct TokenDefs {
    table: RwLock<Table>,
}

/// Why a token record cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    /// A live token of that name exists.
    #[error("a token named {0:?} exists already; revoke it first")]
    Exists(String),
    /// No live token of that name.
    #[error("no token named {0:?}")]
    Missing(String),
}

impl TokenDefs {
    /// The grant of the token whose hash is `hash`, if it is live: one map lookup.
    pub fn lookup(&self, hash: &[u8; 32]) -> Option<Arc<Grant>> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_hash
            .get(hash)
            .cloned()
    }

    /// Add a new live token record; refused if a live one has that name.
    pub fn create(&self, def: TokenDef) -> Result<TokenDef, TokenError> {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let mut def = def;
        if let Some(old) = t.by_name.get(&def.name) {
            if !old.revoked {
                return Err(TokenError::Exists(def.name));
            }
            // Newer than the tombstone even if this node's clock is behind its writer's.
            def.changed_ms = def.changed_ms.max(old.changed_ms + 1);
        }
        t.by_name.insert(def.name.clone(), def.clone());
        t.reindex();
        Ok(def)
    }

    /// Replace a live record by its tombstone.
    pub fn revoke(&self, name: &str, by: &str, now_ms: u64) -> Result<(), TokenError> {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let old = match t.by_name.get(name) {
            Some(d) if !d.revoked => d.clone(),
            _ => return Err(TokenError::Missing(name.to_string())),
        };
        let tomb = TokenDef {
            name: old.name.clone(),
            secret_hash: Default::default(),
            role: old.role.clone(),
            collections: Vec::new(),
            changed_ms: now_ms.max(old.changed_ms + 1),
            changed_by: by.to_string(),
            revoked: true,
        };
        t.by_name.insert(tomb.name.clone(), tomb);
        t.reindex();
        Ok(())
    }

    /// Every record, tombstones included (what gossip and persistence carry).
    pub fn all(&self) -> Vec<TokenDef> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .values()
            .cloned()
            .collect()
    }

    /// The live records.
    pub fn live(&self) -> Vec<TokenDef> {
        self.all().into_iter().filter(|d| !d.revoked).collect()
    }

    /// Fold in a peer's records; returns whether anything changed.
    pub fn merge(&self, incoming: &[TokenDef]) -> bool {
        if incoming.is_empty() {
            return false;
        }
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for d in incoming {
            if d.name.is_empty() {
                continue;
            }
            match t.by_name.get(&d.name) {
                Some(mine) if !newer(d, mine) => {}
                _ => {
                    t.by_name.insert(d.name.clone(), d.clone());
                    changed = true;
                }
            }
        }
        if changed {
            t.reindex();
        }
        changed
    }

    /// Feed the records into a schema digest.
    pub fn digest_into(&self, eat: &mut impl FnMut(&[u8])) {
        for d in self
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .values()
        {
            eat(d.name.as_bytes());
            eat(&[0]);
            eat(&d.secret_hash);
            eat(d.role.as_bytes());
            eat(&[0]);
            for c in &d.collections {
                eat(c.as_bytes());
                eat(&[0]);
            }
            eat(&d.changed_ms.to_be_bytes());
            eat(d.changed_by.as_bytes());
            eat(&[0, u8::from(d.revoked)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::hash;

    fn def(name: &str, token: &str, ms: u64, by: &str) -> TokenDef {
        TokenDef {
            name: name.into(),
            secret_hash: hash(token).to_vec().into(),
            role: "read".into(),
            collections: vec!["a".into()],
            changed_ms: ms,
            changed_by: by.into(),
            revoked: false,
        }
    }

    #[test]
    fn revocation_wins_everywhere_and_old_records_do_not_revive() {
        let a = TokenDefs::default();
        let b = TokenDefs::default();
        a.create(def("t", "secret", 10, "n1")).unwrap();
        assert!(b.merge(&a.all()));
        assert!(b.lookup(&hash("secret")).is_some());
        a.revoke("t", "n1", 5).unwrap(); // clock behind: still newer than the record
        assert!(a.lookup(&hash("secret")).is_none());
        assert!(b.merge(&a.all()));
        assert!(b.lookup(&hash("secret")).is_none());
        // The old live record arriving late changes nothing.
        assert!(!b.merge(&[def("t", "secret", 10, "n1")]));
        assert!(b.lookup(&hash("secret")).is_none());
        // A new token of that name after the revocation works.
        b.create(def("t", "other", 1, "n2")).unwrap();
        assert!(a.merge(&b.all()));
        assert_eq!(a.lookup(&hash("other")).unwrap().name, "t");
        assert!(matches!(
            a.create(def("t", "x", 99, "n1")),
            Err(TokenError::Exists(_))
        ));
    }

    #[test]
    fn grants_cover_their_collections() {
        let g = Grant {
            name: "t".into(),
            role: Role::Read,
            collections: vec!["a".into()],
        };
        assert!(g.covers("a") && !g.covers("b"));
        let admin = Grant {
            role: Role::Admin,
            ..g
        };
        assert!(admin.covers("b"));
    }
}
