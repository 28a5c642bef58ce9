//! Durability: when replicas may acknowledge a write, with the one mapping to and from the
//! protobuf enum. An unset durability on the wire means DURABLE; an unknown value is an
//! error.

use std::str::FromStr;

use ringdb_proto::v1 as pb;

use crate::error::InvalidArgument;

/// When replicas may acknowledge a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// After fsync (group commit); survives a crash. The default.
    Durable,
    /// Once in memory; a crash of every acknowledging replica within about a second may lose it.
    Memory,
}

impl Durability {
    /// A request's durability from the wire: unset means durable, an unknown value is an error.
    pub fn from_proto(v: i32) -> Result<Durability, InvalidArgument> {
        match pb::Durability::try_from(v) {
            Ok(pb::Durability::Memory) => Ok(Durability::Memory),
            Ok(pb::Durability::Durable | pb::Durability::Unspecified) => Ok(Durability::Durable),
            Err(_) => Err(InvalidArgument::new(format!(
                "unknown durability {v}; use DURABLE or MEMORY"
            ))),
        }
    }

    /// The wire form.
    pub fn to_proto(self) -> pb::Durability {
        match self {
            Durability::Durable => pb::Durability::Durable,
            Durability::Memory => pb::Durability::Memory,
        }
    }
}

impl FromStr for Durability {
    type Err = InvalidArgument;

    /// A durability as a user types it: its name in any case.
    fn from_str(s: &str) -> Result<Self, InvalidArgument> {
        match s.to_ascii_uppercase().as_str() {
            "DURABLE" => Ok(Durability::Durable),
            "MEMORY" => Ok(Durability::Memory),
            _ => Err(InvalidArgument::new(format!(
                "unknown durability {s:?}; use DURABLE or MEMORY"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_durable_and_unknown_is_an_error() {
        assert_eq!(Durability::from_proto(0), Ok(Durability::Durable));
        for d in [Durability::Durable, Durability::Memory] {
            assert_eq!(Durability::from_proto(d.to_proto() as i32), Ok(d));
        }
        assert_eq!(
            Durability::from_proto(9).unwrap_err().message(),
            "unknown durability 9; use DURABLE or MEMORY"
        );
        assert_eq!("memory".parse::<Durability>(), Ok(Durability::Memory));
        assert_eq!(
            "fast".parse::<Durability>().unwrap_err().message(),
            "unknown durability \"fast\"; use DURABLE or MEMORY"
        );
    }
}
