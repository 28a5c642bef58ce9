//! Consistency levels: how many of a key's N primary replicas must answer. The level and
//! its protobuf mapping are defined once in `ringdb-wire` (the client shares them); this
//! module only turns a level the node cannot use into its request error.

pub use ringdb_wire::Level;

use crate::error::Error;

impl From<ringdb_wire::InvalidArgument> for Error {
    /// A bad level or durability is the caller's mistake: INVALID_ARGUMENT, same message.
    fn from(e: ringdb_wire::InvalidArgument) -> Self {
        Error::InvalidArgument(e.into_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_the_node_cannot_use_is_an_invalid_argument_with_its_message() {
        let e = Error::from(Level::Three.check(2, false).unwrap_err());
        assert!(
            matches!(&e, Error::InvalidArgument(m)
                if m == "consistency THREE needs 3 replicas but the replication factor is 2"),
            "{e:?}"
        );
    }
}
