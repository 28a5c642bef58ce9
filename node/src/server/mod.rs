//! Assembling a node: storage, identity, tokens, membership, coordinator, and the gRPC
//! server with health and reflection, all on one port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringdb_proto::v1::admin_server::AdminServer;
use ringdb_proto::v1::client_server::ClientServer;
use ringdb_proto::v1::internode_server::InternodeServer;
use ringdb_proto::v1::MemberState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::admin::AdminService;
use crate::api::auth::Auth;
use crate::api::client::ClientService;
use crate::api::internode::InternodeService;
use crate::cluster::{
    found, gossip, join, leave, Membership, STATUS_JOINING, STATUS_LEAVING, STATUS_NORMAL,
};
use crate::coordinator::hints::Hints;
use crate::coordinator::Coordinator;
use crate::query::QueryEngine;
use crate::repair::AntiEntropy;
use crate::security::tls::{self, Tls};
use crate::security::{derived_secret, hash, NodeCredential, NodeGuard, Transition};
use crate::storage::{BuildPace, Engine, SledEngine, Storage, StorageError};
use crate::transport::grpc::{GrpcTransport, MAX_INTERNODE_MESSAGE};
use crate::transport::Transport;

mod config;
pub use config::NodeConfig;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory could not be opened or belongs to another node.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server could not be built.
    #[error("server: {0}")]
    Server(String),
}

/// A started node; dropping it does not stop it, call `stop`.
pub struct RunningNode {
    /// The address it advertises.
    pub address: String,
    /// Its membership view.
    pub membership: Arc<Membership>,
    /// Its coordinator.
    pub coordinator: Arc<Coordinator>,
    /// Where its HTTP/JSON API listens, if it serves one.
    pub http_address: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Stop serving, stop background work and flush storage.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in &self.background {
            t.abort();
        }
        match tokio::time::timeout(Duration::from_secs(5), &mut self.server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
            Err(_) => self.server.abort(),
            _ => {}
        }
        if let Err(e) = self.coordinator.storage().flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        // Saves the hash trees so the next start skips the rebuild scan.
        if let Err(e) = self.coordinator.storage().checkpoint().await {
            tracing::warn!(error = %e, "hash-tree checkpoint failed; the next start rebuilds them");
        }
    }
}

const META_NODE_ID: &str = "node_id";
const META_INCARNATION: &str = "incarnation";

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

async fn decode_u64(storage: &Storage, key: &str) -> Result<u64, StartError> {
    Ok(match storage.get_meta(key).await? {
        Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
        Some(_) => {
            return Err(StartError::Storage(StorageError::Corrupt(format!(
                "meta {key}"
            ))))
        }
        None => 0,
    })
}

/// A node's parts before it serves: what both the gRPC server and in-process simulations run.
pub struct Assembled {
    /// Its membership view (probes not yet running).
    pub membership: Arc<Membership>,
    /// Its coordinator (and, through it, its storage).
    pub coordinator: Arc<Coordinator>,
    /// Its anti-entropy (background passes and operators' repairs).
    pub anti_entropy: Arc<AntiEntropy>,
    /// The pace of its index builds.
    index_build: BuildPace,
    /// How it founds or joins the cluster while it has no tokens.
    founding: found::FoundingConfig,
    /// Its queries: coordinated here, and its replica's part of others'.
    pub queries: Arc<QueryEngine>,
    /// How it reaches peers, every call's outcome noted in its membership view.
    pub transport: Arc<dyn Transport>,
}

impl Assembled {
    /// The internode service, for a transport that delivers in-process.
    pub fn internode_service(&self) -> InternodeService {
        InternodeService::new(
            self.coordinator.clone(),
            self.membership.clone(),
            self.queries.clone(),
        )
    }

