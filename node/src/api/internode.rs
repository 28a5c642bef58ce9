//! The internode service: replica reads and writes, forwarded writes, membership exchange.
//! Payloads are encoded sibling sets, decoded in binary; JSON is never parsed here.

use std::sync::Arc;

use bytes::Bytes;
use ringdb_proto::v1::internode_server::Internode;
use ringdb_proto::v1::{
    pipe_request, pipe_response, CoordinateWriteRequest, CoordinateWriteResponse,
    FetchRangeRequest, FetchRangeResponse, GossipAck, GossipAck2, GossipAck2Response, GossipSyn,
    KeyHash, KeyHashesRequest, KeyHashesResponse, PipeRequest, PipeRequests, PipeResponse,
    PipeResponses, RangeEntry, RangeHashesRequest, RangeHashesResponse, ReplicaReadBatchRequest,
    ReplicaReadBatchResponse, ReplicaReadRequest, ReplicaReadResponse, ReplicaWriteBatchRequest,
    ReplicaWriteBatchResponse, ReplicaWriteRequest, ReplicaWriteResponse, TombstonesRequest,
    TombstonesResponse,
};
use tonic::{Request, Response, Status};

use super::pipeline::{self, Answers};

use crate::cluster::schema::Filter;
use crate::cluster::{gossip, Membership};
use crate::coordinator::{Coordinator, Level, WriteOp};
use crate::version::{CausalContext, SiblingSet};

/// Serves `ringdb.v1.Internode`.
#[derive(Clone)]
pub struct InternodeService {
    coordinator: Arc<Coordinator>,
    membership: Arc<Membership>,
}

impl InternodeService {
    /// Serve peers on behalf of this node.
    pub fn new(coordinator: Arc<Coordinator>, membership: Arc<Membership>) -> Self {
        InternodeService {
            coordinator,
            membership,
        }
    }

    /// One pipelined replica read or write, answered exactly as its unary call would be.
    async fn answer(&self, req: PipeRequest) -> PipeResponse {
        use pipe_response::Result as R;
        let result = match req.op {
            Some(pipe_request::Op::Read(r)) => self
                .replica_read(Request::new(r))
                .await
                .map(|a| R::Read(a.into_inner())),
            Some(pipe_request::Op::Write(w)) => self
                .replica_write(Request::new(w))
                .await
                .map(|a| R::Write(a.into_inner())),
            None => Err(bad("pipeline request without an operation")),
        };
        PipeResponse {
            id: req.id,
            result: Some(result.unwrap_or_else(|s| R::Failure(pipeline::failure(s)))),
        }
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
        let r = req.into_inner();
        let raw = self
            .coordinator
            .storage()
            .read_raw(&r.collection, &r.key)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(Response::new(ReplicaReadResponse {
            siblings: raw.unwrap_or_default(),
        }))
    }

    async fn replica_read_batch(
        &self,
        req: Request<ReplicaReadBatchRequest>,
    ) -> Result<Response<ReplicaReadBatchResponse>, Status> {
        let r = req.into_inner();
        let storage = self.coordinator.storage();
        let reads = r.keys.iter().map(|k| storage.read_raw(&r.collection, k));
        let mut siblings = Vec::with_capacity(r.keys.len());
        for raw in futures::future::join_all(reads).await {
            siblings.push(raw.map_err(crate::error::Error::from)?.unwrap_or_default());
        }
        Ok(Response::new(ReplicaReadBatchResponse { siblings }))
    }

    async fn tombstones(
        &self,
        req: Request<TombstonesRequest>,
    ) -> Result<Response<TombstonesResponse>, Status> {
        let r = req.into_inner();
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
        Ok(Response::new(resp))
    }

    async fn range_hashes(
        &self,
        req: Request<RangeHashesRequest>,
    ) -> Result<Response<RangeHashesResponse>, Status> {
        let r = req.into_inner();
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
        Ok(Response::new(RangeHashesResponse { hashes }))
    }

    async fn key_hashes(
        &self,
        req: Request<KeyHashesRequest>,
    ) -> Result<Response<KeyHashesResponse>, Status> {
        let r = req.into_inner();
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
        Ok(Response::new(KeyHashesResponse { keys }))
    }

    async fn replica_write(
        &self,
        req: Request<ReplicaWriteRequest>,
    ) -> Result<Response<ReplicaWriteResponse>, Status> {
        let r = req.into_inner();
        let set = SiblingSet::decode(&r.siblings).map_err(bad)?;
        let durability = super::durability(r.durability)?;
        self.coordinator
            .storage()
            .merge(&r.collection, &r.key, set, durability)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(Response::new(ReplicaWriteResponse {}))
    }

    async fn coordinate_write(
        &self,
        req: Request<CoordinateWriteRequest>,
    ) -> Result<Response<CoordinateWriteResponse>, Status> {
        let r = req.into_inner();
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
        Ok(Response::new(CoordinateWriteResponse {
            context: Bytes::from(reply.context.encode()),
            acknowledged_by: reply.acknowledged_by,
            hinted_for: reply.hinted_for,
            trace,
        }))
    }

    async fn fetch_range(
        &self,
        req: Request<FetchRangeRequest>,
    ) -> Result<Response<FetchRangeResponse>, Status> {
        let r = req.into_inner();
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
        Ok(Response::new(FetchRangeResponse {
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
        }))
    }

    async fn replica_write_batch(
        &self,
        req: Request<ReplicaWriteBatchRequest>,
    ) -> Result<Response<ReplicaWriteBatchResponse>, Status> {
        let r = req.into_inner();
        let durability = super::durability(r.durability)?;
        if !r.hint_for.is_empty() {
            self.coordinator.hints().adopt(&r.hint_for, r.entries).await;
            let storage = self.coordinator.storage();
            storage.sync().await.map_err(crate::error::Error::from)?;
            return Ok(Response::new(ReplicaWriteBatchResponse {}));
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
        Ok(Response::new(ReplicaWriteBatchResponse {}))
    }

    async fn gossip(&self, req: Request<GossipSyn>) -> Result<Response<GossipAck>, Status> {
        Ok(Response::new(gossip::answer_syn(
            &self.membership,
            &req.into_inner(),
        )))
    }

    async fn gossip_finish(
        &self,
        req: Request<GossipAck2>,
    ) -> Result<Response<GossipAck2Response>, Status> {
        if gossip::take_ack2(&self.membership, &req.into_inner()) {
            let (m, s) = (self.membership.clone(), self.coordinator.storage().clone());
            tokio::spawn(async move { gossip::persist(&m, &s).await });
        }
        Ok(Response::new(GossipAck2Response {}))
    }
}
