//! The client service: validate, then hand to the coordinator (its traced variant when
//! the request asks for a trace).

use std::sync::Arc;

use ringdb_proto::v1::client_server::Client;
use ringdb_proto::v1::{
    client_request, client_response, AggregateRequest, AggregateResponse, ClientRequest,
    ClientRequests, ClientResponse, ClientResponses, CountRequest, CountResponse, DeleteRequest,
    DeleteResponse, FindRequest, GetRequest, GetResponse, PutRequest, PutResponse,
};
use tokio::sync::{Semaphore, SemaphorePermit};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Auth, Principal, StreamCredential};
use super::pipeline::{self, Answers};
use super::query;
use super::wire::WireLimits;

use crate::coordinator::validate::{self, context_token, context_token_at};
use crate::coordinator::{Coordinator, Level, WriteOp};
use crate::query::QueryEngine;
use crate::ring::token_for;

/// Serves `ringdb.v1.Client`.
#[derive(Clone)]
pub struct ClientService {
    coordinator: Arc<Coordinator>,
    limits: WireLimits,
    admission: Arc<Semaphore>,
    queries: Arc<QueryEngine>,
    auth: Arc<Auth>,
}

impl ClientService {
    /// Serve client requests through `coordinator`, and queries through `queries`.
    pub fn new(
        coordinator: Arc<Coordinator>,
        limits: WireLimits,
        queries: Arc<QueryEngine>,
        auth: Arc<Auth>,
    ) -> Self {
        let limit = coordinator.config().max_client_requests;
        ClientService {
            coordinator,
            limits,
            admission: Arc::new(Semaphore::new(limit)),
            queries,
            auth,
        }
    }

    /// A place among the requests this node coordinates, or `RESOURCE_EXHAUSTED` at once
    /// when all are taken: an overloaded node answers fast instead of queueing work that
    /// would time out (and leave hints behind) anyway.
    fn admit(&self) -> Result<SemaphorePermit<'_>, Status> {
        self.admission.try_acquire().map_err(|_| {
            Status::resource_exhausted(format!(
                "node {} is overloaded: {} requests in progress; retry later or on another node",
                self.coordinator.node_id(),
                self.coordinator.config().max_client_requests
            ))
        })
    }

    /// One pipelined request, answered exactly as its unary call would be.
    /// `credential` is the token the stream opened with, looked up again now.
    async fn answer(&self, credential: &StreamCredential, req: ClientRequest) -> ClientResponse {
        use client_response::Result as R;
        let who = self.auth.current(credential);
        let result = match (who, req.op) {
            (Err(s), _) => Err(s),
            (Ok(who), Some(client_request::Op::Get(r))) => self.get_as(&who, r).await.map(R::Get),
            (Ok(who), Some(client_request::Op::Put(r))) => self.put_as(&who, r).await.map(R::Put),
            (Ok(who), Some(client_request::Op::Delete(r))) => {
                self.delete_as(&who, r).await.map(R::Delete)
            }
            (Ok(_), None) => Err(Status::invalid_argument(
                "pipeline request without an operation",
            )),
        };
        ClientResponse {
            id: req.id,
            result: Some(result.unwrap_or_else(|s| R::Failure(pipeline::failure(s)))),
        }
    }
}

#[tonic::async_trait]
impl Client for ClientService {
    type PipelineStream = Answers<ClientResponses>;
    type FindStream = query::FindStream;

