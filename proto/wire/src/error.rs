//! The one error of the wire types: a caller named something that does not exist or asked
//! for something that cannot be done. Servers answer it with `INVALID_ARGUMENT` and the
//! message unchanged; nothing was read or written.

/// A consistency level or durability that does not exist, or a level a request cannot use.
///
/// It prints as the client's `Error::InvalidArgument` does ("invalid argument: ..."), so a
/// command line that parses a level shows the same text as before; [`message`] is the text
/// alone, as a server sends it.
///
/// [`message`]: InvalidArgument::message
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument: {0}")]
pub struct InvalidArgument(String);

impl InvalidArgument {
    /// An error with this message.
    pub(crate) fn new(message: String) -> Self {
        InvalidArgument(message)
    }

    /// What was wrong, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// What was wrong, owned (for an error type of the caller's own).
    pub fn into_message(self) -> String {
        self.0
    }
}

impl From<InvalidArgument> for tonic::Status {
    /// Servers answer a bad level or durability with `INVALID_ARGUMENT` and its message.
    fn from(e: InvalidArgument) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}
