//! The internode service: replica reads and writes, forwarded writes, membership exchange.
//! Payloads are encoded sibling sets, decoded in binary; JSON is never parsed here.
//!
//! Every request, whether it arrives as a unary call, on a pipeline or through a simulated
//! network, is answered by [`InternodeService::handle`], so there is one serving path to
//! test and a new message needs one new arm there.

use std::sync::Arc;

use bytes::Bytes;
use ringdb_proto::v1::internode_server::Internode;
use ringdb_proto::v1::{
    pipe_request, pipe_response, CoordinateWriteRequest, CoordinateWriteResponse,
    FetchRangeRequest, FetchRangeResponse, GossipAck, GossipAck2, GossipAck2Response, GossipSyn,
    KeyHash, KeyHashesRequest, KeyHashesResponse, PipeRequest, PipeRequests, PipeResponse,
    PipeResponses, QueryAggregateRequest, QueryAggregateResponse, QueryCandidate, QueryScanRequest,
    QueryScanResponse, RangeEntry, RangeHashesRequest, RangeHashesResponse,
    ReplicaReadBatchRequest, ReplicaReadBatchResponse, ReplicaReadRequest, ReplicaReadResponse,
    ReplicaWriteBatchRequest, ReplicaWriteBatchResponse, ReplicaWriteRequest, ReplicaWriteResponse,
    TombstonesRequest, TombstonesResponse,
};
use tonic::{Request, Response, Status};

use super::pipeline::{self, Answers};

use crate::cluster::schema::Filter;
use crate::cluster::{gossip, Membership};
use crate::coordinator::{Coordinator, Level, WriteOp};
use crate::query::replica::ScanQuery;
use crate::query::QueryEngine;
use crate::transport::{PeerRequest, PeerResponse};
use crate::version::{CausalContext, SiblingSet};

/// Serves `ringdb.v1.Internode`.
#[derive(Clone)]
pub struct InternodeService {
    coordinator: Arc<Coordinator>,
    membership: Arc<Membership>,
    queries: Arc<QueryEngine>,
}

impl InternodeService {
    /// Serve peers on behalf of this node (its replica's part of queries through `queries`).
    pub fn new(
        coordinator: Arc<Coordinator>,
        membership: Arc<Membership>,
        queries: Arc<QueryEngine>,
    ) -> Self {
        InternodeService {
            coordinator,
            membership,
            queries,
        }
    }

    /// Answer one peer request; every way a request reaches this node ends here.
    pub async fn handle(&self, request: PeerRequest) -> Result<PeerResponse, Status> {
        use PeerRequest as Q;
        use PeerResponse as A;
        Ok(match request {
            Q::ReplicaRead(r) => A::ReplicaRead(self.serve_replica_read(r).await?),
            Q::ReplicaWrite(w) | Q::HintReplay(w) => {
                A::ReplicaWrite(self.serve_replica_write(w).await?)
            }
            Q::ReplicaWriteBatch(r) => {
                A::ReplicaWriteBatch(self.serve_replica_write_batch(r).await?)
            }
            Q::CoordinateWrite(r) => A::CoordinateWrite(self.serve_coordinate_write(r).await?),
            Q::FetchRange(r) => A::FetchRange(self.serve_fetch_range(r).await?),
            Q::Gossip(syn) => A::Gossip(gossip::answer_syn(&self.membership, &syn)),
            Q::GossipFinish(ack2) => A::GossipFinish(self.serve_gossip_finish(ack2)),
            Q::RangeHashes(r) => A::RangeHashes(self.serve_range_hashes(r).await?),
            Q::KeyHashes(r) => A::KeyHashes(self.serve_key_hashes(r).await?),
            Q::Tombstones(r) => A::Tombstones(self.serve_tombstones(r).await?),
            Q::ReplicaReadBatch(r) => A::ReplicaReadBatch(self.serve_replica_read_batch(r).await?),
            Q::QueryScan(r) => A::QueryScan(self.serve_query_scan(r).await?),
            Q::QueryAggregate(r) => A::QueryAggregate(self.serve_query_aggregate(r).await?),
        })
    }

    /// [`handle`](Self::handle) a request whose answer must be an `A` (the message its
    /// rpc returns).
    async fn ask<A>(&self, request: PeerRequest) -> Result<A, Status>
    where
        A: TryFrom<PeerResponse, Error = PeerResponse>,
    {
        let kind = request.kind();
        A::try_from(self.handle(request).await?).map_err(|other| {
            Status::internal(format!(
                "a {kind} request was answered with a {} answer",
                other.answers()
            ))
        })
    }