    async fn find(&self, req: Request<FindRequest>) -> Result<Response<Self::FindStream>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.find_as(&who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn count(&self, req: Request<CountRequest>) -> Result<Response<CountResponse>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.count_as(&who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn aggregate(
        &self,
        req: Request<AggregateRequest>,
    ) -> Result<Response<AggregateResponse>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.aggregate_as(&who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn pipeline(
        &self,
        req: Request<Streaming<ClientRequests>>,
    ) -> Result<Response<Self::PipelineStream>, Status> {
        // The token is checked (and hashed) once for the whole stream; each operation looks
        // it up again and is checked on its grant.
        let who = Arc::new(self.auth.open_stream(req.metadata())?);
        let service = self.clone();
        Ok(Response::new(pipeline::serve(
            req.into_inner(),
            self.limits,
            |m: ClientRequests| m.requests,
            move |r: ClientRequest| {
                let (service, who) = (service.clone(), who.clone());
                async move { service.answer(&who, r).await }
            },
            |responses| ClientResponses { responses },
        )))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.get_as(&who, req.into_inner()).await.map(Response::new)
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.put_as(&who, req.into_inner()).await.map(Response::new)
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let who = self.auth.authenticate(req.metadata())?;
        self.delete_as(&who, req.into_inner())
            .await
            .map(Response::new)
    }
}

impl ClientService {
    /// A FIND by `who`: admitted while its first page is computed; later pages run as the
    /// client reads them.
    pub(super) async fn find_as(
        &self,
        who: &Principal,
        r: FindRequest,
    ) -> Result<query::FindStream, Status> {
        who.may_read(&r.collection)?;
        let _admitted = self.admit()?;
        query::find(self.queries.clone(), r).await
    }

    /// A COUNT by `who`.
    pub(super) async fn count_as(
        &self,
        who: &Principal,
        r: CountRequest,
    ) -> Result<CountResponse, Status> {
        who.may_read(&r.collection)?;
        let _admitted = self.admit()?;
        query::count(&self.queries, r).await
    }

    /// An AGGREGATE by `who`.
    pub(super) async fn aggregate_as(
        &self,
        who: &Principal,
        r: AggregateRequest,
    ) -> Result<AggregateResponse, Status> {
        who.may_read(&r.collection)?;
        let _admitted = self.admit()?;
        query::aggregate(&self.queries, r).await
    }

    /// A get by `who`.
    pub(super) async fn get_as(
        &self,
        who: &Principal,
        r: GetRequest,
    ) -> Result<GetResponse, Status> {
        who.may_read(&r.collection)?;
        let _admitted = self.admit()?;
        validate::collection(&r.collection)?;
        validate::key(&r.key)?;
        let level = Level::from_proto(r.consistency)?;
        let timeout = super::timeout(r.timeout_ms, self.coordinator.config().request_timeout);
        let (set, trace) = if r.trace {
            let t = self
                .coordinator
                .get_traced(&r.collection, &r.key, level, timeout)
                .await;
            (t.result?, Some(t.trace))
        } else {
            let set = self
                .coordinator
                .get(&r.collection, &r.key, level, timeout)
                .await?;
            (set, None)
        };
        Ok(GetResponse {
            values: set.live_values().cloned().collect(),
            context: context_token(&r.collection, &r.key, set.context()),
            coordinator: self.coordinator.node_id().to_string(),
            trace,
        })
    }

    /// A put by `who`.
    pub(super) async fn put_as(
        &self,
        who: &Principal,
        r: PutRequest,
    ) -> Result<PutResponse, Status> {
        who.may_write(&r.collection)?;
        let _admitted = self.admit()?;
        validate::collection(&r.collection)?;
        validate::key(&r.key)?;
        validate::document(&r.document, self.limits.max_document_bytes)?;
        let bound = token_for(&r.collection, &r.key);
        let op = WriteOp {
            context: validate::context(&r.context, &r.collection, &r.key)?,
            level: Level::from_proto(r.consistency)?,
            durability: super::durability(r.durability)?,
            timeout: super::timeout(r.timeout_ms, self.coordinator.config().request_timeout),
            expires_ms: self.coordinator.expiry_for(&r.collection, r.ttl_secs),
            collection: r.collection,
            key: r.key,
            value: Some(r.document),
        };
        let (reply, trace) = if r.trace {
            let t = self.coordinator.put_traced(op).await;
            (t.result?, Some(t.trace))
        } else {
            (self.coordinator.put(op).await?, None)
        };
        Ok(PutResponse {
            context: context_token_at(bound, &reply.context),
            acknowledged_by: reply.acknowledged_by,
            hinted_for: reply.hinted_for,
            coordinator: self.coordinator.node_id().to_string(),
            trace,
        })
    }

    /// A delete by `who`.
    pub(super) async fn delete_as(
        &self,
        who: &Principal,
        r: DeleteRequest,
    ) -> Result<DeleteResponse, Status> {
        who.may_write(&r.collection)?;
        let _admitted = self.admit()?;
        validate::collection(&r.collection)?;
        validate::key(&r.key)?;
        let context = if r.context.is_empty() {
            None
        } else {
            Some(validate::context(&r.context, &r.collection, &r.key)?)
        };
        let bound = token_for(&r.collection, &r.key);
        let op = WriteOp {
            context: Default::default(),
            level: Level::from_proto(r.consistency)?,
            durability: super::durability(r.durability)?,
            timeout: super::timeout(r.timeout_ms, self.coordinator.config().request_timeout),
            expires_ms: None,
            collection: r.collection,
            key: r.key,
            value: None,
        };
        let (reply, trace) = if r.trace {
            let t = self.coordinator.delete_traced(op, context).await;
            (t.result?, Some(t.trace))
        } else {
            (self.coordinator.delete(op, context).await?, None)
        };
        Ok(DeleteResponse {
            context: context_token_at(bound, &reply.context),
            acknowledged_by: reply.acknowledged_by,
            hinted_for: reply.hinted_for,
            coordinator: self.coordinator.node_id().to_string(),
            trace,
        })
    }
}
