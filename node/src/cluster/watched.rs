//! The transport as this node's view of the cluster sees it: every call's outcome is
//! evidence about the peer. A refused or reset connection marks the peer down here at once;
//! any answer (an error status included) lifts the mark.

use std::sync::Arc;

use async_trait::async_trait;

use super::Membership;
use crate::transport::{PeerRequest, PeerResponse, Transport, TransportError};

/// A transport that reports refused connections and answers to the membership view.
pub struct Watched {
    inner: Arc<dyn Transport>,
    membership: Arc<Membership>,
}

impl Watched {
    /// Watch the calls `inner` makes on behalf of `membership`'s node.
    pub fn wrap(inner: Arc<dyn Transport>, membership: Arc<Membership>) -> Arc<dyn Transport> {
        Arc::new(Watched { inner, membership })
    }
}

#[async_trait]
impl Transport for Watched {
    async fn call(&self, to: &str, request: PeerRequest) -> Result<PeerResponse, TransportError> {
        let answer = self.inner.call(to, request).await;
        match &answer {
            Ok(_) | Err(TransportError::Rejected { .. }) => self.membership.note_answered(to),
            Err(TransportError::Refused { reason, .. }) => {
                self.membership.note_refused(to, reason);
            }
            Err(TransportError::Unreachable(_) | TransportError::Timeout) => {}
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ringdb_proto::v1::{GossipAck2, GossipAck2Response, MemberState};

    use super::*;
    use crate::cluster::MembershipConfig;

    /// Answers with whatever outcome the test set last.
    struct Scripted(Mutex<Result<PeerResponse, TransportError>>);

    #[async_trait]
    impl Transport for Scripted {
        async fn call(&self, _: &str, _: PeerRequest) -> Result<PeerResponse, TransportError> {
            self.0.lock().unwrap().clone()
        }
    }

    fn member(id: &str, heartbeat: u64, incarnation: u64) -> MemberState {
        MemberState {
            id: id.into(),
            address: format!("{id}:7000"),
            incarnation,
            heartbeat,
            tokens: vec![1],
            ..Default::default()
        }
    }

    async fn finish(t: &Arc<dyn Transport>) -> Result<(), TransportError> {
        t.gossip_finish("b:7000", GossipAck2::default()).await
    }

    #[tokio::test]
    async fn a_refusal_marks_the_peer_down_at_once_and_an_answer_lifts_it() {
        let m = Arc::new(Membership::new(
            member("a", 1, 1),
            vec![],
            MembershipConfig::default(),
        ));
        m.merge(&[member("b", 5, 1)]);
        assert!(m.is_up("b"), "a heartbeat just arrived");
        let script = Arc::new(Scripted(Mutex::new(Err(TransportError::Refused {
            reason: "connection refused (os error 111)".into(),
            unsent: true,
        }))));
        let t = Watched::wrap(script.clone(), m.clone());
        assert!(finish(&t).await.is_err());
        assert!(!m.is_up("b"), "refused: down before phi rises");
        let why = m.down_reason("b").unwrap();
        assert!(
            why.starts_with("connection refused (os error 111), "),
            "{why}"
        );
        assert!(!m.peers()[0].2 && !m.members()[1].up, "reports agree");

        // Silence or an unreachable route is not evidence enough to lift or set it.
        *script.0.lock().unwrap() = Err(TransportError::Timeout);
        assert!(finish(&t).await.is_err());
        assert!(!m.is_up("b"));
        // Any answer is.
        *script.0.lock().unwrap() = Err(TransportError::Rejected {
            code: tonic::Code::Unavailable,
            message: "busy".into(),
        });
        assert!(finish(&t).await.is_err());
        assert!(m.is_up("b"), "it answered");
        assert_eq!(m.down_reason("b"), None);

        *script.0.lock().unwrap() = Ok(PeerResponse::GossipFinish(GossipAck2Response {}));
        assert!(finish(&t).await.is_ok());
        assert!(m.is_up("b"));
    }

    #[tokio::test]
    async fn gossip_lifts_a_refusal_only_with_proof_the_peer_ran_after_it() {
        let m = Arc::new(Membership::new(
            member("a", 1, 1),
            vec![],
            MembershipConfig::default(),
        ));
        m.merge(&[member("b", 5, 1)]);
        assert_eq!(
            m.note_refused("b:7000", "connection reset by peer"),
            Some("b".into())
        );
        assert_eq!(m.note_refused("b:7000", "again"), None, "marked once");
        m.merge(&[member("b", 6, 1)]);
        assert!(!m.is_up("b"), "heartbeat 6 may have left b before it died");
        m.merge(&[member("b", 7, 1)]);
        assert!(m.is_up("b"), "heartbeat 7 was sent after the refusal");

        m.note_refused("b:7000", "connection refused");
        m.merge(&[member("b", 1, 2)]);
        assert!(m.is_up("b"), "a new incarnation: it restarted");
        assert_eq!(m.note_refused("c:7000", "refused"), None, "unknown address");
    }

    #[test]
    fn a_refusal_at_a_reused_address_marks_the_member_still_in_the_cluster() {
        let m = Membership::new(member("a", 1, 1), vec![], MembershipConfig::default());
        let left = MemberState {
            status: crate::cluster::STATUS_LEFT.into(),
            ..member("b", 5, 1)
        };
        // "c" replaced "b" on the same host and port ("b" sorts first).
        let new = MemberState {
            address: "b:7000".into(),
            ..member("c", 1, 1)
        };
        m.merge(&[left, new]);
        assert_eq!(m.note_refused("b:7000", "refused"), Some("c".into()));
        assert!(!m.is_up("c"));
        m.note_answered("b:7000");
        assert!(m.is_up("c"), "an answer lifts it");
    }
}
