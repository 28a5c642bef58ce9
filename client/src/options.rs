//! Per-request settings: consistency, durability, timeout and causal context. The level
//! and durability themselves are `ringdb-wire`'s, shared with the node.

use std::fmt;
use std::time::Duration;

use ringdb_wire::{Durability, Level as Consistency};

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
