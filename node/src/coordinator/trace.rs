//! Request tracing: what a coordinator did for one request (replicas asked, how each
//! answered and how fast, repairs, hints, forwarding), recorded only when the request asks.
//!
//! Invariants kept here:
//! - an untraced request costs nothing: every hook takes a [`Tracer`] and does nothing
//!   with `None` (no allocation, no lock, no extra encoding);
//! - each replica's event is created when the coordinator plans the request, so replicas
//!   held in reserve or skipped show as not asked; the call updates it when it is sent (at
//!   once, or a standby call when speculative retry first polls it) and when it ends
//!   (outcome, latency from its first poll, digest);
//! - the trace a client sees is a snapshot taken when the coordinator answers: calls still
//!   running then show as pending, and their later answers are not in it;
//! - a poisoned lock loses trace detail, never the request.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use ringdb_proto::v1::{ReplicaEvent, ReplicaOutcome, ReplicaRole, RequestTrace, TracedReplica};
use tokio::time::Instant;

use super::reach::Missed;
use super::Level;
use crate::error::Result;
use crate::version::SiblingSet;

/// A request's recorder, or `None` when the request did not ask for a trace.
pub(super) type Tracer<'a> = Option<&'a Arc<Recorder>>;

/// A request's outcome with the trace of how it came about (also when it failed).
#[derive(Debug)]
pub struct Traced<T> {
    /// What the untraced call would have returned.
    pub result: Result<T>,
    /// What happened inside the cluster, as of the answer.
    pub trace: RequestTrace,
}

/// Collects one request's trace; shared with the replica calls it times.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    trace: Mutex<RequestTrace>,
}

impl Recorder {
    /// Start tracing a `operation` ("read", "write", "delete") taken by `coordinator`.
    pub fn new(operation: &str, coordinator: &str) -> Arc<Recorder> {
        Arc::new(Recorder {
            started: Instant::now(),
            trace: Mutex::new(RequestTrace {
                operation: operation.to_string(),
                coordinator: coordinator.to_string(),
                ..RequestTrace::default()
            }),
        })
    }

    fn with(&self, f: impl FnOnce(&mut RequestTrace)) {
        if let Ok(mut t) = self.trace.lock() {
            f(&mut t);
        }
    }

    fn event_mut(&self, index: usize, f: impl FnOnce(&mut ReplicaEvent)) {
        self.with(|t| {
            if let Some(e) = t.events.get_mut(index) {
                f(e);
            }
        });
    }

    /// The key's token and preference list, and what the level needs.
    pub(super) fn plan(
        &self,
        token: i64,
        replicas: &[String],
        is_up: impl Fn(&str) -> bool,
        level: Level,
        required: usize,
    ) {
        self.with(|t| {
            t.token = token;
            t.replicas = replicas
                .iter()
                .map(|node| TracedReplica {
                    node: node.clone(),
                    up: is_up(node),
                })
                .collect();
            t.level = level.to_proto() as i32;
            t.required = required as u32;
        });
    }

    /// Add a replica's event, not asked yet; returns its index for [`timed`].
    pub(super) fn event(&self, node: &str, role: ReplicaRole, detail: &str) -> usize {
        let mut index = 0;
        self.with(|t| {
            index = t.events.len();
            t.events.push(ReplicaEvent {
                node: node.to_string(),
                role: role as i32,
                outcome: ReplicaOutcome::NotAsked as i32,
                detail: detail.to_string(),
                ..ReplicaEvent::default()
            });
        });
        index
    }

    /// Add to an event's detail (", hinted").
    pub(super) fn note_event(&self, index: usize, more: &str) {
        self.event_mut(index, |e| {
            if !e.detail.is_empty() {
                e.detail.push_str("; ");
            }
            e.detail.push_str(more);
        });
    }

    /// Change anything else in the trace.
    pub(super) fn update(&self, f: impl FnOnce(&mut RequestTrace)) {
        self.with(f);
    }

    /// The trace as of now, with the time since the request was taken.
    pub fn snapshot(&self) -> RequestTrace {
        let micros = self.started.elapsed().as_micros() as u64;
        match self.trace.lock() {
            Ok(t) => RequestTrace {
                total_micros: micros,
                ..t.clone()
            },
            Err(_) => RequestTrace {
                total_micros: micros,
                note: "trace lost (a recorder lock was poisoned)".to_string(),
                ..RequestTrace::default()
            },
        }
    }
}

