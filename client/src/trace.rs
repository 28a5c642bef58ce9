//! Request traces: what happened inside the cluster for one get, put or delete, as the
//! coordinator recorded it. Ask with [`ReadOptions::trace`](crate::ReadOptions::trace) or
//! [`WriteOptions::trace`](crate::WriteOptions::trace); untraced requests record nothing.

use std::time::Duration;

use ringdb_proto::v1 as pb;

use ringdb_wire::Level as Consistency;

/// What the coordinator of one request did, as of its answer: for seeing where a request
/// went, which replicas were slow or down, whether replies differed and what was repaired.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// `"read"`, `"write"` or `"delete"`.
    pub operation: String,
    /// Id of the node that took the request.
    pub coordinator: String,
    /// The key's token on the ring.
    pub token: i64,
    /// The key's N primary replicas in preference order, and whether the coordinator
    /// believed each up.
    pub replicas: Vec<TracedReplica>,
    /// The request's consistency level (`None` if the server named one this client does
    /// not know).
    pub consistency: Option<Consistency>,
    /// How many primary replicas the level needed.
    pub required: u32,
    /// Each replica's part, in the order the coordinator considered them.
    pub events: Vec<ReplicaEvent>,
    /// Reads: whether the replies' sibling sets differed.
    pub replies_differed: bool,
    /// Reads: replicas sent the merged sibling set because they answered with less (read
    /// repair, in the background after the answer).
    pub read_repaired: Vec<String>,
    /// Writes: replicas for which the coordinator stored a hint.
    pub hinted_for: Vec<String>,
    /// Reads: whether replicas held in reserve were asked (speculative retry).
    pub speculative: bool,
    /// A write whose coordinator was not a replica: the node that forwarded it.
    pub forwarded_from: Option<String>,
    /// A write whose coordinator was not a replica: the replica that minted and
    /// replicated it.
    pub forwarded_to: Option<String>,
    /// From the coordinator taking the request to its answer.
    pub total: Duration,
    /// A delete without a context reads first: that read's trace.
    pub read: Option<Box<Trace>>,
    /// Anything else the coordinator had to say.
    pub note: Option<String>,
}

/// One of a key's replicas as the coordinator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedReplica {
    /// Node id.
    pub node: String,
    /// Whether the coordinator believed it up.
    pub up: bool,
}

/// Why a replica took part in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The coordinator's own copy, without the network.
    Local,
    /// Another primary replica, asked at once.
    Replica,
    /// The replica a non-replica coordinator handed the write to.
    Forwarded,
    /// A primary replica a read held in reserve for speculative retry.
    Standby,
    /// A joining node that gets the write without it counting.
    Joining,
    /// A role this client does not know (a newer server).
    Unknown,
}

/// How a replica's part ended, as of the coordinator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered or acknowledged.
    Ok,
    /// Refused, unreachable or failed.
    Failed,
    /// No answer by the deadline.
    Timeout,
    /// Not asked: down, or held in reserve and not needed.
    NotAsked,
    /// Asked and still working when the coordinator answered.
    Pending,
    /// An outcome this client does not know (a newer server).
    Unknown,
}

/// One replica's part in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaEvent {
    /// Node id.
    pub node: String,
    /// Why it took part.
    pub role: Role,
    /// How it ended.
    pub outcome: Outcome,
    /// From asking to the answer; `None` when it was not asked or had not answered.
    pub latency: Option<Duration>,
    /// Why it failed, that it was down, whether a hint was stored, ...
    pub detail: String,
    /// Reads: a hash of the sibling set it returned (`None` when it held nothing or did
    /// not answer), so differing replies show.
    pub digest: Option<u64>,
}

impl Role {
    /// Lower-case name, as the shell prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Local => "local",
            Role::Replica => "replica",
            Role::Forwarded => "forwarded",
            Role::Standby => "standby",
            Role::Joining => "joining",
            Role::Unknown => "unknown",
        }
    }
}

impl Outcome {
    /// Lower-case name, as the shell prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::NotAsked => "not-asked",
            Outcome::Pending => "pending",
            Outcome::Unknown => "unknown",
        }
    }
}

