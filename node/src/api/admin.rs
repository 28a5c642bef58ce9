//! The admin service: cluster status as this node sees it, the ring, local replicas,
//! collections, topology changes, repair, indexes (`indexes.rs`) and tokens (`tokens.rs`).
//! With authentication on, reading status, the ring and the lists needs any valid token,
//! everything else an admin token.

use std::sync::Arc;
use std::time::Duration;

use ringdb_proto::v1::admin_server::Admin;
use ringdb_proto::v1::{
    CollectionDef, CollectionInfo, CreateCollectionRequest, CreateCollectionResponse,
    CreateIndexRequest, CreateIndexResponse, CreateTokenRequest, CreateTokenResponse,
    DecommissionRequest, DropIndexRequest, DropIndexResponse, ListCollectionsRequest,
    ListCollectionsResponse, ListIndexesRequest, ListIndexesResponse, ListTokensRequest,
    ListTokensResponse, LocalGetRequest, LocalGetResponse, LocalIndexScanRequest,
    LocalIndexScanResponse, LocalVersion, NodeStatus, RangeVerified, RemoveNodeRequest,
    RepairRequest, RepairResponse, RepairStatusRequest, RepairStatusResponse, RevokeTokenRequest,
    RevokeTokenResponse, RingRequest, RingResponse, RingToken, StatusRequest, StatusResponse,
    TopologyChangeResponse, TreeRoot,
};
use tonic::{Request, Response, Status};

use super::auth::Auth;
use super::{indexes, tokens};
use crate::cluster::gossip;
use crate::cluster::leave::{self, Refusal};
use crate::cluster::schema::SchemaError;
use crate::cluster::Membership;
use crate::coordinator::validate::{self, context_token};
use crate::coordinator::Coordinator;
use crate::repair::AntiEntropy;

/// Serves `ringdb.v1.Admin`.
pub struct AdminService {
    coordinator: Arc<Coordinator>,
    membership: Arc<Membership>,
    anti_entropy: Arc<AntiEntropy>,
    auth: Arc<Auth>,
}

impl AdminService {
    /// Serve operators on behalf of this node.
    pub fn new(
        coordinator: Arc<Coordinator>,
        membership: Arc<Membership>,
        anti_entropy: Arc<AntiEntropy>,
        auth: Arc<Auth>,
    ) -> Self {
        AdminService {
            coordinator,
            membership,
            anti_entropy,
            auth,
        }
    }

    /// Any valid token (or none needed).
    fn viewer<T>(&self, req: &Request<T>) -> Result<(), Status> {
        self.auth.authenticate(req.metadata()).map(|_| ())
    }

    /// An admin token (or none needed).
    fn admin<T>(&self, req: &Request<T>, what: &str) -> Result<(), Status> {
        self.auth.authenticate(req.metadata())?.may_admin(what)
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
                zone: m.zone,
            })
            .collect()
    }
}

fn info(d: CollectionDef) -> CollectionInfo {
    CollectionInfo {
        name: d.name,
        replication: d.replication,
        default_ttl_secs: d.default_ttl_secs,
    }
}

