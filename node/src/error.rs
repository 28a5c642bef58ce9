//! The node's one request error type; `api` maps it to gRPC status codes in one place.

use crate::storage::StorageError;

/// Why a client request failed, in the terms the contract promises (see docs/consistency.md).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad key, document, level or context; nothing was written.
    #[error("{0}")]
    InvalidArgument(String),
    /// Too few live replicas to try; nothing was written.
    #[error("{0}")]
    Unavailable(String),
    /// The level was not met in time; the write may still have been stored.
    #[error("{0}")]
    Timeout(String),
    /// Overload or limits; the request was not applied.
    #[error("{0}")]
    Overloaded(String),
    /// Something that should not happen; see the node's log.
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Overloaded(_) => Error::Overloaded(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Shorthand for request results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
