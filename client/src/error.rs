//! Client errors, mapped once from gRPC status codes.

use tonic::Code;

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed; each variant says whether a write may have been applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad key, document, level or context; nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Too few live replicas for the level; nothing was written.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The level was not met in time; a write may still have been stored.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The cluster is overloaded or a limit was hit; the request was not applied.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A collection or object that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// What was to be created exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The cluster is not in a state that allows the request (another topology change
    /// under way, a node that is up when it should be down, ...); nothing was changed.
    #[error("refused: {0}")]
    FailedPrecondition(String),
    /// Credentials missing or wrong.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Credentials lack the permission.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No node answered; for writes, whether one was applied is unknown only if a
    /// connection broke mid-request (then this says so).
    #[error("no node reachable: {0}")]
    Unreachable(String),
    /// A document could not be converted to or from the requested type.
    #[error("document conversion: {0}")]
    Document(String),
    /// An [`update`](crate::Client::update) kept meeting concurrent writes and gave up; its
    /// writes were stored (nothing is lost) but siblings remain for the next read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server failed unexpectedly.
    #[error("server error: {0}")]
    Internal(String),
}

impl Error {
    /// The gRPC status code name, as the shell and JSON output show it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) | Error::Document(_) => "INVALID_ARGUMENT",
            Error::Unavailable(_) | Error::Unreachable(_) => "UNAVAILABLE",
            Error::Timeout(_) => "DEADLINE_EXCEEDED",
            Error::Overloaded(_) => "RESOURCE_EXHAUSTED",
            Error::NotFound(_) => "NOT_FOUND",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
            Error::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::Conflict(_) => "ABORTED",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The server's (or client's) message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::Unavailable(m)
            | Error::Timeout(m)
            | Error::Overloaded(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::Unreachable(m)
            | Error::Document(m)
            | Error::Conflict(m)
            | Error::Internal(m) => m,
        }
    }

    /// The same kind of error with another message (to add what the client tried).
    pub(crate) fn with_message(mut self, message: String) -> Error {
        match &mut self {
            Error::InvalidArgument(m)
            | Error::Unavailable(m)
            | Error::Timeout(m)
            | Error::Overloaded(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::Unreachable(m)
            | Error::Document(m)
            | Error::Conflict(m)
            | Error::Internal(m) => *m = message,
        }
        self
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(m),
            Code::FailedPrecondition => Error::FailedPrecondition(m),
            Code::AlreadyExists => Error::AlreadyExists(m),
            Code::Unavailable => Error::Unavailable(m),
            Code::DeadlineExceeded => Error::Timeout(m),
            Code::ResourceExhausted => Error::Overloaded(m),
            Code::NotFound => Error::NotFound(m),
            Code::Unauthenticated => Error::Unauthenticated(m),
            Code::PermissionDenied => Error::PermissionDenied(m),
            Code::Aborted => Error::Conflict(m),
            _ => Error::Internal(m),
        }
    }
}

impl From<ringdb_wire::InvalidArgument> for Error {
    /// A level or durability that does not exist (as a user typed it, say).
    fn from(e: ringdb_wire::InvalidArgument) -> Self {
        Error::InvalidArgument(e.into_message())
    }
}

/// The status message and its root cause, for messages ("tcp connect error: Connection
/// refused (os error 111)"). Statuses a server sent carry no cause; local failures do.
pub(crate) fn describe(s: &tonic::Status) -> String {
    let mut root = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = src {
        root = Some(e.to_string());
        src = e.source();
    }
    match root {
        Some(r) if !s.message().contains(&r) => format!("{}: {r}", s.message()),
        _ => s.message().to_string(),
    }
}

/// The message and every cause in lower case when the failure was local (it has a
/// cause), else `None`.
fn chain_text(s: &tonic::Status) -> Option<String> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    src?;
    let mut text = s.message().to_lowercase();
    while let Some(e) = src {
        text.push(' ');
        text.push_str(&e.to_string().to_lowercase());
        src = e.source();
    }
    Some(text)
}

/// Phrases of errors raised before any request bytes were written: while opening a
/// connection (hyper-util's connector), or when hyper hands the request back unsent
/// ("operation was canceled": the connection closed or was not ready). A bare "connect" is
/// not enough: "connection reset" and "connection closed before message completed" happen
/// after a request may have gone out.
const CONNECT_PHASE: [&str; 5] = [
    "tcp connect error",
    "tcp open error",
    "dns error",
    "connection refused",
    "operation was canceled",
];

/// Whether a failed call never reached the server (so even a write is safe to retry elsewhere).
pub(crate) fn never_sent(s: &tonic::Status) -> bool {
    chain_text(s).is_some_and(|t| CONNECT_PHASE.iter().any(|p| t.contains(p)))
}

/// Whether a call failed in transport (locally) rather than with a server's answer.
pub(crate) fn transport_failure(s: &tonic::Status) -> bool {
    chain_text(s).is_some()
}