    /// A unary call, answered through [`handle`](Self::handle).
    async fn unary<A>(&self, request: PeerRequest) -> Result<Response<A>, Status>
    where
        A: TryFrom<PeerResponse, Error = PeerResponse>,
    {
        self.ask(request).await.map(Response::new)
    }

    /// One pipelined replica read or write, answered exactly as its unary call would be.
    async fn answer(&self, req: PipeRequest) -> PipeResponse {
        use pipe_response::Result as R;
        let result = match req.op {
            Some(pipe_request::Op::Read(r)) => {
                self.ask(PeerRequest::ReplicaRead(r)).await.map(R::Read)
            }
            Some(pipe_request::Op::Write(w)) => {
                self.ask(PeerRequest::ReplicaWrite(w)).await.map(R::Write)
            }
            None => Err(bad("pipeline request without an operation")),
        };
        PipeResponse {
            id: req.id,
            result: Some(result.unwrap_or_else(|s| R::Failure(pipeline::failure(s)))),
        }
    }

    async fn serve_replica_read(
        &self,
        r: ReplicaReadRequest,
    ) -> Result<ReplicaReadResponse, Status> {
        let raw = self
            .coordinator
            .storage()
            .read_raw(&r.collection, &r.key)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(ReplicaReadResponse {
            siblings: raw.unwrap_or_default(),
        })
    }

    async fn serve_replica_read_batch(
        &self,
        r: ReplicaReadBatchRequest,
    ) -> Result<ReplicaReadBatchResponse, Status> {
        let storage = self.coordinator.storage();
        let reads = r.keys.iter().map(|k| storage.read_raw(&r.collection, k));
        let mut siblings = Vec::with_capacity(r.keys.len());
        for raw in futures::future::join_all(reads).await {
            siblings.push(raw.map_err(crate::error::Error::from)?.unwrap_or_default());
        }
        Ok(ReplicaReadBatchResponse { siblings })
    }

    async fn serve_query_scan(&self, r: QueryScanRequest) -> Result<QueryScanResponse, Status> {
        use ringdb_wire::query::{filter_from_proto, order_from_wire, position_from_proto};
        let filter = filter_from_proto(&r.conditions)?;
        let order = order_from_wire(r.order, &filter)?;
        let after = match &r.after {
            Some(p) => Some(position_from_proto(p, order)?),
            None => None,
        };
        let answer = self
            .queries
            .replica()
            .scan(ScanQuery {
                collection: r.collection,
                filter,
                order,
                ranges: r.ranges.iter().map(|t| (t.first, t.last)).collect(),
                after,
                limit: r.limit.clamp(1, 100_000) as usize,
            })
            .await?;
        Ok(QueryScanResponse {
            candidates: answer
                .candidates
                .into_iter()
                .map(|c| QueryCandidate {
                    position: Some(ringdb_wire::query::position_to_proto(&c.position)),
                    key: c.key,
                    siblings: c.siblings,
                })
                .collect(),
            stopped: answer.stopped,
            scanned: answer.scanned,
            source: answer.source,
        })
    }

    async fn serve_query_aggregate(
        &self,
        r: QueryAggregateRequest,
    ) -> Result<QueryAggregateResponse, Status> {
        use ringdb_wire::query::{filter_from_proto, spec_from_proto};
        let filter = filter_from_proto(&r.conditions)?;
        let spec = spec_from_proto(&r.aggregations, &r.group_by)?;
        let ranges: Vec<_> = r.ranges.iter().map(|t| (t.first, t.last)).collect();
        let answer = self
            .queries
            .replica()
            .aggregate(&r.collection, filter, &ranges, spec)
            .await?;
        Ok(QueryAggregateResponse {
            partial: answer.partial.to_bytes().into(),
            scanned: answer.scanned,
            matched: answer.matched,
            source: answer.source,
        })
    }

    async fn serve_tombstones(&self, r: TombstonesRequest) -> Result<TombstonesResponse, Status> {
        if !r.purge_if.is_empty() && r.purge_if.len() != r.keys.len() {
            return Err(Status::invalid_argument("purge_if needs one hash per key"));
        }
        let storage = self.coordinator.storage();
        let err = crate::error::Error::from;
        let mut resp = TombstonesResponse::default();
        if r.purge_if.is_empty() {
            // Only a check needs the (full) hint scan; a purge follows a check.
            resp.hinted = self
                .coordinator
                .hints()
                .holds_hints_for(&r.collection, &r.keys)
                .await
                .map_err(err)?;
        }
        for (i, k) in r.keys.iter().enumerate() {
            match r.purge_if.get(i) {
                Some(h) => resp
                    .purged
                    .push(storage.purge_if(&r.collection, k, *h).await.map_err(err)?),
                None => resp.hashes.push(
                    storage
                        .entry_hash_of(&r.collection, k)
                        .await
                        .map_err(err)?
                        .unwrap_or(0),
                ),
            }
        }
        Ok(resp)
    }

