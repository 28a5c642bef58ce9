//! Reaching a node's admin service from the command line: the `--host` argument, the
//! connection, and how a refused request reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ringdb_proto::v1::admin_client::AdminClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// Where to find the node to ask, and how to be let in.
#[derive(clap::Args, Clone)]
pub struct HostArg {
    /// Node to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub host: String,
    /// The cluster CA (PEM): connect with TLS and verify the node against it.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Access token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, env = "RINGDB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The admin stub the commands use.
pub type Admin = AdminClient<InterceptedService<Channel, Bearer>>;

/// A connection to the node's admin service (calls may take up to 30 s).
pub async fn connect(host: &HostArg) -> anyhow::Result<Admin> {
    connect_for(host, Duration::from_secs(30)).await
}

/// A connection whose calls may take up to `patience` (a repair pass can take minutes).
pub async fn connect_for(host: &HostArg, patience: Duration) -> anyhow::Result<Admin> {
    let scheme = if host.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", host.host))
        .with_context(|| format!("bad address {:?}", host.host))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(patience);
    if let Some(ca) = &host.tls_ca {
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .context("TLS settings")?;
    }
    let bearer = match &host.token {
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse()
                .context("the token must be printable ASCII")?,
        ),
        None => None,
    };
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {}", host.host, chain(&e)))?;
    Ok(AdminClient::with_interceptor(channel, Bearer(bearer)))
}

/// An error with its causes (a TLS refusal is a few levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A refused request as `CODE: message`.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}
