//! Reaching a node's admin service from the command line: the `--host` argument, the
//! connection, and how a refused request reads.

use std::time::Duration;

use anyhow::Context;
use ringdb_proto::v1::admin_client::AdminClient;
use tonic::transport::Channel;

/// Where to find the node to ask.
#[derive(clap::Args, Clone)]
pub struct HostArg {
    /// Node to ask, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub host: String,
}

/// A connection to the node's admin service (calls may take up to 30 s).
pub async fn connect(host: &HostArg) -> anyhow::Result<AdminClient<Channel>> {
    connect_for(host, Duration::from_secs(30)).await
}

/// A connection whose calls may take up to `patience` (a repair pass can take minutes).
pub async fn connect_for(
    host: &HostArg,
    patience: Duration,
) -> anyhow::Result<AdminClient<Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", host.host))
        .with_context(|| format!("bad address {:?}", host.host))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(patience);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", host.host))?;
    Ok(AdminClient::new(channel))
}

/// A refused request as `CODE: message`.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}
