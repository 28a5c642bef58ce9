//! Sending one request: which nodes to try, in what order, and when trying again is safe.
//!
//! Rules kept here:
//! - a request that never reached a node (connection refused, no route, connect timeout)
//!   moves on to the next node, reads and writes alike: nothing can have been applied;
//! - a read also moves on when a connection broke after sending, or when the node answered
//!   `UNAVAILABLE` (its view of the cluster may be worse than another's) or
//!   `RESOURCE_EXHAUSTED` (its queues are full): reading twice is harmless;
//! - a write whose connection broke after sending is not retried, since it may have been
//!   applied; the error says so;
//! - every other answer from a server is final and maps to an [`Error`] once;
//! - after each full pass over the candidates the client waits (exponential backoff with
//!   jitter) and asks for a fresh ring before the next pass, up to
//!   [`RetryPolicy::max_attempts`](crate::RetryPolicy::max_attempts) calls in all.

use std::future::Future;

use ringdb_wire::Token;
use tonic::Code;

use crate::client::Client;
use crate::error::{self, Error, Result};
use crate::node::Node;
use crate::routing::Target;

/// Whether a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No side effects: retry on any transport failure and on a node's local trouble.
    Read,
    /// Retry only when the request never left the client.
    Write,
}

/// What to do after a failed call.
enum Next {
    /// Try the next node; `transport` says whether the node itself did not answer.
    Retry { transport: bool },
    /// Stop: a write may have been applied and the client cannot know.
    Ambiguous,
    /// Stop with the server's answer.
    Final,
}

fn next(kind: Kind, s: &tonic::Status) -> Next {
    if error::never_sent(s) {
        return Next::Retry { transport: true };
    }
    let transport = error::transport_failure(s);
    match kind {
        Kind::Read if transport => Next::Retry { transport: true },
        Kind::Read if matches!(s.code(), Code::Unavailable | Code::ResourceExhausted) => {
            Next::Retry { transport: false }
        }
        Kind::Write if transport => Next::Ambiguous,
        _ => Next::Final,
    }
}

