//! gRPC services: client, internode and admin, all served on one port, and the HTTP/JSON
//! side on a port of its own (`http`). This is the one place request errors become status
//! codes.

pub mod admin;
pub mod auth;
pub mod client;
pub mod http;
mod indexes;
pub mod internode;
pub mod pipeline;
pub mod query;
mod tokens;
pub mod wire;

use std::time::Duration;

use tonic::Status;

use crate::error::Error;
use crate::storage::Durability;

/// Longest timeout a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::InvalidArgument(m) => Status::invalid_argument(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Timeout(m) => Status::deadline_exceeded(m),
            Error::Overloaded(m) => Status::resource_exhausted(m),
            Error::Internal(m) => Status::internal(m),
        }
    }
}

/// Parse a wire durability (unset means durable) into the storage layer's.
pub fn durability(v: i32) -> Result<Durability, Error> {
    Ok(crate::coordinator::storage_durability(
        ringdb_wire::Durability::from_proto(v)?,
    ))
}

/// A request's timeout: 0 means the default; capped at `MAX_TIMEOUT`.
pub fn timeout(ms: u32, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms as u64).min(MAX_TIMEOUT)
    }
}
