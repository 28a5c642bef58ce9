//! TLS on the node's one port: a listener that accepts only TLS, with the certificate, key
//! and CA read again from their files whenever they change (new connections use the new
//! ones, open connections keep theirs), and the client side of internode connections.
//!
//! Invariants kept here:
//! - a client certificate is optional at the handshake (clients authenticate with tokens),
//!   but one that is presented must chain to the cluster CA; the internode service then
//!   serves only connections that presented one (see `super::NodeGuard`);
//! - a file change that does not parse (a half-written file, a key that does not match)
//!   keeps the previous material and is logged; the node never stops serving over it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// How often the certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a node's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The node's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster CA (PEM): node certificates, and the nodes clients talk to, chain to it.
    pub ca: PathBuf,
}

/// Why TLS material is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// One reading of the three files.
#[derive(Clone, PartialEq, Eq)]
struct Pems {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl Pems {
    fn read(files: &TlsFiles) -> Result<Pems, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TlsError(format!("cannot read {}: {e}", p.display())))
        };
        Ok(Pems {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            ca: read(&files.ca)?,
        })
    }
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{what}: no PEM certificate in it")));
    }
    Ok(certs)
}

/// The ring provider, as tonic's `tls-ring` uses it (aws-lc-rs would add a cmake/C build);
/// rustls marks it deprecated only for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    tokio_rustls::rustls::crypto::ring::default_provider()
}

fn server_config(p: &Pems, files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = certs(&p.cert, &files.cert.display().to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&p.key)
        .map_err(|e| TlsError(format!("{}: {e}", files.key.display())))?;
    let mut roots = RootCertStore::empty();
    for c in certs(&p.ca, &files.ca.display().to_string())? {
        roots
            .add(c)
            .map_err(|e| TlsError(format!("{}: {e}", files.ca.display())))?;
    }
    let provider = Arc::new(provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError(format!("{}: {e}", files.ca.display())))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError(format!(
                "{} and {} do not make a usable identity: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

struct Current {
    pems: Pems,
    server: Arc<ServerConfig>,
}

/// A node's TLS material, read again from its files when they change.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Current>,
    generation: AtomicU64,
}

impl Tls {
    /// Read and check the files; fails if they do not make a usable server identity.
    pub fn load(files: TlsFiles) -> Result<Arc<Tls>, TlsError> {
        let pems = Pems::read(&files)?;
        let server = Arc::new(server_config(&pems, &files)?);
        Ok(Arc::new(Tls {
            files,
            current: RwLock::new(Current { pems, server }),
            generation: AtomicU64::new(0),
        }))
    }

    /// Counts reloads: peer connections made before a change are remade after it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn server(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .server
            .clone()
    }

    /// What internode connections present and trust: the node's own certificate and the CA.
    pub fn client_config(&self) -> tonic::transport::ClientTlsConfig {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&c.pems.ca))
            .identity(tonic::transport::Identity::from_pem(
                &c.pems.cert,
                &c.pems.key,
            ))
    }

    /// Read the files again; returns whether the material changed (and was usable).
    pub fn reload(&self) -> bool {
        let pems = match Pems::read(&self.files) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "TLS files unreadable; keeping the current ones");
                return false;
            }
        };
        if self.current.read().unwrap_or_else(|p| p.into_inner()).pems == pems {
            return false;
        }
        match server_config(&pems, &self.files) {
            Ok(server) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current {
                    pems,
                    server: Arc::new(server),
                };
                self.generation.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "new TLS files unusable; keeping the current ones");
                false
            }
        }
    }

    /// Check the files every [`RELOAD_EVERY`] until aborted.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
        }
    }
}

/// One accepted connection: TLS, or (only in the transitional mode) plaintext.
pub enum Conn {
    /// A completed TLS handshake.
    Tls(Box<TlsStream<TcpStream>>),
    /// A plaintext connection, accepted only while the cluster moves to TLS.
    Plain(TcpStream),
}

/// What the services learn about a connection (in the request extensions).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client certificate chain it presented, already verified against the CA.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// Whether it is TLS at all.
    pub tls: bool,
    /// The remote address.
    pub remote: Option<SocketAddr>,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Conn::Tls(t) => {
                let (tcp, session) = t.get_ref();
                PeerInfo {
                    certs: session
                        .peer_certificates()
                        .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect())),
                    tls: true,
                    remote: tcp.peer_addr().ok(),
                }
            }
            Conn::Plain(tcp) => PeerInfo {
                certs: None,
                tls: false,
                remote: tcp.peer_addr().ok(),
            },
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Conn::Plain(t) => Pin::new(t).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Conn::Plain(t) => Pin::new(t).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
            Conn::Plain(t) => Pin::new(t).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tls(t) => t.is_write_vectored(),
            Conn::Plain(t) => t.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Conn::Plain(t) => Pin::new(t).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Conn::Plain(t) => Pin::new(t).poll_shutdown(cx),
        }
    }
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// Accept one connection: TLS, or plaintext when `plaintext_too` and its first byte is not
/// a TLS handshake (HTTP/2 starts with `P`).
async fn accept(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    plaintext_too: bool,
) -> std::io::Result<Conn> {
    if plaintext_too {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
            return Ok(Conn::Plain(tcp));
        }
    }
    Ok(Conn::Tls(Box::new(acceptor.accept(tcp).await?)))
}

/// The connections of `listener` that completed a TLS handshake with the current
/// material (and, when `plaintext_too`, plaintext ones); each handshake runs on its own
/// task so a slow one holds up no other.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
    plaintext_too: bool,
) -> ReceiverStream<Result<Conn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            // Without TCP_NODELAY small responses wait ~40 ms for delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.server());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(tcp, acceptor, plaintext_too))
                    .await
                {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