    async fn serve_range_hashes(
        &self,
        r: RangeHashesRequest,
    ) -> Result<RangeHashesResponse, Status> {
        let mut hashes = Vec::with_capacity(r.ranges.len());
        for t in &r.ranges {
            if t.first > t.last {
                return Err(Status::invalid_argument("token range with first > last"));
            }
            let h = self
                .coordinator
                .storage()
                .range_hash(&r.collection, t.first, t.last)
                .await
                .map_err(crate::error::Error::from)?;
            hashes.push(h);
        }
        Ok(RangeHashesResponse { hashes })
    }

    async fn serve_key_hashes(&self, r: KeyHashesRequest) -> Result<KeyHashesResponse, Status> {
        let t = r.range.filter(|t| t.first <= t.last).ok_or_else(|| {
            Status::invalid_argument("a token range with first <= last is required")
        })?;
        let keys = self
            .coordinator
            .storage()
            .key_hashes(&r.collection, t.first, t.last)
            .await
            .map_err(crate::error::Error::from)?
            .into_iter()
            .map(|(key, hash)| KeyHash { key, hash })
            .collect();
        Ok(KeyHashesResponse { keys })
    }

    async fn serve_replica_write(
        &self,
        r: ReplicaWriteRequest,
    ) -> Result<ReplicaWriteResponse, Status> {
        let set = SiblingSet::decode(&r.siblings).map_err(bad)?;
        let durability = super::durability(r.durability)?;
        self.coordinator
            .storage()
            .merge(&r.collection, &r.key, set, durability)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(ReplicaWriteResponse {})
    }

    async fn serve_coordinate_write(
        &self,
        r: CoordinateWriteRequest,
    ) -> Result<CoordinateWriteResponse, Status> {
        let (traced, forwarded_from) = (r.trace, r.forwarded_from);
        let op = WriteOp {
            context: CausalContext::decode(&r.context).map_err(bad)?,
            level: Level::from_proto(r.consistency)?,
            durability: super::durability(r.durability)?,
            timeout: super::timeout(r.timeout_ms, self.coordinator.config().request_timeout),
            expires_ms: (r.expires_ms > 0).then_some(r.expires_ms),
            collection: r.collection,
            key: r.key,
            value: r.document,
        };
        let (reply, trace) = if traced {
            let t = self
                .coordinator
                .coordinate_write_traced(op, &forwarded_from)
                .await;
            (t.result?, Some(t.trace))
        } else {
            (self.coordinator.coordinate_write(op).await?, None)
        };
        Ok(CoordinateWriteResponse {
            context: Bytes::from(reply.context.encode()),
            acknowledged_by: reply.acknowledged_by,
            hinted_for: reply.hinted_for,
            trace,
        })
    }

