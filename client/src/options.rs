//! Per-request settings: consistency, durability, timeout and causal context.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ringdb_proto::v1 as pb;

use crate::Error;

/// How many of a key's replicas must answer before a request succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of the N replicas (the default).
    Quorum,
    /// All N replicas.
    All,
    /// Writes only: any single acknowledgement.
    Any,
}

impl Consistency {
    /// Every level, for completion and help texts.
    pub const ALL_LEVELS: [Consistency; 6] = [
        Consistency::One,
        Consistency::Two,
        Consistency::Three,
        Consistency::Quorum,
        Consistency::All,
        Consistency::Any,
    ];

    /// The level a wire value names; `None` for unset or unknown values.
    pub(crate) fn from_proto(v: i32) -> Option<Consistency> {
        match pb::ConsistencyLevel::try_from(v).ok()? {
            pb::ConsistencyLevel::One => Some(Consistency::One),
            pb::ConsistencyLevel::Two => Some(Consistency::Two),
            pb::ConsistencyLevel::Three => Some(Consistency::Three),
            pb::ConsistencyLevel::Quorum => Some(Consistency::Quorum),
            pb::ConsistencyLevel::All => Some(Consistency::All),
            pb::ConsistencyLevel::Any => Some(Consistency::Any),
            pb::ConsistencyLevel::Unspecified => None,
        }
    }

    pub(crate) fn to_proto(self) -> pb::ConsistencyLevel {
        match self {
            Consistency::One => pb::ConsistencyLevel::One,
            Consistency::Two => pb::ConsistencyLevel::Two,
            Consistency::Three => pb::ConsistencyLevel::Three,
            Consistency::Quorum => pb::ConsistencyLevel::Quorum,
            Consistency::All => pb::ConsistencyLevel::All,
            Consistency::Any => pb::ConsistencyLevel::Any,
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::One => "ONE",
            Consistency::Two => "TWO",
            Consistency::Three => "THREE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
            Consistency::Any => "ANY",
        })
    }
}

impl FromStr for Consistency {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "ONE" | "1" => Ok(Consistency::One),
            "TWO" | "2" => Ok(Consistency::Two),
            "THREE" | "3" => Ok(Consistency::Three),
            "QUORUM" => Ok(Consistency::Quorum),
            "ALL" => Ok(Consistency::All),
            "ANY" => Ok(Consistency::Any),
            _ => Err(Error::InvalidArgument(format!(
                "unknown consistency level {s:?}; use ONE, TWO, THREE, QUORUM, ALL or ANY"
            ))),
        }
    }
}

/// When replicas may acknowledge a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// After fsync (group commit); survives a crash. The default.
    Durable,
    /// Once in memory; a crash of every acknowledging replica within about a second may lose it.
    Memory,
}

impl Durability {
    pub(crate) fn to_proto(self) -> pb::Durability {
        match self {
            Durability::Durable => pb::Durability::Durable,
            Durability::Memory => pb::Durability::Memory,
        }
    }
}

impl FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "DURABLE" => Ok(Durability::Durable),
            "MEMORY" => Ok(Durability::Memory),
            _ => Err(Error::InvalidArgument(format!(
                "unknown durability {s:?}; use DURABLE or MEMORY"
            ))),
        }
    }
}

/// Opaque causal context: what a read saw, or what a write wrote. Hand it back on the
/// next write of the same key to supersede exactly those versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(String);

impl Context {
    /// Wrap a token printed earlier (by the shell, say).
    pub fn from_token(token: impl Into<String>) -> Self {
        Context(token.into())
    }

    /// The token form, safe to print and store.
    pub fn token(&self) -> &str {
        &self.0
    }

    /// Whether this context has seen nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Options for one read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub(crate) consistency: Option<Consistency>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) trace: Option<bool>,
}

impl ReadOptions {
    /// Client defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replicas that must answer.
    pub fn consistency(mut self, c: Consistency) -> Self {
        self.consistency = Some(c);
        self
    }

    /// How long the coordinator waits for them.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Ask the coordinator for a [`Trace`](crate::Trace) of what it did (replicas asked,
    /// latencies, read repair), returned in [`GetResult::trace`](crate::GetResult::trace).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = Some(on);
        self
    }
}

/// Options for one write or delete.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub(crate) context: Option<Context>,
    pub(crate) consistency: Option<Consistency>,
    pub(crate) durability: Option<Durability>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) trace: Option<bool>,
}

impl WriteOptions {
    /// Client defaults, no context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Supersede the versions this context covers. A context that has seen nothing (that
    /// of a read that found no document) supersedes nothing: a put with it is a blind write
    /// and a delete with it deletes nothing.
    pub fn context(mut self, c: Context) -> Self {
        self.context = Some(c);
        self
    }

    /// Replicas that must acknowledge.
    pub fn consistency(mut self, c: Consistency) -> Self {
        self.consistency = Some(c);
        self
    }

    /// When they may acknowledge.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = Some(d);
        self
    }

    /// How long the coordinator waits.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Let the document expire this long after the write (whole seconds, at least one):
    /// from then on every read sees it as deleted. Without it the collection's default
    /// TTL applies, if it has one.
    pub fn ttl(mut self, t: Duration) -> Self {
        self.ttl = Some(t.max(Duration::from_secs(1)));
        self
    }

    /// Ask the coordinator for a [`Trace`](crate::Trace) of what it did (replicas written,
    /// latencies, hints, forwarding), returned in [`WriteResult::trace`](crate::WriteResult::trace).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = Some(on);
        self
    }
}
