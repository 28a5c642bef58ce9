//! Consistency levels: how many of a key's N replicas must answer before a request
//! succeeds, with the one mapping to and from the protobuf enum.
//!
//! Invariants kept here:
//! - an unset level on the wire means QUORUM; an unknown value is an error, never a guess;
//! - ANY is for writes only, and no level may need more replicas than N.

use std::fmt;
use std::str::FromStr;

use ringdb_proto::v1::ConsistencyLevel;

use crate::error::InvalidArgument;

/// How many of a key's replicas must answer before a request succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of the N replicas, floor(N/2) + 1 (the default).
    Quorum,
    /// All N replicas.
    All,
    /// Writes only: any single acknowledgement.
    Any,
}

impl Level {
    /// Every level, for completion and help texts.
    pub const ALL_LEVELS: [Level; 6] = [
        Level::One,
        Level::Two,
        Level::Three,
        Level::Quorum,
        Level::All,
        Level::Any,
    ];

    /// Acknowledgements needed with replication factor `n`.
    pub fn required(self, n: usize) -> usize {
        match self {
            Level::One | Level::Any => 1,
            Level::Two => 2,
            Level::Three => 3,
            Level::Quorum => n / 2 + 1,
            Level::All => n,
        }
    }

    /// The level a wire value names; `None` when unset or unknown. For reports (a trace),
    /// where a missing level shows as missing rather than as the default.
    pub fn known(v: i32) -> Option<Level> {
        match ConsistencyLevel::try_from(v).ok()? {
            ConsistencyLevel::One => Some(Level::One),
            ConsistencyLevel::Two => Some(Level::Two),
            ConsistencyLevel::Three => Some(Level::Three),
            ConsistencyLevel::Quorum => Some(Level::Quorum),
            ConsistencyLevel::All => Some(Level::All),
            ConsistencyLevel::Any => Some(Level::Any),
            ConsistencyLevel::Unspecified => None,
        }
    }

    /// A request's level from the wire: unset means QUORUM, an unknown value is an error.
    pub fn from_proto(v: i32) -> Result<Level, InvalidArgument> {
        if v == ConsistencyLevel::Unspecified as i32 {
            return Ok(Level::Quorum);
        }
        Level::known(v).ok_or_else(|| {
            InvalidArgument::new(format!(
                "unknown consistency level {v}; use ONE, TWO, THREE, QUORUM, ALL or (writes only) ANY"
            ))
        })
    }

    /// The wire form.
    pub fn to_proto(self) -> ConsistencyLevel {
        match self {
            Level::One => ConsistencyLevel::One,
            Level::Two => ConsistencyLevel::Two,
            Level::Three => ConsistencyLevel::Three,
            Level::Quorum => ConsistencyLevel::Quorum,
            Level::All => ConsistencyLevel::All,
            Level::Any => ConsistencyLevel::Any,
        }
    }

    /// The level's name as users type it and messages print it ("QUORUM").
    pub fn name(self) -> &'static str {
        match self {
            Level::One => "ONE",
            Level::Two => "TWO",
            Level::Three => "THREE",
            Level::Quorum => "QUORUM",
            Level::All => "ALL",
            Level::Any => "ANY",
        }
    }

    /// Reject levels that can never be met with replication factor `n`, or ANY on a read.
    pub fn check(self, n: usize, is_read: bool) -> Result<(), InvalidArgument> {
        if is_read && self == Level::Any {
            return Err(InvalidArgument::new(
                "consistency ANY is for writes only; reads need at least ONE".into(),
            ));
        }
        if self.required(n) > n {
            return Err(InvalidArgument::new(format!(
                "consistency {self} needs {} replicas but the replication factor is {n}",
                self.required(n)
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = InvalidArgument;

    /// A level as a user types it: its name in any case, or 1, 2 or 3.
    fn from_str(s: &str) -> Result<Self, InvalidArgument> {
        match s.to_ascii_uppercase().as_str() {
            "ONE" | "1" => Ok(Level::One),
            "TWO" | "2" => Ok(Level::Two),
            "THREE" | "3" => Ok(Level::Three),
            "QUORUM" => Ok(Level::Quorum),
            "ALL" => Ok(Level::All),
            "ANY" => Ok(Level::Any),
            _ => Err(InvalidArgument::new(format!(
                "unknown consistency level {s:?}; use ONE, TWO, THREE, QUORUM, ALL or ANY"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_majority_and_levels_above_n_are_rejected() {
        assert_eq!(Level::Quorum.required(3), 2);
        assert_eq!(Level::Quorum.required(5), 3);
        assert_eq!(Level::All.required(3), 3);
        assert!(Level::Three.check(2, false).is_err());
        assert!(Level::Any.check(3, true).is_err());
        assert!(Level::Any.check(3, false).is_ok());
        assert!(Level::from_proto(42).is_err());
        assert_eq!(Level::from_proto(0).unwrap(), Level::Quorum);
    }

    #[test]
    fn every_level_survives_the_wire_and_its_name() {
        for l in Level::ALL_LEVELS {
            assert_eq!(Level::from_proto(l.to_proto() as i32), Ok(l));
            assert_eq!(Level::known(l.to_proto() as i32), Some(l));
            assert_eq!(l.to_string().parse::<Level>(), Ok(l));
            assert_eq!(l.to_string().to_lowercase().parse::<Level>(), Ok(l));
        }
        assert_eq!(Level::known(0), None, "unset is not a level of its own");
        assert_eq!(Level::known(42), None);
        assert_eq!("2".parse::<Level>(), Ok(Level::Two));
    }

    #[test]
    fn errors_keep_their_wording() {
        let e = Level::from_proto(42).unwrap_err();
        assert_eq!(
            e.message(),
            "unknown consistency level 42; use ONE, TWO, THREE, QUORUM, ALL or (writes only) ANY"
        );
        let e = "most".parse::<Level>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument: unknown consistency level \"most\"; use ONE, TWO, THREE, QUORUM, ALL or ANY"
        );
        assert_eq!(
            Level::Three.check(2, false).unwrap_err().message(),
            "consistency THREE needs 3 replicas but the replication factor is 2"
        );
        assert_eq!(
            Level::Any.check(3, true).unwrap_err().message(),
            "consistency ANY is for writes only; reads need at least ONE"
        );
        let s = tonic::Status::from(e);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }
}
