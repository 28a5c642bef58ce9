//! The node's security below the services: TLS material (`tls`), how the internode
//! service tells nodes from everyone else (a certificate from the cluster CA under TLS, a
//! shared cluster secret without it), and the hash tokens are kept as. Client tokens are
//! checked in `api::auth`.
//!
//! Invariant kept here: a client token, whatever its role, never opens the internode
//! service: bearer tokens are not looked at there.

pub mod tls;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Metadata key nodes send their cluster secret under (without TLS).
pub const CLUSTER_SECRET_HEADER: &str = "ringdb-cluster-secret";

/// SHA-256 of a whole token (or secret) string: the only form in which tokens are kept.
pub fn hash(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

/// How the internode service tells nodes from everyone else.
#[derive(Clone)]
pub enum NodeGuard {
    /// Anyone may call it (no TLS, no auth, no cluster secret).
    Open,
    /// Only connections that presented a certificate from the cluster CA.
    Certificate,
    /// Only requests carrying the cluster secret (its hash is kept).
    Secret([u8; 32]),
    /// Moving to TLS: TLS connections need a node certificate, plaintext ones what they
    /// needed before (the cluster secret, if there is one).
    Transitional(Option<[u8; 32]>),
}

fn by_certificate(req: Request<()>) -> Result<Request<()>, Status> {
    match req.extensions().get::<tls::PeerInfo>() {
        Some(tls::PeerInfo { certs: Some(c), .. }) if !c.is_empty() => Ok(req),
        _ => Err(Status::permission_denied(
            "the internode service answers only nodes: present a node certificate from the \
             cluster CA",
        )),
    }
}

fn by_secret(req: Request<()>, expected: &[u8; 32]) -> Result<Request<()>, Status> {
    let given = req
        .metadata()
        .get(CLUSTER_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(hash);
    if given.as_ref() == Some(expected) {
        Ok(req)
    } else {
        Err(Status::permission_denied(
            "the internode service answers only nodes: a node proves it with the cluster \
             secret, never with a client token",
        ))
    }
}

impl Interceptor for NodeGuard {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        match self {
            NodeGuard::Open => Ok(req),
            NodeGuard::Certificate => by_certificate(req),
            NodeGuard::Secret(expected) => by_secret(req, expected),
            NodeGuard::Transitional(secret) => {
                let plaintext = req
                    .extensions()
                    .get::<tls::PeerInfo>()
                    .is_some_and(|p| !p.tls);
                match (plaintext, secret) {
                    (false, _) => by_certificate(req),
                    (true, Some(expected)) => by_secret(req, expected),
                    (true, None) => Ok(req),
                }
            }
        }
    }
}

/// What a node adds to its own internode requests: the cluster secret, when there is one.
#[derive(Clone, Default)]
pub struct NodeCredential(Option<MetadataValue<tonic::metadata::Ascii>>);

impl NodeCredential {
    /// Send `secret` (none: send nothing).
    pub fn new(secret: Option<&str>) -> Result<NodeCredential, String> {
        match secret {
            None => Ok(NodeCredential(None)),
            Some(s) => MetadataValue::try_from(s)
                .map(|v| NodeCredential(Some(v)))
                .map_err(|_| "the cluster secret must be printable ASCII".to_string()),
        }
    }
}

impl Interceptor for NodeCredential {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(CLUSTER_SECRET_HEADER, v.clone());
        }
        Ok(req)
    }
}

/// The channel internode stubs use: the peer connection plus this node's credential.
pub type PeerChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, NodeCredential>;

/// The cluster secret a node without a `--cluster-secret-file` derives from the bootstrap
/// token: whoever holds that token can act as a node (documented in docs/security.md).
pub fn derived_secret(bootstrap: &str) -> String {
    let h = hash(&format!("ringdb cluster secret\0{bootstrap}"));
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The security settings of a node.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// TLS on the port (and mutual TLS between nodes).
    pub tls: Option<tls::TlsFiles>,
    /// The bootstrap admin token; `Some` turns authentication on.
    pub bootstrap_token: Option<String>,
    /// The secret nodes prove membership with when there is no TLS.
    pub cluster_secret: Option<String>,
    /// Moving a running cluster to TLS by rolling restarts (docs/security.md).
    pub transition: Transition,
}

/// The steps of turning TLS on in a running cluster, one rolling restart each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transition {
    /// Finished (or never started): TLS only, when TLS is configured.
    #[default]
    None,
    /// Step 1: serve TLS and plaintext on the port, dial peers in plaintext (some of them
    /// do not serve TLS yet).
    DialPlaintext,
    /// Step 2: serve both, dial peers over TLS (every node serves TLS by now).
    DialTls,
}
