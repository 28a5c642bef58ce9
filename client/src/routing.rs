//! Token-aware routing: the client keeps a copy of the cluster's ring and sends each
//! request to a replica of its key, so the coordinator reads its own copy and never has to
//! forward a write (one network hop fewer than a random coordinator once N < nodes).
//!
//! Invariants kept here:
//! - a key's candidate list starts with its primary owner (the first ring token at or after
//!   the key's token, wrapping), which is a replica whatever the placement, then the next
//!   distinct owners clockwise, then every other member, then given addresses that are not
//!   members; no address appears twice;
//! - nodes the cluster reports down, or that refused this client recently, move to the end
//!   of the list but are never dropped (the view may be stale);
//! - without a ring (not fetched yet, or routing off) requests rotate over the addresses the
//!   client was given, as a client without routing does;
//! - the ring is refreshed every few seconds, and sooner when a request fails in transport
//!   or a reply names a node the view does not know; a refresh never blocks a request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use ringdb_proto::v1 as pb;
use ringdb_wire::Token;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::node::{Dial, Node};

/// How long a node that refused a connection is tried only after the others.
const SUSPECT_FOR: Duration = Duration::from_secs(3);

/// Fewest time between two refreshes that requests asked for, so a burst of failures
/// costs one `Ring` call, not one per request.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(250);

/// How long one `Ring` call may take before the next node is asked.
const RING_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How a client picks the node that coordinates each get, put and delete. Operators'
/// requests (status, ring, collections) always go to the given addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// Send each request to a live replica of its key, its primary owner first, using the
    /// ring fetched from the cluster; saves the coordinator a hop. The default.
    #[default]
    TokenAware,
    /// Rotate through the given addresses, whichever node owns the key (for comparison,
    /// or when the client can reach only some nodes, e.g. through a proxy).
    RoundRobin,
}

/// A node a request may be sent to, named for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) address: String,
    pub(crate) id: Option<String>,
}

impl Target {
    /// "n2 (127.0.0.1:7402)", or the bare address of a node not in the ring.
    pub(crate) fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("{id} ({})", self.address),
            None => self.address.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    id: String,
    address: String,
    up: bool,
}

/// Token ownership as one node reported it: the pure part of routing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RingView {
    /// Members with an address that have not left, sorted by id.
    members: Vec<Member>,
    /// Sorted `(token, index into members)`, ties broken by node id as the nodes do.
    tokens: Vec<(Token, usize)>,
    /// The cluster's default N: how many distinct owners to take in ring order.
    replication: usize,
}

