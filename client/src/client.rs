//! The client handle: what its clones share (routing state, connections) and the
//! defaults it fills into requests. Requests themselves live in `documents` (gets, puts,
//! deletes), `update` and `admin`; making a client lives in `builder`.

use std::sync::Arc;

use ringdb_wire::token_for;

use crate::error::Result;
use crate::options::{ReadOptions, WriteOptions};
use crate::retry::RetryPolicy;
use crate::routing::{Router, Routing};

/// A connection to a RingDB cluster; cheap to clone and share between tasks (clones share
/// the ring, the connections and the background refresh).
#[derive(Clone)]
pub struct Client {
    pub(crate) router: Arc<Router>,
    pub(crate) retry: RetryPolicy,
    pub(crate) read_defaults: ReadOptions,
    pub(crate) write_defaults: WriteOptions,
    pub(crate) pipelined: bool,
}

impl Client {
    /// Use these read settings when a request does not set its own.
    pub fn with_read_defaults(mut self, o: ReadOptions) -> Self {
        self.read_defaults = o;
        self
    }

    /// Use these write settings (consistency, durability, timeout) when a request does not set its own.
    pub fn with_write_defaults(mut self, o: WriteOptions) -> Self {
        self.write_defaults = WriteOptions { context: None, ..o };
        self
    }

    /// Addresses this client was given.
    pub fn addresses(&self) -> Vec<String> {
        self.router.seeds().to_vec()
    }

    /// How this client picks coordinators.
    pub fn routing(&self) -> Routing {
        self.router.routing()
    }

    /// Addresses a request for this key would try, best first: with token-aware routing
    /// and a known ring, its primary owner first, then the next owners clockwise, then the
    /// rest; otherwise the given addresses in rotation. For tracing and tests.
    pub fn route(&self, collection: &str, key: &str) -> Vec<String> {
        self.router
            .targets(token_for(collection, key))
            .into_iter()
            .map(|t| t.address)
            .collect()
    }

    /// Whether the client holds a ring to route by (token-aware routing only).
    pub fn knows_ring(&self) -> bool {
        self.router.view().is_some()
    }

    /// Fetch the ring now instead of waiting for the background refresh (after adding a
    /// node, say). Fails when no node answers.
    pub async fn refresh_ring(&self) -> Result<()> {
        self.router.refresh().await
    }
}
