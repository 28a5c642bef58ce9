//! Consistency levels: how many of a key's N primary replicas must answer.

use std::fmt;

use ringdb_proto::v1::ConsistencyLevel;

use crate::error::{Error, Result};

/// A request's consistency level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// floor(N/2) + 1 replicas.
    Quorum,
    /// Every replica.
    All,
    /// Writes only: any single acknowledgement.
    Any,
}

impl Level {
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

    /// Parse a wire level; unset means QUORUM.
    pub fn from_proto(v: i32) -> Result<Level> {
        match ConsistencyLevel::try_from(v) {
            Ok(ConsistencyLevel::Unspecified) | Ok(ConsistencyLevel::Quorum) => Ok(Level::Quorum),
            Ok(ConsistencyLevel::One) => Ok(Level::One),
            Ok(ConsistencyLevel::Two) => Ok(Level::Two),
            Ok(ConsistencyLevel::Three) => Ok(Level::Three),
            Ok(ConsistencyLevel::All) => Ok(Level::All),
            Ok(ConsistencyLevel::Any) => Ok(Level::Any),
            Err(_) => Err(Error::InvalidArgument(format!(
                "unknown consistency level {v}; use ONE, TWO, THREE, QUORUM, ALL or (writes only) ANY"
            ))),
        }
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

    /// Reject levels that can never be met with replication factor `n`, or ANY on a read.
    pub fn check(self, n: usize, is_read: bool) -> Result<()> {
        if is_read && self == Level::Any {
            return Err(Error::InvalidArgument(
                "consistency ANY is for writes only; reads need at least ONE".into(),
            ));
        }
        if self.required(n) > n {
            return Err(Error::InvalidArgument(format!(
                "consistency {self} needs {} replicas but the replication factor is {n}",
                self.required(n)
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::One => "ONE",
            Level::Two => "TWO",
            Level::Three => "THREE",
            Level::Quorum => "QUORUM",
            Level::All => "ALL",
            Level::Any => "ANY",
        })
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
}