fn refused(r: Refusal) -> Status {
    match r {
        Refusal::Precondition(m) => Status::failed_precondition(m),
        Refusal::Unknown(m) => Status::not_found(m),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.viewer(&req)?;
        let stats = self.coordinator.storage().stats();
        self.membership.set_own_load(
            stats.keys.load(std::sync::atomic::Ordering::Relaxed),
            stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        );
        let readiness = self.membership.readiness();
        Ok(Response::new(StatusResponse {
            node_id: self.membership.node_id().to_string(),
            replication_factor: self.coordinator.config().replication_factor as u32,
            nodes: self.nodes(),
            serving: readiness.is_ok(),
            not_serving_reason: readiness.err().unwrap_or_default(),
        }))
    }

    async fn ring(&self, req: Request<RingRequest>) -> Result<Response<RingResponse>, Status> {
        self.viewer(&req)?;
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
        self.admin(&req, "read a local replica")?;
        let r = req.into_inner();
        validate::collection(&r.collection)?;
        validate::key(&r.key)?;
        let set = self.coordinator.local_get(&r.collection, &r.key).await?;
        Ok(Response::new(LocalGetResponse {
            values: set.live_values().cloned().collect(),
            context: context_token(&r.collection, &r.key, set.context()),
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

    async fn create_collection(
        &self,
        req: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        self.admin(&req, "create collections")?;
        let r = req.into_inner();
        validate::collection(&r.name)?;
        // Learn what the live peers know first, so a create made through another node is
        // seen; then tell them at once. Creates racing on two nodes are settled by the
        // schema merge (the earlier creation wins) and the loser is told so.
        let transport = self.coordinator.transport();
        let agree = Duration::from_secs(2);
        gossip::round_with_all(&self.membership, transport.as_ref(), agree).await;
        let schema = self.membership.schema();
        let def = match schema.create_with_ttl(
            &r.name,
            r.replication,
            r.default_ttl_secs,
            self.membership.node_id(),
            self.coordinator.clock().now_ms(),
        ) {
            Ok(def) => {
                self.membership.note_change();
                gossip::round_with_all(&self.membership, transport.as_ref(), agree).await;
                match schema.get(&r.name) {
                    Some(won) if won != def && !r.if_not_exists => {
                        return Err(Status::already_exists(format!(
                            "collection {} was created concurrently on {} with replication = {}",
                            won.name, won.created_by, won.replication
                        )))
                    }
                    Some(won) => {
                        tracing::info!(collection = %won.name, replication = won.replication, "collection created");
                        won
                    }
                    None => def,
                }
            }
            Err(SchemaError::Exists { .. }) if r.if_not_exists => schema
                .get(&r.name)
                .ok_or_else(|| Status::internal("collection vanished"))?,
            Err(e @ SchemaError::Exists { .. }) => {
                return Err(Status::already_exists(e.to_string()))
            }
            Err(e) => return Err(Status::invalid_argument(e.to_string())),
        };
        Ok(Response::new(CreateCollectionResponse {
            collection: Some(info(def)),
        }))
    }

    async fn list_collections(
        &self,
        req: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        self.viewer(&req)?;
        let schema = self.membership.schema();
        Ok(Response::new(ListCollectionsResponse {
            collections: schema.all().into_iter().map(info).collect(),
            default_replication: schema.default_replication(),
        }))
    }

    async fn decommission(
        &self,
        req: Request<DecommissionRequest>,
    ) -> Result<Response<TopologyChangeResponse>, Status> {
        self.admin(&req, "decommission nodes")?;
        let storage = self.coordinator.storage().clone();
        let already = self.membership.own_status() == crate::cluster::STATUS_LEAVING;
        let message = leave::start_decommission(&self.membership, &storage)
            .await
            .map_err(refused)?;
        if !already {
            tokio::spawn(leave::decommission(
                self.membership.clone(),
                storage,
                self.coordinator.transport().clone(),
                self.coordinator.hints().clone(),
            ));
        }
        Ok(Response::new(TopologyChangeResponse { message }))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<TopologyChangeResponse>, Status> {
        self.admin(&req, "remove nodes")?;
        let id = req.into_inner().node_id;
        let message = leave::start_removal(&self.membership, &id).map_err(refused)?;
        tokio::spawn(leave::remove(
            self.membership.clone(),
            self.coordinator.storage().clone(),
            self.coordinator.transport().clone(),
            id,
        ));
        Ok(Response::new(TopologyChangeResponse { message }))
    }

    async fn repair(
        &self,
        req: Request<RepairRequest>,
    ) -> Result<Response<RepairResponse>, Status> {
        self.admin(&req, "run repairs")?;
        let r = req.into_inner();
        let only = (!r.collection.is_empty()).then_some(r.collection);
        if let Some(c) = &only {
            validate::collection(c)?;
        }
        let report = self.anti_entropy.pass(only.as_deref()).await;
        tracing::info!(?report, "repair requested by an operator");
        Ok(Response::new(RepairResponse {
            ranges: report.ranges,
            failed: report.failed,
            keys_repaired: report.keys_repaired,
            bytes_exchanged: report.bytes_exchanged,
            elapsed_ms: report.elapsed.as_millis() as u64,
            tombstones_purged: report.tombstones_purged,
        }))
    }

    async fn repair_status(
        &self,
        req: Request<RepairStatusRequest>,
    ) -> Result<Response<RepairStatusResponse>, Status> {
        self.viewer(&req)?;
        let s = self.anti_entropy.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(RepairStatusResponse {
            node_id: self.membership.node_id().to_string(),
            passes: load(&s.passes),
            last_pass_ms: load(&s.last_pass_ms),
            ranges_verified: load(&s.ranges_verified),
            ranges_failed: load(&s.ranges_failed),
            keys_repaired: load(&s.keys_repaired),
            bytes_exchanged: load(&s.bytes_exchanged),
            tombstones_purged: load(&s.tombstones_purged),
            ranges: self
                .anti_entropy
                .verified_ranges()
                .into_iter()
                .map(|r| RangeVerified {
                    collection: r.collection,
                    first: r.first,
                    last: r.last,
                    peer: r.peer,
                    verified_ms: r.at_ms,
                    keys_repaired: r.keys_repaired,
                })
                .collect(),
            roots: self
                .coordinator
                .storage()
                .trees()
                .roots()
                .into_iter()
                .map(|(collection, root)| TreeRoot { collection, root })
                .collect(),
        }))
    }

    async fn create_index(
        &self,
        req: Request<CreateIndexRequest>,
    ) -> Result<Response<CreateIndexResponse>, Status> {
        self.admin(&req, "create indexes")?;
        indexes::create(&self.coordinator, &self.membership, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn drop_index(
        &self,
        req: Request<DropIndexRequest>,
    ) -> Result<Response<DropIndexResponse>, Status> {
        self.admin(&req, "drop indexes")?;
        indexes::drop_index(&self.coordinator, &self.membership, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_indexes(
        &self,
        req: Request<ListIndexesRequest>,
    ) -> Result<Response<ListIndexesResponse>, Status> {
        self.viewer(&req)?;
        indexes::list(&self.coordinator, &self.membership, req.into_inner()).map(Response::new)
    }

    async fn local_index_scan(
        &self,
        req: Request<LocalIndexScanRequest>,
    ) -> Result<Response<LocalIndexScanResponse>, Status> {
        self.admin(&req, "scan local index entries")?;
        indexes::local_scan(&self.coordinator, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        self.admin(&req, "create tokens")?;
        tokens::create(&self.coordinator, &self.membership, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_tokens(
        &self,
        req: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        self.admin(&req, "list tokens")?;
        Ok(Response::new(tokens::list(&self.membership)))
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        self.admin(&req, "revoke tokens")?;
        tokens::revoke(&self.coordinator, &self.membership, req.into_inner()).await?;
        Ok(Response::new(RevokeTokenResponse {}))
    }
}
