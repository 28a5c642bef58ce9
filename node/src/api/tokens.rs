//! The admin service's token operations: create (the only time a secret is shown), list,
//! revoke. Every change is told to the live peers at once, so a revocation reaches every
//! node well within the 5 s the docs promise; gossip carries it to the rest.

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use ringdb_proto::v1::{
    CreateTokenRequest, CreateTokenResponse, ListTokensResponse, RevokeTokenRequest, TokenDef,
    TokenInfo,
};
use tonic::Status;

use crate::cluster::gossip;
use crate::cluster::tokens::{Role, TokenError};
use crate::cluster::Membership;
use crate::coordinator::validate;
use crate::coordinator::Coordinator;
use crate::security::hash;

/// Longest token name.
pub const MAX_TOKEN_NAME: usize = 64;

/// Most collections one token may be limited to.
pub const MAX_TOKEN_COLLECTIONS: usize = 100;

fn info(d: &TokenDef) -> TokenInfo {
    TokenInfo {
        name: d.name.clone(),
        role: d.role.clone(),
        collections: d.collections.clone(),
        created_ms: d.changed_ms,
        created_by: d.changed_by.clone(),
    }
}

fn valid_name(name: &str) -> Result<(), Status> {
    if name.is_empty()
        || name.len() > MAX_TOKEN_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Status::invalid_argument(format!(
            "token name {name:?} must be 1-{MAX_TOKEN_NAME} of letters, digits, '_', '-', '.'"
        )));
    }
    Ok(())
}

/// A fresh token: `rdb_` and 32 random bytes, base64url.
fn mint() -> String {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    format!(
        "rdb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    )
}

/// Persist and tell the live peers now.
async fn spread(coordinator: &Coordinator, membership: &Membership) {
    membership.note_change();
    gossip::persist(membership, coordinator.storage()).await;
    let transport = coordinator.transport();
    gossip::round_with_all(membership, transport.as_ref(), Duration::from_secs(2)).await;
}

/// `CreateToken`.
pub(super) async fn create(
    coordinator: &Coordinator,
    membership: &Membership,
    r: CreateTokenRequest,
) -> Result<CreateTokenResponse, Status> {
    valid_name(&r.name)?;
    let role = Role::parse(&r.role).ok_or_else(|| {
        Status::invalid_argument(format!(
            "role {:?} is not one of read, readwrite, admin",
            r.role
        ))
    })?;
    if role == Role::Admin && !r.collections.is_empty() {
        return Err(Status::invalid_argument(
            "an admin token covers every collection; collections apply to read and readwrite tokens",
        ));
    }
    if r.collections.len() > MAX_TOKEN_COLLECTIONS {
        return Err(Status::invalid_argument(format!(
            "a token may be limited to at most {MAX_TOKEN_COLLECTIONS} collections"
        )));
    }
    for c in &r.collections {
        validate::collection(c)?;
    }
    // Learn what the live peers know first, so a name taken through another node is seen.
    let transport = coordinator.transport();
    gossip::round_with_all(membership, transport.as_ref(), Duration::from_secs(2)).await;
    let token = mint();
    let def = membership
        .schema()
        .tokens()
        .create(TokenDef {
            name: r.name,
            secret_hash: hash(&token).to_vec().into(),
            role: role.as_str().to_string(),
            collections: r.collections,
            changed_ms: coordinator.clock().now_ms(),
            changed_by: membership.node_id().to_string(),
            revoked: false,
        })
        .map_err(|e| Status::already_exists(e.to_string()))?;
    spread(coordinator, membership).await;
    tracing::info!(name = %def.name, role = %def.role, "token created");
    Ok(CreateTokenResponse {
        token,
        info: Some(info(&def)),
    })
}

/// `ListTokens`.
pub(super) fn list(membership: &Membership) -> ListTokensResponse {
    ListTokensResponse {
        tokens: membership
            .schema()
            .tokens()
            .live()
            .iter()
            .map(info)
            .collect(),
    }
}

/// `RevokeToken`.
pub(super) async fn revoke(
    coordinator: &Coordinator,
    membership: &Membership,
    r: RevokeTokenRequest,
) -> Result<(), Status> {
    valid_name(&r.name)?;
    let transport = coordinator.transport();
    gossip::round_with_all(membership, transport.as_ref(), Duration::from_secs(2)).await;
    membership
        .schema()
        .tokens()
        .revoke(&r.name, membership.node_id(), coordinator.clock().now_ms())
        .map_err(|e| match e {
            TokenError::Missing(_) => Status::not_found(e.to_string()),
            TokenError::Exists(_) => Status::already_exists(e.to_string()),
        })?;
    spread(coordinator, membership).await;
    tracing::info!(name = %r.name, "token revoked");
    Ok(())
}
