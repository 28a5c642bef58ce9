//! The admin service: cluster status as this node sees it, the ring, local replicas.

use std::sync::Arc;

use ringdb_proto::v1::admin_server::Admin;
use ringdb_proto::v1::{
    LocalGetRequest, LocalGetResponse, LocalVersion, NodeStatus, RingRequest, RingResponse,
    RingToken, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::cluster::Membership;
use crate::coordinator::validate::{self, context_token};
use crate::coordinator::Coordinator;

/// Serves `ringdb.v1.Admin`.
pub struct AdminService {
    coordinator: Arc<Coordinator>,
    membership: Arc<Membership>,
}

impl AdminService {
    /// Serve operators on behalf of this node.
    pub fn new(coordinator: Arc<Coordinator>, membership: Arc<Membership>) -> Self {
        AdminService {
            coordinator,
            membership,
        }
    }

    fn nodes(&self) -> Vec<NodeStatus> {
        self.membership
            .members()
            .into_iter()
            .map(|m| NodeStatus {
                id: m.id,
                address: m.address,
                up: m.up,
                status: m.status,
                ownership: m.ownership,
                keys: m.keys,
                bytes: m.bytes,
                hints: m.hints,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let stats = self.coordinator.storage().stats();
        self.membership.set_own_load(
            stats.keys.load(std::sync::atomic::Ordering::Relaxed),
            stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        );
        Ok(Response::new(StatusResponse {
            node_id: self.membership.node_id().to_string(),
            replication_factor: self.coordinator.config().replication_factor as u32,
            nodes: self.nodes(),
        }))
    }

    async fn ring(&self, _: Request<RingRequest>) -> Result<Response<RingResponse>, Status> {
        let ring = self.membership.ring();
        Ok(Response::new(RingResponse {
            tokens: ring
                .tokens()
                .map(|(token, node)| RingToken {
                    token,
                    node_id: node.to_string(),
                })
                .collect(),
            replication_factor: self.coordinator.config().replication_factor as u32,
            nodes: self.nodes(),
        }))
    }

    async fn local_get(
        &self,
        req: Request<LocalGetRequest>,
    ) -> Result<Response<LocalGetResponse>, Status> {
        let r = req.into_inner();
        validate::collection(&r.collection)?;
        validate::key(&r.key)?;
        let set = self.coordinator.local_get(&r.collection, &r.key).await?;
        Ok(Response::new(LocalGetResponse {
            values: set.live_values().cloned().collect(),
            context: context_token(set.context()),
            versions: set
                .versions()
                .iter()
                .map(|v| LocalVersion {
                    node: v.dot.actor.clone(),
                    counter: v.dot.counter,
                    value: v.value.clone(),
                })
                .collect(),
        }))
    }
}