impl Trace {
    /// Primary replicas (local, replica or standby) that answered or acknowledged.
    pub fn answered(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| {
                e.outcome == Outcome::Ok
                    && matches!(e.role, Role::Local | Role::Replica | Role::Standby)
            })
            .map(|e| e.node.as_str())
            .collect()
    }

    /// The event of `node` in its primary-replica role, if it has one.
    pub fn event(&self, node: &str) -> Option<&ReplicaEvent> {
        self.events
            .iter()
            .find(|e| e.node == node && e.role != Role::Forwarded)
    }

    pub(crate) fn from_proto(t: pb::RequestTrace) -> Trace {
        let named = |s: String| (!s.is_empty()).then_some(s);
        Trace {
            operation: t.operation,
            coordinator: t.coordinator,
            token: t.token,
            replicas: t
                .replicas
                .into_iter()
                .map(|r| TracedReplica {
                    node: r.node,
                    up: r.up,
                })
                .collect(),
            consistency: Consistency::known(t.level),
            required: t.required,
            events: t.events.into_iter().map(event_from_proto).collect(),
            replies_differed: t.replies_differed,
            read_repaired: t.read_repaired,
            hinted_for: t.hinted_for,
            speculative: t.speculative,
            forwarded_from: named(t.forwarded_from),
            forwarded_to: named(t.forwarded_to),
            total: Duration::from_micros(t.total_micros),
            read: t.read.map(|r| Box::new(Trace::from_proto(*r))),
            note: named(t.note),
        }
    }
}

fn event_from_proto(e: pb::ReplicaEvent) -> ReplicaEvent {
    let role = match pb::ReplicaRole::try_from(e.role) {
        Ok(pb::ReplicaRole::Local) => Role::Local,
        Ok(pb::ReplicaRole::Replica) => Role::Replica,
        Ok(pb::ReplicaRole::Forwarded) => Role::Forwarded,
        Ok(pb::ReplicaRole::Standby) => Role::Standby,
        Ok(pb::ReplicaRole::Joining) => Role::Joining,
        Ok(pb::ReplicaRole::Unspecified) | Err(_) => Role::Unknown,
    };
    let outcome = match pb::ReplicaOutcome::try_from(e.outcome) {
        Ok(pb::ReplicaOutcome::Ok) => Outcome::Ok,
        Ok(pb::ReplicaOutcome::Failed) => Outcome::Failed,
        Ok(pb::ReplicaOutcome::Timeout) => Outcome::Timeout,
        Ok(pb::ReplicaOutcome::NotAsked) => Outcome::NotAsked,
        Ok(pb::ReplicaOutcome::Pending) => Outcome::Pending,
        Ok(pb::ReplicaOutcome::Unspecified) | Err(_) => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Ok | Outcome::Failed | Outcome::Timeout);
    ReplicaEvent {
        node: e.node,
        role,
        outcome,
        latency: answered.then(|| Duration::from_micros(e.micros)),
        detail: e.detail,
        digest: (e.digest != 0).then_some(e.digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_from_the_wire_and_tolerates_unknown_values() {
        let wire = pb::RequestTrace {
            operation: "delete".into(),
            coordinator: "n2".into(),
            token: -5,
            replicas: vec![pb::TracedReplica {
                node: "n2".into(),
                up: true,
            }],
            level: pb::ConsistencyLevel::Quorum as i32,
            required: 1,
            events: vec![
                pb::ReplicaEvent {
                    node: "n2".into(),
                    role: pb::ReplicaRole::Local as i32,
                    outcome: pb::ReplicaOutcome::Ok as i32,
                    micros: 1500,
                    detail: String::new(),
                    digest: 42,
                },
                pb::ReplicaEvent {
                    node: "n9".into(),
                    role: 77,
                    outcome: pb::ReplicaOutcome::NotAsked as i32,
                    micros: 0,
                    detail: "down".into(),
                    digest: 0,
                },
            ],
            total_micros: 2000,
            read: Some(Box::new(pb::RequestTrace {
                operation: "read".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let t = Trace::from_proto(wire);
        assert_eq!(t.consistency, Some(Consistency::Quorum));
        assert_eq!(t.events[0].latency, Some(Duration::from_micros(1500)));
        assert_eq!(t.events[0].digest, Some(42));
        assert_eq!(t.events[1].role, Role::Unknown);
        assert_eq!(t.events[1].latency, None);
        assert_eq!(t.answered(), vec!["n2"]);
        assert_eq!(t.forwarded_to, None);
        assert_eq!(t.read.as_ref().map(|r| r.operation.as_str()), Some("read"));
        assert_eq!(t.total, Duration::from_millis(2));
    }
}