    async fn serve_fetch_range(&self, r: FetchRangeRequest) -> Result<FetchRangeResponse, Status> {
        let filter = Filter {
            only: r.only_collections,
            except: r.except_collections,
        };
        let limit = r.limit.clamp(1, 10_000) as usize;
        let after = (!r.after.is_empty()).then(|| r.after.to_vec());
        let entries = self
            .coordinator
            .storage()
            .scan_tokens(r.first, r.last, after, limit)
            .await
            .map_err(crate::error::Error::from)?;
        let next_after = if entries.len() == limit {
            entries
                .last()
                .map(|e| e.storage_key.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(FetchRangeResponse {
            entries: entries
                .into_iter()
                .filter(|e| filter.admits(&e.collection))
                .map(|e| RangeEntry {
                    collection: e.collection,
                    key: e.key,
                    siblings: e.siblings,
                })
                .collect(),
            next_after: next_after.into(),
        })
    }

    async fn serve_replica_write_batch(
        &self,
        r: ReplicaWriteBatchRequest,
    ) -> Result<ReplicaWriteBatchResponse, Status> {
        let durability = super::durability(r.durability)?;
        if !r.hint_for.is_empty() {
            self.coordinator.hints().adopt(&r.hint_for, r.entries).await;
            let storage = self.coordinator.storage();
            storage.sync().await.map_err(crate::error::Error::from)?;
            return Ok(ReplicaWriteBatchResponse {});
        }
        let mut sets = Vec::with_capacity(r.entries.len());
        for e in r.entries {
            let set = SiblingSet::decode(&e.siblings)
                .map_err(|err| bad(format!("{}/{}: {err}", e.collection, e.key)))?;
            sets.push((e.collection, e.key, set));
        }
        let storage = self.coordinator.storage();
        let merges = sets.into_iter().map(|(c, k, set)| async move {
            storage
                .merge(&c, &k, set, crate::storage::Durability::Memory)
                .await
        });
        for r in futures::future::join_all(merges).await {
            r.map_err(crate::error::Error::from)?;
        }
        if durability == crate::storage::Durability::Durable {
            storage.sync().await.map_err(crate::error::Error::from)?;
        }
        Ok(ReplicaWriteBatchResponse {})
    }

    fn serve_gossip_finish(&self, ack2: GossipAck2) -> GossipAck2Response {
        if gossip::take_ack2(&self.membership, &ack2) {
            let (m, s) = (self.membership.clone(), self.coordinator.storage().clone());
            tokio::spawn(async move { gossip::persist(&m, &s).await });
        }
        GossipAck2Response {}
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl Internode for InternodeService {
    type PipelineStream = Answers<PipeResponses>;

    async fn pipeline(
        &self,
        req: Request<tonic::Streaming<PipeRequests>>,
    ) -> Result<Response<Self::PipelineStream>, Status> {
        let service = self.clone();
        Ok(Response::new(pipeline::serve(
            req.into_inner(),
            super::wire::WireLimits {
                max_message_bytes: crate::transport::grpc::MAX_INTERNODE_MESSAGE,
                max_document_bytes: crate::transport::grpc::MAX_INTERNODE_MESSAGE,
            },
            |m: PipeRequests| m.requests,
            move |r: PipeRequest| {
                let service = service.clone();
                async move { service.answer(r).await }
            },
            |responses| PipeResponses { responses },
        )))
    }

    async fn replica_read(
        &self,
        req: Request<ReplicaReadRequest>,
    ) -> Result<Response<ReplicaReadResponse>, Status> {
        self.unary(PeerRequest::ReplicaRead(req.into_inner())).await
    }

    async fn replica_read_batch(
        &self,
        req: Request<ReplicaReadBatchRequest>,
    ) -> Result<Response<ReplicaReadBatchResponse>, Status> {
        self.unary(PeerRequest::ReplicaReadBatch(req.into_inner()))
            .await
    }

    async fn query_scan(
        &self,
        req: Request<QueryScanRequest>,
    ) -> Result<Response<QueryScanResponse>, Status> {
        self.unary(PeerRequest::QueryScan(req.into_inner())).await
    }

    async fn query_aggregate(
        &self,
        req: Request<QueryAggregateRequest>,
    ) -> Result<Response<QueryAggregateResponse>, Status> {
        self.unary(PeerRequest::QueryAggregate(req.into_inner()))
            .await
    }

    async fn tombstones(
        &self,
        req: Request<TombstonesRequest>,
    ) -> Result<Response<TombstonesResponse>, Status> {
        self.unary(PeerRequest::Tombstones(req.into_inner())).await
    }

    async fn range_hashes(
        &self,
        req: Request<RangeHashesRequest>,
    ) -> Result<Response<RangeHashesResponse>, Status> {
        self.unary(PeerRequest::RangeHashes(req.into_inner())).await
    }

    async fn key_hashes(
        &self,
        req: Request<KeyHashesRequest>,
    ) -> Result<Response<KeyHashesResponse>, Status> {
        self.unary(PeerRequest::KeyHashes(req.into_inner())).await
    }

    async fn replica_write(
        &self,
        req: Request<ReplicaWriteRequest>,
    ) -> Result<Response<ReplicaWriteResponse>, Status> {
        self.unary(PeerRequest::ReplicaWrite(req.into_inner()))
            .await
    }

    async fn coordinate_write(
        &self,
        req: Request<CoordinateWriteRequest>,
    ) -> Result<Response<CoordinateWriteResponse>, Status> {
        self.unary(PeerRequest::CoordinateWrite(req.into_inner()))
            .await
    }

    async fn fetch_range(
        &self,
        req: Request<FetchRangeRequest>,
    ) -> Result<Response<FetchRangeResponse>, Status> {
        self.unary(PeerRequest::FetchRange(req.into_inner())).await
    }

    async fn replica_write_batch(
        &self,
        req: Request<ReplicaWriteBatchRequest>,
    ) -> Result<Response<ReplicaWriteBatchResponse>, Status> {
        self.unary(PeerRequest::ReplicaWriteBatch(req.into_inner()))
            .await
    }

    async fn gossip(&self, req: Request<GossipSyn>) -> Result<Response<GossipAck>, Status> {
        self.unary(PeerRequest::Gossip(req.into_inner())).await
    }

    async fn gossip_finish(
        &self,
        req: Request<GossipAck2>,
    ) -> Result<Response<GossipAck2Response>, Status> {
        self.unary(PeerRequest::GossipFinish(req.into_inner()))
            .await
    }
}