/// Wrap a replica call so that, when traced, its event shows it asked (at once, or for a
/// standby call when it is first polled, which is when speculative retry sends it) and
/// records how it ended; `digest` summarises a successful answer. Untraced, the call is
/// returned as it is.
pub(super) fn timed<T: Send + 'static>(
    tracer: Tracer<'_>,
    index: usize,
    call: BoxFuture<'static, std::result::Result<T, Missed>>,
    digest: fn(&T) -> u64,
) -> BoxFuture<'static, std::result::Result<T, Missed>> {
    let Some(rec) = tracer.cloned() else {
        return call;
    };
    // Every call but a standby one is sent as soon as it is made: it counts as asked even
    // if the answer comes before its task first runs.
    rec.event_mut(index, |e| {
        if e.role != ReplicaRole::Standby as i32 {
            e.outcome = ReplicaOutcome::Pending as i32;
        }
    });
    async move {
        let asked = Instant::now();
        rec.with(|t| {
            if let Some(e) = t.events.get_mut(index) {
                e.outcome = ReplicaOutcome::Pending as i32;
                if e.role == ReplicaRole::Standby as i32 {
                    t.speculative = true;
                }
            }
        });
        let r = call.await;
        let micros = asked.elapsed().as_micros() as u64;
        rec.event_mut(index, |e| {
            e.micros = micros;
            match &r {
                Ok(v) => {
                    e.outcome = ReplicaOutcome::Ok as i32;
                    e.digest = digest(v);
                }
                Err(m) => {
                    e.outcome = if m.timed_out {
                        ReplicaOutcome::Timeout
                    } else {
                        ReplicaOutcome::Failed
                    } as i32;
                    e.detail = m.reason.clone();
                    if m.hinted {
                        e.detail.push_str("; hinted");
                    }
                }
            }
        });
        r
    }
    .boxed()
}

/// A hash of a sibling set's canonical encoding (0 for an empty set), so a trace shows
/// which replies were the same.
pub(super) fn digest(set: &SiblingSet) -> u64 {
    if set.is_empty() {
        return 0;
    }
    let encoded = set.encode();
    // Reading from an in-memory slice cannot fail.
    let h = murmur3::murmur3_x64_128(&mut &encoded[..], 0x7ace).unwrap_or(0);
    ((h as u64) ^ ((h >> 64) as u64)).max(1)
}

/// For write calls, which answer nothing worth a digest.
pub(super) fn no_digest(_: &()) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::CausalContext;

    #[tokio::test]
    async fn a_timed_call_records_its_outcome_and_a_never_polled_one_stays_not_asked() {
        let rec = Recorder::new("read", "n1");
        rec.plan(7, &["n1".into(), "n2".into()], |n| n == "n1", Level::One, 1);
        let a = rec.event("n1", ReplicaRole::Local, "");
        let b = rec.event("n2", ReplicaRole::Standby, "");
        let mut set = SiblingSet::new();
        set.apply_write("n1", &CausalContext::new(), Some("{}".into()), 1);
        let expected = digest(&set);
        let ok = timed(Some(&rec), a, async move { Ok(set) }.boxed(), digest);
        let _never = timed::<SiblingSet>(
            Some(&rec),
            b,
            async { Err(Missed::unhinted("x")) }.boxed(),
            digest,
        );
        assert!(ok.await.is_ok());
        let t = rec.snapshot();
        assert_eq!(t.events[0].outcome, ReplicaOutcome::Ok as i32);
        assert_eq!(t.events[0].digest, expected);
        assert_ne!(expected, 0);
        assert_eq!(t.events[1].outcome, ReplicaOutcome::NotAsked as i32);
        assert!(!t.speculative);
        assert_eq!(t.replicas[1].node, "n2");
        assert!(!t.replicas[1].up);
        assert_eq!(digest(&SiblingSet::new()), 0);
    }

    #[tokio::test]
    async fn an_asked_standby_marks_the_trace_speculative_and_failures_say_why() {
        let rec = Recorder::new("read", "n1");
        let b = rec.event("n2", ReplicaRole::Standby, "");
        let r = timed::<SiblingSet>(
            Some(&rec),
            b,
            async { Err(Missed::unhinted("refused")) }.boxed(),
            digest,
        )
        .await;
        assert!(r.is_err());
        let t = rec.snapshot();
        assert!(t.speculative);
        assert_eq!(t.events[0].outcome, ReplicaOutcome::Failed as i32);
        assert_eq!(t.events[0].detail, "refused");
    }
}