impl Client {
    /// Send a get, put or delete of the key at `token` to the best node for it, moving on
    /// to the next candidates when that is safe for `kind`.
    pub(crate) async fn routed<T, F, Fut>(
        &self,
        kind: Kind,
        token: Token,
        what: &str,
        f: F,
    ) -> Result<T>
    where
        F: FnMut(Node) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        self.retried(kind, what, || self.router.targets(token), f)
            .await
    }

    /// Send a request to the nodes `targets` lists (asked again before each pass), moving
    /// on to the next when that is safe for `kind`: the retry rules of the module docs.
    pub(crate) async fn retried<T, F, Fut>(
        &self,
        kind: Kind,
        what: &str,
        targets_now: impl Fn() -> Vec<Target>,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut(Node) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let router = &self.router;
        let attempts = self.retry.max_attempts.max(1);
        let mut targets = targets_now();
        let (mut i, mut pass) = (0, 0);
        let mut failures: Vec<(String, String)> = Vec::new();
        let mut last_answer: Option<tonic::Status> = None;
        for _ in 0..attempts {
            if i == targets.len() {
                pass += 1;
                router.request_refresh();
                tokio::time::sleep(self.retry.backoff(pass)).await;
                targets = targets_now();
                i = 0;
            }
            let target: &Target = &targets[i];
            i += 1;
            let node = match router.node(&target.address) {
                Ok(n) => n,
                Err(e) => {
                    failures.push((target.label(), e.message().to_string()));
                    continue;
                }
            };
            let s = match f(node).await {
                Ok(v) => {
                    router.answered(&target.address);
                    return Ok(v);
                }
                Err(s) => s,
            };
            match next(kind, &s) {
                Next::Retry { transport } => {
                    tracing::debug!(node = %target.label(), error = %s, "{what}: trying the next node");
                    if transport {
                        router.failed(&target.address);
                    } else {
                        last_answer = Some(s.clone());
                    }
                    failures.push((target.label(), error::describe(&s)));
                }
                Next::Ambiguous => {
                    router.failed(&target.address);
                    return Err(Error::Unreachable(format!(
                        "{what}: connection to {} broke during the request ({}); the write may or may not have been applied",
                        target.label(),
                        error::describe(&s)
                    )));
                }
                Next::Final => return Err(s.into()),
            }
        }
        // A node's own answer says more than "could not connect" does.
        if let Some(s) = last_answer {
            let e = Error::from(s);
            let mut tried: Vec<&str> = Vec::new();
            for (node, _) in &failures {
                if !tried.contains(&node.as_str()) {
                    tried.push(node);
                }
            }
            let message = format!("{} (tried {})", e.message(), tried.join(", "));
            return Err(e.with_message(message));
        }
        // The same node failing the same way on every pass is said once, with a count.
        let mut distinct: Vec<((String, String), usize)> = Vec::new();
        for f in failures {
            match distinct.iter_mut().find(|(d, _)| *d == f) {
                Some((_, n)) => *n += 1,
                None => distinct.push((f, 1)),
            }
        }
        let said: Vec<String> = distinct
            .into_iter()
            .map(|((node, why), n)| match n {
                1 => format!("{node}: {why}"),
                n => format!("{node}: {why} ({n} times)"),
            })
            .collect();
        Err(Error::Unreachable(format!(
            "{what}: no node answered in {attempts} attempts [{}]",
            said.join("; ")
        )))
    }

    /// Send an operator's request to the given addresses in turn, starting with the next
    /// in rotation. A node that cannot be reached is skipped; `idempotent` calls also move
    /// on when a connection breaks mid-call.
    pub(crate) async fn call<T, F, Fut>(&self, idempotent: bool, mut f: F) -> Result<T>
    where
        F: FnMut(Node) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let mut failures = Vec::new();
        for target in self.router.rotation() {
            let node = self.router.node(&target.address)?;
            match f(node).await {
                Ok(v) => return Ok(v),
                Err(s) if error::never_sent(&s) || (idempotent && error::transport_failure(&s)) => {
                    tracing::debug!(node = %target.address, error = %s, "node did not answer; trying the next");
                    failures.push(format!("{}: {}", target.address, error::describe(&s)));
                }
                Err(s) if error::transport_failure(&s) => {
                    return Err(Error::Unreachable(format!(
                        "connection to {} broke during the request ({}); the change may or may not have been applied",
                        target.address,
                        error::describe(&s)
                    )))
                }
                Err(s) => return Err(s.into()),
            }
        }
        Err(Error::Unreachable(failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RetryPolicy;

    #[tokio::test]
    async fn a_refused_request_is_retried_per_policy_then_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let client = Client::builder([address.as_str()])
            .retry(RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            })
            .connect()
            .await
            .expect("connect succeeds with nobody listening");
        assert!(!client.knows_ring());
        assert_eq!(client.route("c", "k"), vec![address.clone()]);
        match client.get("c", "k").await {
            Err(Error::Unreachable(m)) => {
                assert!(m.contains("3 attempts") && m.contains(&address), "{m}")
            }
            other => panic!("expected UNAVAILABLE (unreachable), got {other:?}"),
        }
        // Never sent, so a write is retried too, and says nothing was applied.
        match client.put("c", "k", &serde_json::json!({"a": 1})).await {
            Err(Error::Unreachable(m)) => {
                assert!(
                    m.contains("3 attempts") && !m.contains("may or may not"),
                    "{m}"
                )
            }
            other => panic!("expected UNAVAILABLE (unreachable), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_delete_with_a_context_that_saw_nothing_deletes_nothing_and_sends_nothing() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let client = Client::builder([format!("127.0.0.1:{port}")])
            .retry(RetryPolicy::none())
            .connect()
            .await
            .unwrap();
        // The context of a read that found nothing: covers nothing, so nothing to delete.
        let opts = crate::WriteOptions::new().context(crate::Context::default());
        let r = client
            .delete_with("c", "k", &opts)
            .await
            .expect("no request");
        assert!(r.acknowledged_by.is_empty() && r.context.is_empty());
        // Without a context the delete is sent (and here finds nobody).
        assert!(matches!(
            client
                .delete_with("c", "k", &crate::WriteOptions::new())
                .await,
            Err(Error::Unreachable(_))
        ));
    }

    #[test]
    fn servers_answers_are_final_except_a_reads_local_trouble() {
        for (code, read_retries) in [
            (Code::Unavailable, true),
            (Code::ResourceExhausted, true),
            (Code::DeadlineExceeded, false),
            (Code::InvalidArgument, false),
            (Code::Internal, false),
        ] {
            let s = tonic::Status::new(code, "from the server");
            assert_eq!(
                matches!(next(Kind::Read, &s), Next::Retry { transport: false }),
                read_retries,
                "{code:?}"
            );
            assert!(
                matches!(next(Kind::Write, &s), Next::Final),
                "a write's {code:?} is final"
            );
        }
    }
}