    /// Start the background work (gossip, hint replay, anti-entropy, TTL sweeps, index
    /// builds and drops, and finishing a join); the tasks run until aborted.
    pub fn spawn_background(&self, seeds: Vec<String>) -> Vec<JoinHandle<()>> {
        let transport = self.transport.clone();
        let storage = self.coordinator.storage().clone();
        let mut tasks = vec![
            tokio::spawn(gossip::run(
                self.membership.clone(),
                transport.clone(),
                storage.clone(),
                seeds.clone(),
            )),
            tokio::spawn(self.coordinator.hints().clone().run(transport.clone())),
            tokio::spawn(self.anti_entropy.clone().run()),
            tokio::spawn(crate::repair::sweep_expired(
                storage.clone(),
                Duration::from_secs(1),
            )),
            tokio::spawn(storage.clone().run_index_upkeep(self.index_build.clone())),
        ];
        let membership = self.membership.clone();
        if membership.own_tokens().is_empty() {
            // A new node: found the cluster or take a share of it, streaming if it may
            // hold data.
            let founding = self.founding.clone();
            tasks.push(tokio::spawn(async move {
                let taken = found::run(
                    membership.clone(),
                    storage.clone(),
                    transport.clone(),
                    seeds,
                    founding,
                )
                .await;
                if taken == found::Taken::MustStream {
                    join::run(membership, storage, transport).await;
                }
            }));
            return tasks;
        }
        match membership.own_status().as_str() {
            STATUS_JOINING => tasks.push(tokio::spawn(join::run(membership, storage, transport))),
            // Restarted in the middle of a decommission: carry on.
            STATUS_LEAVING => tasks.push(tokio::spawn(leave::decommission(
                membership,
                storage,
                transport,
                self.coordinator.hints().clone(),
            ))),
            _ => {}
        }
        tasks
    }
}

