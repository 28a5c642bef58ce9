//! Client tokens: who sent a request and what it may do, checked against the gossiped
//! token records and the bootstrap token.
//!
//! Invariant kept here: checking a request costs one SHA-256 of its token and one map
//! lookup; a pipeline stream hashes its token once when it opens, and each of its
//! operations costs one map lookup (so revocation reaches open streams too).

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::cluster::tokens::{Grant, Role};
use crate::cluster::Membership;
use crate::security::hash;

/// Who sent a request, as far as grants go.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off: everything is allowed.
    Anyone,
    /// A valid token and what it grants.
    Token(Arc<Grant>),
}

fn denied(grant: &Grant, what: &str) -> Status {
    Status::permission_denied(format!(
        "token {:?} ({}{}) may not {what}",
        grant.name,
        grant.role.as_str(),
        if grant.collections.is_empty() || grant.role == Role::Admin {
            String::new()
        } else {
            format!(" on {}", grant.collections.join(", "))
        }
    ))
}

impl Principal {
    /// Reads of `collection`: gets, queries, traces of them.
    pub fn may_read(&self, collection: &str) -> Result<(), Status> {
        match self {
            Principal::Token(g) if !g.covers(collection) => {
                Err(denied(g, &format!("read collection {collection:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Puts and deletes in `collection`.
    pub fn may_write(&self, collection: &str) -> Result<(), Status> {
        match self {
            Principal::Token(g) if g.role < Role::ReadWrite || !g.covers(collection) => {
                Err(denied(g, &format!("write to collection {collection:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Admin operations: collections, indexes, tokens, topology, repair, local reads.
    pub fn may_admin(&self, what: &str) -> Result<(), Status> {
        match self {
            Principal::Token(g) if g.role < Role::Admin => Err(denied(g, what)),
            _ => Ok(()),
        }
    }
}

/// Checks client tokens.
pub struct Auth {
    enabled: bool,
    bootstrap: Option<([u8; 32], Arc<Grant>)>,
    membership: Arc<Membership>,
}

impl Auth {
    /// Authentication off: every request is [`Principal::Anyone`].
    pub fn off(membership: Arc<Membership>) -> Auth {
        Auth {
            enabled: false,
            bootstrap: None,
            membership,
        }
    }

    /// Authentication on: tokens from gossip, and `bootstrap` as an admin token.
    pub fn on(membership: Arc<Membership>, bootstrap: &str) -> Auth {
        let grant = Arc::new(Grant {
            name: "bootstrap".into(),
            role: Role::Admin,
            collections: Vec::new(),
        });
        Auth {
            enabled: true,
            bootstrap: Some((hash(bootstrap), grant)),
            membership,
        }
    }

    /// Whether requests need a token.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Who sent a request with this metadata; `UNAUTHENTICATED` without a valid token.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        if !self.enabled {
            return Ok(Principal::Anyone);
        }
        self.by_hash(&hash(bearer(metadata)?))
    }

    /// Check a pipeline's token when the stream opens.
    pub fn open_stream(&self, metadata: &MetadataMap) -> Result<StreamCredential, Status> {
        if !self.enabled {
            return Ok(StreamCredential(None));
        }
        let h = hash(bearer(metadata)?);
        self.by_hash(&h)?;
        Ok(StreamCredential(Some(h)))
    }

    /// Who a pipeline's operation runs as now: one map lookup, so a token revoked while
    /// its stream is open is refused from then on.
    pub fn current(&self, credential: &StreamCredential) -> Result<Principal, Status> {
        match &credential.0 {
            None => Ok(Principal::Anyone),
            Some(h) => self.by_hash(h),
        }
    }

    fn by_hash(&self, hash: &[u8; 32]) -> Result<Principal, Status> {
        if let Some((h, g)) = &self.bootstrap {
            if h == hash {
                return Ok(Principal::Token(g.clone()));
            }
        }
        match self.membership.schema().tokens().lookup(hash) {
            Some(g) => Ok(Principal::Token(g)),
            None => Err(Status::unauthenticated("unknown or revoked token")),
        }
    }
}

/// A pipeline's token, hashed once when the stream opened.
#[derive(Debug, Clone)]
pub struct StreamCredential(Option<[u8; 32]>);

/// The token of `authorization: Bearer <token>` metadata.
fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let missing = || {
        Status::unauthenticated(
            "this node requires a token: send `authorization: Bearer <token>` metadata \
             (ringsh/ringdb: --token or RINGDB_TOKEN)",
        )
    };
    let value = metadata.get("authorization").ok_or_else(missing)?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Status::unauthenticated("authorization metadata must be `Bearer <token>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Status::unauthenticated(
            "authorization metadata must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}