impl RingView {
    /// Build from a `Ring` answer; `None` when it holds no usable token.
    pub(crate) fn from_proto(r: &pb::RingResponse) -> Option<RingView> {
        let mut members: Vec<Member> = r
            .nodes
            .iter()
            .filter(|n| n.status != "LEFT" && !n.address.is_empty())
            .map(|n| Member {
                id: n.id.clone(),
                address: n.address.clone(),
                up: n.up,
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let mut tokens: Vec<(Token, usize)> = r
            .tokens
            .iter()
            .filter_map(|t| {
                let i = members.binary_search_by(|m| m.id.cmp(&t.node_id)).ok()?;
                Some((t.token, i))
            })
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        if tokens.is_empty() {
            return None;
        }
        Some(RingView {
            members,
            tokens,
            replication: (r.replication_factor as usize).max(1),
        })
    }

    /// Whether `id` is a member of this view.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.members
            .binary_search_by(|m| m.id.as_str().cmp(id))
            .is_ok()
    }

    /// Members for a key at `token`: the first N distinct owners clockwise from it (the
    /// primary first), then every other member in id order.
    fn owners(&self, token: Token) -> Vec<usize> {
        let len = self.tokens.len();
        let start = match self.tokens.partition_point(|(t, _)| *t < token) {
            i if i == len => 0,
            i => i,
        };
        let want = self.replication.min(self.members.len());
        let mut seen = vec![false; self.members.len()];
        let mut out = Vec::with_capacity(self.members.len());
        for step in 0..len {
            let idx = self.tokens[(start + step) % len].1;
            if !seen[idx] {
                seen[idx] = true;
                out.push(idx);
                if out.len() == want {
                    break;
                }
            }
        }
        out.extend((0..self.members.len()).filter(|i| !seen[*i]));
        out
    }

    /// Where to send a request for a key at `token`, best first: owners in ring order with
    /// the nodes that are down (in this view, or by `suspect`) moved last.
    pub(crate) fn targets(&self, token: Token, suspect: impl Fn(&str) -> bool) -> Vec<Target> {
        let (mut good, mut bad): (Vec<Target>, Vec<Target>) = (Vec::new(), Vec::new());
        for i in self.owners(token) {
            let m = &self.members[i];
            let t = Target {
                address: m.address.clone(),
                id: Some(m.id.clone()),
            };
            if m.up && !suspect(&m.address) {
                good.push(t);
            } else {
                bad.push(t);
            }
        }
        good.extend(bad);
        good
    }
}

/// The routing state a client shares between its clones: ring view, connections, nodes
/// that failed recently, and the wake-up for the refresher.
pub(crate) struct Router {
    /// Addresses the client was given, in order.
    seeds: Vec<String>,
    routing: Routing,
    dial: Dial,
    view: RwLock<Option<Arc<RingView>>>,
    nodes: RwLock<HashMap<String, Node>>,
    suspects: Mutex<HashMap<String, Instant>>,
    any_suspect: AtomicBool,
    next: AtomicUsize,
    wake: Arc<Notify>,
}

impl Router {
    /// Routing state over the given addresses; fails only on a malformed address.
    pub(crate) fn new(seeds: Vec<String>, routing: Routing, dial: Dial) -> Result<Router> {
        if seeds.is_empty() {
            return Err(Error::InvalidArgument("no node address given".into()));
        }
        let mut nodes = HashMap::new();
        for s in &seeds {
            nodes.insert(s.clone(), Node::lazy(s, &dial)?);
        }
        Ok(Router {
            seeds,
            routing,
            dial,
            view: RwLock::new(None),
            nodes: RwLock::new(nodes),
            suspects: Mutex::new(HashMap::new()),
            any_suspect: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Addresses the client was given.
    pub(crate) fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The routing this client was built with.
    pub(crate) fn routing(&self) -> Routing {
        self.routing
    }

    /// The current ring view, if one was fetched.
    pub(crate) fn view(&self) -> Option<Arc<RingView>> {
        self.view.read().ok().and_then(|v| v.clone())
    }

    /// Stubs for `address`, connecting lazily on first use.
    pub(crate) fn node(&self, address: &str) -> Result<Node> {
        if let Some(n) = self.nodes.read().ok().and_then(|m| m.get(address).cloned()) {
            return Ok(n);
        }
        let node = Node::lazy(address, &self.dial)?;
        if let Ok(mut m) = self.nodes.write() {
            return Ok(m.entry(address.to_string()).or_insert(node).clone());
        }
        Ok(node)
    }

    /// The given addresses, starting with the next in rotation.
    pub(crate) fn rotation(&self) -> Vec<Target> {
        let n = self.seeds.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| Target {
                address: self.seeds[(start + i) % n].clone(),
                id: None,
            })
            .collect()
    }

    /// Where to send a get, put or delete of the key at `token`, best first.
    pub(crate) fn targets(&self, token: Token) -> Vec<Target> {
        if self.routing == Routing::RoundRobin {
            return self.rotation();
        }
        let Some(view) = self.view() else {
            self.request_refresh();
            return self.rotation();
        };
        let suspects = self.suspects_now();
        let mut out = view.targets(token, |a| suspects.iter().any(|s| s == a));
        for s in &self.seeds {
            if !out.iter().any(|t| &t.address == s) {
                out.push(Target {
                    address: s.clone(),
                    id: None,
                });
            }
        }
        out
    }

    fn suspects_now(&self) -> Vec<String> {
        if !self.any_suspect.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let now = Instant::now();
        let Ok(mut s) = self.suspects.lock() else {
            return Vec::new();
        };
        s.retain(|_, until| *until > now);
        self.any_suspect.store(!s.is_empty(), Ordering::Relaxed);
        s.keys().cloned().collect()
    }

    /// A node did not answer: try it after the others for a while, and refresh the ring.
    pub(crate) fn failed(&self, address: &str) {
        if let Ok(mut s) = self.suspects.lock() {
            s.insert(address.to_string(), Instant::now() + SUSPECT_FOR);
            self.any_suspect.store(true, Ordering::Relaxed);
        }
        self.request_refresh();
    }

    /// A node answered: it is no longer suspect.
    pub(crate) fn answered(&self, address: &str) {
        if self.any_suspect.load(Ordering::Relaxed) {
            if let Ok(mut s) = self.suspects.lock() {
                s.remove(address);
                self.any_suspect.store(!s.is_empty(), Ordering::Relaxed);
            }
        }
    }

    /// A reply named these nodes: refresh the ring if the view does not know one of them.
    pub(crate) fn saw<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if self.routing == Routing::RoundRobin {
            return;
        }
        match self.view() {
            Some(v) if ids.into_iter().all(|id| id.is_empty() || v.knows(id)) => {}
            _ => self.request_refresh(),
        }
    }

    /// Ask the background refresher for a new ring soon.
    pub(crate) fn request_refresh(&self) {
        self.wake.notify_one();
    }

    /// Fetch the ring from the first node that answers (members the view believes up
    /// first, then the given addresses) and install it.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let mut asked: Vec<String> = match self.view() {
            Some(v) => {
                let mut a: Vec<String> = v
                    .members
                    .iter()
                    .filter(|m| m.up)
                    .map(|m| m.address.clone())
                    .collect();
                // Spread refreshes over the members.
                let n = a.len().max(1);
                a.rotate_left(self.next.fetch_add(1, Ordering::Relaxed) % n);
                a
            }
            None => Vec::new(),
        };
        for s in &self.seeds {
            if !asked.contains(s) {
                asked.push(s.clone());
            }
        }
        let mut failures = Vec::new();
        for address in asked {
            let mut admin = match self.node(&address) {
                Ok(n) => n.admin,
                Err(e) => {
                    failures.push(format!("{address}: {}", e.message()));
                    continue;
                }
            };
            let reply =
                tokio::time::timeout(RING_CALL_TIMEOUT, admin.ring(pb::RingRequest {})).await;
            match reply {
                Ok(Ok(r)) => match RingView::from_proto(r.get_ref()) {
                    Some(view) => {
                        if let Ok(mut v) = self.view.write() {
                            *v = Some(Arc::new(view));
                        }
                        return Ok(());
                    }
                    None => failures.push(format!("{address}: ring has no tokens yet")),
                },
                Ok(Err(s)) => failures.push(format!("{address}: {}", s.message())),
                Err(_) => failures.push(format!("{address}: no answer in time")),
            }
        }
        Err(Error::Unreachable(format!(
            "could not fetch the ring: {}",
            failures.join("; ")
        )))
    }
}