fn check(config: &NodeConfig) -> Result<(), StartError> {
    if !valid_id(&config.node_id) {
        return Err(StartError::Config(format!(
            "node id {:?} must be 1-64 of letters, digits, '_', '-', '.'",
            config.node_id
        )));
    }
    if config.http_listen.is_some() && config.security.tls.is_some() {
        return Err(StartError::Config(
            "--http-listen does not speak TLS yet; with --tls-cert serve HTTP through a TLS \
             proxy on this host, or leave --http-listen out"
                .into(),
        ));
    }
    if config.coordinator.replication_factor == 0 {
        return Err(StartError::Config(
            "replication factor must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Establish identity, incarnation and tokens on `engine`, reachable at `address` over
/// `transport`. Nothing listens yet.
pub async fn assemble(
    config: &NodeConfig,
    engine: Arc<dyn Engine>,
    transport: Arc<dyn Transport>,
    address: String,
) -> Result<Assembled, StartError> {
    check(config)?;
    let storage = Storage::start_with_clock(engine, config.storage.clone(), config.clock.clone())?;
    match storage.get_meta(META_NODE_ID).await? {
        Some(owner) if owner != config.node_id.as_bytes() => {
            return Err(StartError::Config(format!(
                "data dir {} belongs to node {:?}, not {:?}",
                config.data_dir.display(),
                String::from_utf8_lossy(&owner),
                config.node_id
            )))
        }
        Some(_) => {}
        None => {
            storage
                .put_meta(META_NODE_ID, config.node_id.as_bytes().to_vec())
                .await?
        }
    }
    // A new incarnation on every start: dots minted after a crash never reuse lost ones.
    // Seconds since the epoch (like Cassandra's generation) so that a node wiped and started
    // again under its old id still supersedes what the cluster remembers of it.
    let epoch_secs = config.clock.now_ms() / 1000;
    let incarnation = (decode_u64(&storage, META_INCARNATION).await? + 1).max(epoch_secs);
    storage
        .put_meta(META_INCARNATION, incarnation.to_be_bytes().to_vec())
        .await?;

    let mut me = MemberState {
        id: config.node_id.clone(),
        address: address.clone(),
        incarnation,
        tokens: Vec::new(),
        status: STATUS_NORMAL.into(),
        zone: config.zone.clone(),
        ..Default::default()
    };
    let mut membership_config = config.membership.clone();
    membership_config.default_replication = config.coordinator.replication_factor as u32;
    let schema = gossip::load_schema(&storage).await;
    let known = gossip::load_members(&storage).await;
    // On a first start the node serves gossip first and founds the cluster or takes its
    // share of it in the background (`found`); till then it has no tokens.
    let (tokens, status) = found::saved(&storage)
        .await?
        .unwrap_or_else(|| (Vec::new(), STATUS_JOINING.to_string()));
    me.status = status;
    me.tokens = tokens;
    let membership = Arc::new(Membership::new(me, known, membership_config));
    membership.schema().merge(&schema.collections);
    membership.schema().indexes().merge(&schema.indexes);
    membership.schema().tokens().merge(&schema.tokens);
    // From here on storage maintains exactly the live index definitions.
    membership
        .schema()
        .indexes()
        .attach(storage.indexes().clone());
    gossip::persist(&membership, &storage).await;
    let transport = crate::cluster::Watched::wrap(transport, membership.clone());

    let actor = format!("{}.{}", config.node_id, incarnation);
    let hints = Hints::open(
        storage.clone(),
        membership.clone(),
        config.hints.clone(),
        config.clock.clone(),
    )
    .await?;
    let anti_entropy = Arc::new(AntiEntropy::new(
        membership.clone(),
        storage.clone(),
        hints.clone(),
        transport.clone(),
        config.aae.clone(),
        config.clock.clone(),
    ));
    let coordinator = Arc::new(Coordinator::new(
        membership.clone(),
        storage.clone(),
        transport.clone(),
        hints,
        actor,
        config.coordinator.clone(),
        config.clock.clone(),
    ));

    let queries = Arc::new(QueryEngine::new(coordinator.clone(), membership.clone()));
    Ok(Assembled {
        membership,
        coordinator,
        anti_entropy,
        index_build: config.index_build.clone(),
        founding: found::FoundingConfig::new(config.vnodes),
        queries,
        transport,
    })
}

/// Set the health of the client service and of the whole server ("").
async fn report(health: &tonic_health::server::HealthReporter, ready: bool) {
    use tonic_health::ServingStatus;
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    if ready {
        health.set_serving::<ClientServer<ClientService>>().await;
    } else {
        health
            .set_not_serving::<ClientServer<ClientService>>()
            .await;
    }
}

/// Keep the health service in step with `Membership::readiness`, so orchestrators and
/// clients can tell when a node (and a new cluster) is ready.
async fn report_readiness(
    health: tonic_health::server::HealthReporter,
    membership: Arc<Membership>,
) {
    let mut ready = false;
    loop {
        let now = membership.readiness().is_ok();
        if now != ready {
            tracing::info!(
                ready = now,
                "client requests are {}",
                if now { "served" } else { "refused" }
            );
            report(&health, now).await;
            ready = now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open sled, assemble the node, and start serving gRPC on `config.listen`.
pub async fn start(config: NodeConfig) -> Result<RunningNode, StartError> {
    check(&config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError::Config(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let (dir, cache, every) = (
        config.data_dir.clone(),
        config.cache_bytes,
        config.background_flush_ms,
    );
    let engine = tokio::task::spawn_blocking(move || SledEngine::open(&dir, cache, every))
        .await
        .map_err(|e| StartError::Server(e.to_string()))??;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let http_listener = match &config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| StartError::Server(e.to_string()))?;
    let address = config
        .advertise
        .clone()
        .unwrap_or_else(|| bound.to_string());

    let security = &config.security;
    let tls = match &security.tls {
        Some(files) => {
            Some(Tls::load(files.clone()).map_err(|e| StartError::Config(format!("TLS: {e}")))?)
        }
        None => None,
    };
    // Without TLS nodes prove membership with the cluster secret: the one given, else (with
    // authentication on) one derived from the bootstrap token.
    let secret = security
        .cluster_secret
        .clone()
        .or_else(|| security.bootstrap_token.as_deref().map(derived_secret));
    let credential = NodeCredential::new(secret.as_deref()).map_err(StartError::Config)?;
    let secret_hash = secret.as_deref().map(hash);
    let transition = security.transition;
    let (guard, dial_tls) = match (&tls, transition) {
        (Some(_), Transition::None) => (NodeGuard::Certificate, tls.clone()),
        (Some(_), Transition::DialPlaintext) => (NodeGuard::Transitional(secret_hash), None),
        (Some(_), Transition::DialTls) => (NodeGuard::Transitional(secret_hash), tls.clone()),
        (None, _) => match secret_hash {
            Some(h) => (NodeGuard::Secret(h), None),
            None => (NodeGuard::Open, None),
        },
    };
    let grpc = Arc::new(GrpcTransport::secured(
        Duration::from_millis(500),
        dial_tls,
        credential,
    ));
    let parts = assemble(&config, Arc::new(engine), grpc.clone(), address.clone()).await?;
    let view = parts.membership.clone();
    grpc.on_refused(Arc::new(move |address: &str, why: &str| {
        view.note_refused(address, why);
    }));
    let (membership, coordinator) = (parts.membership.clone(), parts.coordinator.clone());
    let auth = Arc::new(match &security.bootstrap_token {
        Some(token) => Auth::on(membership.clone(), token),
        None => Auth::off(membership.clone()),
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    // The client service (and the server as a whole, "") is SERVING once this node takes
    // client requests: it has tokens and nobody is forming the cluster.
    report(&health, false).await;
    health
        .set_serving::<InternodeServer<InternodeService>>()
        .await;
    health.set_serving::<AdminServer<AdminService>>().await;
    // Both reflection versions: grpcurl speaks v1, but many tools and Python's reflection
    // client still speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ringdb_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartError::Server(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartError::Server(e.to_string()))?;
    let client_limit = config.max_document_bytes + 1024 * 1024;
    let limits = crate::api::wire::WireLimits {
        max_message_bytes: client_limit,
        max_document_bytes: config.max_document_bytes,
    };
    let client_service = ClientService::new(
        coordinator.clone(),
        limits,
        parts.queries.clone(),
        auth.clone(),
    );
    let router = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(move |r| {
            limits.rewrite(r)
        }))
        .initial_stream_window_size(crate::transport::grpc::STREAM_WINDOW)
        .initial_connection_window_size(crate::transport::grpc::CONNECTION_WINDOW)
        .add_service(
            ClientServer::new(client_service.clone())
                .max_decoding_message_size(client_limit)
                .max_encoding_message_size(MAX_INTERNODE_MESSAGE),
        )
        .add_service(tonic::service::interceptor::InterceptedService::new(
            InternodeServer::new(parts.internode_service())
                .max_decoding_message_size(MAX_INTERNODE_MESSAGE)
                .max_encoding_message_size(MAX_INTERNODE_MESSAGE),
            guard,
        ))
        .add_service(
            AdminServer::new(AdminService::new(
                coordinator.clone(),
                membership.clone(),
                parts.anti_entropy.clone(),
                auth.clone(),
            ))
            .max_decoding_message_size(client_limit)
            .max_encoding_message_size(MAX_INTERNODE_MESSAGE),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let stopped = async {
        let _ = shutdown_rx.await;
    };
    let mut background = Vec::new();
    let server = match &tls {
        Some(tls) => {
            background.push(tokio::spawn(tls.clone().watch()));
            let plaintext_too = transition != Transition::None;
            let incoming = tls::incoming(listener, tls.clone(), plaintext_too);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
        }
        None => {
            // Without TCP_NODELAY on accepted sockets, small responses wait ~40 ms for
            // delayed ACKs.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
        }
    };
    background.extend(parts.spawn_background(config.seeds.clone()));
    let http_address = match http_listener {
        Some(l) => {
            let at = l
                .local_addr()
                .map_err(|e| StartError::Server(e.to_string()))?
                .to_string();
            let api = crate::api::http::HttpApi::new(
                client_service,
                auth.clone(),
                membership.clone(),
                limits,
            );
            background.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(l, api.router()).await {
                    tracing::error!(error = %e, "the HTTP API stopped");
                }
            }));
            tracing::info!(address = %at, "HTTP API serving");
            Some(at)
        }
        None => None,
    };
    background.push(tokio::spawn(report_readiness(health, membership.clone())));
    tracing::info!(
        node = %config.node_id,
        %address,
        tls = tls.is_some(),
        auth = auth.enabled(),
        "serving"
    );
    Ok(RunningNode {
        address,
        membership,
        coordinator,
        http_address,
        shutdown: Some(shutdown_tx),
        server,
        background,
    })
}
