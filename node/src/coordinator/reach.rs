//! How a coordinator reaches a key's replicas: its own storage without the network, the
//! others through the transport, each remote call bounded by the request's deadline; a
//! remote write that fails becomes a hint for that replica.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use ringdb_proto::v1::ReplicaWriteRequest;
use tokio::time::Instant;

use super::hints::Hints;
use super::proto_durability;
use crate::cluster::Membership;
use crate::storage::{Durability, Storage};
use crate::transport::{Transport, TransportError};
use crate::version::SiblingSet;

/// How this node reaches a key's replicas, itself included without the network; shared
/// with background tasks (read repair) that outlive a request.
pub(super) struct Reach {
    pub(super) membership: Arc<Membership>,
    pub(super) storage: Storage,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) hints: Arc<Hints>,
}

impl Reach {
    /// Read a replica's set; a remote call gives up at `give_up`.
    pub(super) fn read(
        &self,
        node: &str,
        collection: &str,
        key: &str,
        give_up: Instant,
    ) -> BoxFuture<'static, Result<SiblingSet, Missed>> {
        let (collection, key) = (collection.to_string(), key.to_string());
        if node == self.membership.node_id() {
            let storage = self.storage.clone();
            return async move {
                storage
                    .read(&collection, &key)
                    .await
                    .map_err(Missed::unhinted)
            }
            .boxed();
        }
        let transport = self.transport.clone();
        let addr = self.membership.address(node);
        async move {
            let addr = addr.ok_or_else(|| Missed::unhinted("address unknown"))?;
            let raw =
                tokio::time::timeout_at(give_up, transport.replica_read(&addr, &collection, &key))
                    .await
                    .map_err(|_| Missed::no_answer())?
                    .map_err(Missed::from_transport)?;
            SiblingSet::decode(&raw).map_err(Missed::unhinted)
        }
        .boxed()
    }

    /// Merge a set into a replica. A remote write that fails or gets no answer by `give_up`
    /// is kept as a hint for that replica, and the failure says whether the hint was stored.
    pub(super) fn write(
        &self,
        node: &str,
        collection: &str,
        key: &str,
        encoded: Bytes,
        durability: Durability,
        give_up: Instant,
    ) -> BoxFuture<'static, Result<(), Missed>> {
        let req = ReplicaWriteRequest {
            collection: collection.to_string(),
            key: key.to_string(),
            siblings: encoded,
            durability: proto_durability(durability) as i32,
        };
        if node == self.membership.node_id() {
            let storage = self.storage.clone();
            return async move {
                let set = SiblingSet::decode(&req.siblings).map_err(Missed::unhinted)?;
                storage
                    .merge(&req.collection, &req.key, set, durability)
                    .await
                    .map_err(Missed::unhinted)
            }
            .boxed();
        }
        let transport = self.transport.clone();
        let addr = self.membership.address(node);
        let hints = self.hints.clone();
        let target = node.to_string();
        async move {
            let (collection, key, siblings) = (
                req.collection.clone(),
                req.key.clone(),
                req.siblings.clone(),
            );
            let result = match addr {
                None => Err(Missed::unhinted("address unknown")),
                Some(addr) => {
                    match tokio::time::timeout_at(give_up, transport.replica_write(&addr, req))
                        .await
                    {
                        Ok(r) => r.map_err(Missed::from_transport),
                        Err(_) => Err(Missed::no_answer()),
                    }
                }
            };
            match result {
                Ok(()) => Ok(()),
                Err(missed) => Err(Missed {
                    hinted: hints.store(&target, &collection, &key, siblings).await,
                    ..missed
                }),
            }
        }
        .boxed()
    }
}

/// Why a replica did not answer a read or take a write, whether it simply did not answer
/// in time (traces tell timeouts from failures), and whether it will get a missed write
/// later from a hint.
#[derive(Debug, Clone)]
pub(super) struct Missed {
    /// What went wrong, for error messages.
    pub(super) reason: String,
    /// Whether a hint for the replica was stored.
    pub(super) hinted: bool,
    /// Whether the replica gave no answer before the request's deadline.
    pub(super) timed_out: bool,
}

impl Missed {
    pub(super) fn unhinted(e: impl std::fmt::Display) -> Missed {
        Missed {
            reason: e.to_string(),
            hinted: false,
            timed_out: false,
        }
    }

    fn no_answer() -> Missed {
        Missed {
            reason: "no answer in time".to_string(),
            hinted: false,
            timed_out: true,
        }
    }

    fn from_transport(e: TransportError) -> Missed {
        Missed {
            timed_out: matches!(e, TransportError::Timeout),
            ..Missed::unhinted(e)
        }
    }
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}