/// Keep `router`'s ring fresh: every `every`, and soon after a request asks. Stops once
/// every client sharing the router is dropped.
pub(crate) fn spawn_refresher(router: &Arc<Router>, every: Duration) {
    let weak: Weak<Router> = Arc::downgrade(router);
    let wake = router.wake.clone();
    tokio::spawn(async move {
        loop {
            let asked = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = wake.notified() => true,
            };
            let Some(router) = weak.upgrade() else {
                return;
            };
            if let Err(e) = router.refresh().await {
                tracing::debug!(error = %e, "ring refresh failed");
            }
            drop(router);
            if asked {
                tokio::time::sleep(MIN_REFRESH_GAP).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, up: bool, state: &str) -> pb::NodeStatus {
        pb::NodeStatus {
            id: id.into(),
            address: format!("{id}:1"),
            up,
            status: state.into(),
            ..Default::default()
        }
    }

    fn ring(tokens: &[(i64, &str)], nodes: Vec<pb::NodeStatus>, n: u32) -> RingView {
        RingView::from_proto(&pb::RingResponse {
            tokens: tokens
                .iter()
                .map(|(t, id)| pb::RingToken {
                    token: *t,
                    node_id: id.to_string(),
                })
                .collect(),
            replication_factor: n,
            nodes,
        })
        .expect("tokens")
    }

    fn ids(t: &[Target]) -> Vec<&str> {
        t.iter().map(|t| t.id.as_deref().unwrap_or("?")).collect()
    }

    fn abc(up_b: bool) -> RingView {
        ring(
            &[(-100, "a"), (0, "b"), (50, "a"), (100, "c")],
            vec![
                status("a", true, "NORMAL"),
                status("b", up_b, "NORMAL"),
                status("c", true, "NORMAL"),
            ],
            2,
        )
    }

    #[test]
    fn primary_is_the_first_token_at_or_after_the_key_wrapping() {
        let v = abc(true);
        let none = |_: &str| false;
        assert_eq!(
            ids(&v.targets(0, none)),
            ["b", "a", "c"],
            "token on a vnode"
        );
        assert_eq!(ids(&v.targets(1, none)), ["a", "c", "b"]);
        assert_eq!(ids(&v.targets(51, none)), ["c", "a", "b"]);
        assert_eq!(ids(&v.targets(101, none)), ["a", "b", "c"], "wraps");
        assert_eq!(ids(&v.targets(i64::MIN, none)), ["a", "b", "c"]);
        assert_eq!(ids(&v.targets(i64::MAX, none)), ["a", "b", "c"]);
    }

    #[test]
    fn down_and_suspect_nodes_go_last_but_stay() {
        let v = abc(false);
        assert_eq!(ids(&v.targets(0, |_| false)), ["a", "c", "b"]);
        let v = abc(true);
        assert_eq!(ids(&v.targets(0, |a| a == "b:1")), ["a", "c", "b"]);
    }

    #[test]
    fn left_nodes_and_unknown_owners_are_not_targets() {
        let v = ring(
            &[(0, "a"), (10, "gone"), (20, "ghost")],
            vec![status("a", true, "NORMAL"), status("gone", false, "LEFT")],
            3,
        );
        assert_eq!(ids(&v.targets(5, |_| false)), ["a"]);
        assert!(v.knows("a") && !v.knows("gone") && !v.knows("ghost"));
        assert!(RingView::from_proto(&pb::RingResponse::default()).is_none());
    }

    #[test]
    fn every_member_appears_once() {
        let nodes: Vec<_> = (0..7)
            .map(|i| status(&format!("n{i}"), true, "NORMAL"))
            .collect();
        let toks: Vec<(i64, String)> = (0..70)
            .map(|i| ((i as i64 - 35) * 1_000_003, format!("n{}", (i * 3) % 7)))
            .collect();
        let toks: Vec<(i64, &str)> = toks.iter().map(|(t, n)| (*t, n.as_str())).collect();
        let v = ring(&toks, nodes, 3);
        for t in [-40_000_000, -1, 0, 7, 40_000_000] {
            let targets = v.targets(t, |_| false);
            let mut got = ids(&targets);
            assert_eq!(got.len(), 7);
            got.sort();
            got.dedup();
            assert_eq!(got.len(), 7);
        }
    }
}
