//! The simulated network: every message between simulated nodes passes a chain of filters
//! that can refuse, drop, delay or black-hole it, on one link or all, for every kind of
//! message or only some (only hint replays, only gossip, ...).
//!
//! Invariants kept here:
//! - a message's fate is decided when it is sent, by the filters in place then, in order:
//!   the link's own state (set through [`Link`]) first, then added filters in the order
//!   they were added; each delay adds to its wait, and the first filter that stops it
//!   (refuse, black-hole, or a drop that comes up) decides its fate;
//! - every random decision is drawn from its link's own generator, seeded from the
//!   network's seed and the link's two ends: for one seed, the n-th message a lossy filter
//!   judges on a link always meets the same fate, whatever other links carry meanwhile;
//! - [`SimNet::heal`] removes every filter but keeps the generators, so a run's later
//!   decisions still follow from its seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringdb_node::api::internode::InternodeService;
use ringdb_node::transport::{MessageKind, PeerRequest, PeerResponse, Transport, TransportError};

/// What happens to messages on a link from one node to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// Delivered.
    Up,
    /// Refused at once, like a closed port.
    Refused,
    /// Never answered, like a dropped packet; the caller's timeout decides.
    Blackhole,
    /// Delivered after a delay.
    Slow(Duration),
    /// Each message lost with this probability.
    Lossy(f64),
}

impl Link {
    /// The filter that gives the link from `from` to `to` this behaviour.
    fn filter(self, from: &str, to: &str) -> Option<Filter> {
        let action = match self {
            Link::Up => return None,
            Link::Refused => Action::Refuse,
            Link::Blackhole => Action::Blackhole,
            Link::Slow(d) => Action::Delay(d),
            Link::Lossy(p) => Action::Drop(p),
        };
        Some(Filter::new(action).link(from, to))
    }
}

/// What a filter does to a message it catches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Refused at once, like a closed port.
    Refuse,
    /// Never answered; the caller's timeout decides.
    Blackhole,
    /// Delivered after this delay.
    Delay(Duration),
    /// Lost with this probability; the sender learns at once, as from a reset connection.
    Drop(f64),
}

/// One rule of the simulated network: an action on the messages it catches, chosen by
/// sender, receiver and kind (each unset means any).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    from: Option<String>,
    to: Option<String>,
    kinds: Option<Vec<MessageKind>>,
    action: Action,
}

impl Filter {
    /// `action` on every message on every link, until narrowed.
    pub fn new(action: Action) -> Filter {
        Filter {
            from: None,
            to: None,
            kinds: None,
            action,
        }
    }

    /// Refuse the messages caught.
    pub fn refuse() -> Filter {
        Self::new(Action::Refuse)
    }

    /// Never answer the messages caught.
    pub fn blackhole() -> Filter {
        Self::new(Action::Blackhole)
    }

    /// Deliver the messages caught after `d`.
    pub fn delay(d: Duration) -> Filter {
        Self::new(Action::Delay(d))
    }

    /// Lose each message caught with probability `p` (1.0: every one).
    pub fn drop(p: f64) -> Filter {
        Self::new(Action::Drop(p))
    }

    /// Only messages sent by `node`.
    pub fn from(mut self, node: &str) -> Filter {
        self.from = Some(node.to_string());
        self
    }

    /// Only messages sent to `node`.
    pub fn to(mut self, node: &str) -> Filter {
        self.to = Some(node.to_string());
        self
    }

    /// Only messages on the link from `from` to `to`.
    pub fn link(self, from: &str, to: &str) -> Filter {
        self.from(from).to(to)
    }

    /// Only messages of these kinds.
    pub fn only(mut self, kinds: &[MessageKind]) -> Filter {
        self.kinds = Some(kinds.to_vec());
        self
    }

    fn catches(&self, from: &str, to: &str, kind: MessageKind) -> bool {
        self.from.as_deref().is_none_or(|f| f == from)
            && self.to.as_deref().is_none_or(|t| t == to)
            && self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

/// What the network decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at once.
    Delivered,
    /// Delivered after this long.
    Delayed(Duration),
    /// Lost; the sender was told.
    Dropped,
    /// Refused.
    Refused,
    /// Never answered.
    Blackholed,
}

/// Names an added filter, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterId(u64);

/// The messages one link carried, in the order they were sent, and their fates.
pub type LinkLog = Vec<(MessageKind, Fate)>;

type LinkKey = (String, String);

struct NetState {
    services: HashMap<String, Arc<InternodeService>>,
    /// Each link's own state, set through [`Link`].
    links: HashMap<LinkKey, Filter>,
    /// Filters added by tests, in order.
    filters: Vec<(FilterId, Filter)>,
    next_filter: u64,
    /// Each link's random generator, created on its first random decision.
    rngs: HashMap<LinkKey, StdRng>,
    /// Each link's decisions, while recording.
    log: Option<BTreeMap<LinkKey, LinkLog>>,
}

/// The simulated network every node of a `SimCluster` uses.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
    seed: u64,
}

impl SimNet {
    /// An empty network whose random decisions all follow from `seed`.
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            state: Arc::new(Mutex::new(NetState {
                services: HashMap::new(),
                links: HashMap::new(),
                filters: Vec::new(),
                next_filter: 0,
                rngs: HashMap::new(),
                log: None,
            })),
            seed,
        }
    }

    /// The seed the network's random decisions follow from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set the link from `from` to `to` (one direction).
    pub fn set(&self, from: &str, to: &str, link: Link) {
        let key = (from.to_string(), to.to_string());
        let mut s = self.lock();
        match link.filter(from, to) {
            Some(f) => s.links.insert(key, f),
            None => s.links.remove(&key),
        };
    }

    /// Cut `node` off from everyone, both directions, with `link` behaviour.
    pub fn isolate(&self, node: &str, others: &[String], link: Link) {
        for o in others.iter().filter(|o| o.as_str() != node) {
            self.set(node, o, link);
            self.set(o, node, link);
        }
    }

    /// Set every link between distinct nodes to `link`.
    pub fn set_all(&self, nodes: &[String], link: Link) {
        for a in nodes {
            for b in nodes.iter().filter(|b| *b != a) {
                self.set(a, b, link);
            }
        }
    }

    /// Add `filter` after those already in place.
    pub fn add_filter(&self, filter: Filter) -> FilterId {
        let mut s = self.lock();
        let id = FilterId(s.next_filter);
        s.next_filter += 1;
        s.filters.push((id, filter));
        id
    }

    /// Remove an added filter (links set through [`Link`] stay as they are).
    pub fn remove_filter(&self, id: FilterId) {
        self.lock().filters.retain(|(i, _)| *i != id);
    }

    /// Restore every link: every link state and added filter is removed.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.links.clear();
        s.filters.clear();
    }

    /// Record every message's fate from now on, starting from an empty log.
    pub fn start_log(&self) {
        self.lock().log = Some(BTreeMap::new());
    }

    /// The recorded messages and fates of every link that carried one, by (from, to).
    pub fn log(&self) -> BTreeMap<(String, String), LinkLog> {
        self.lock().log.clone().unwrap_or_default()
    }

    /// The recorded messages and fates of the link from `from` to `to`.
    pub fn link_log(&self, from: &str, to: &str) -> LinkLog {
        let key = (from.to_string(), to.to_string());
        let s = self.lock();
        s.log
            .as_ref()
            .and_then(|l| l.get(&key).cloned())
            .unwrap_or_default()
    }

    /// A transport sending as `from` with no node behind it, so a test can put messages
    /// of its choice through the filters.
    pub fn endpoint(&self, from: &str) -> SimTransport {
        SimTransport::new(self.clone(), from, Arc::new(AtomicBool::new(true)))
    }

    /// Make `node` reachable through `service`.
    pub(super) fn attach(&self, node: &str, service: Arc<InternodeService>) {
        self.lock().services.insert(node.to_string(), service);
    }

    /// Make `node` unreachable: messages to it are refused.
    pub(super) fn detach(&self, node: &str) {
        self.lock().services.remove(node);
    }

    /// Decide a message's fate from the filters in place now.
    fn judge(&self, from: &str, to: &str, kind: MessageKind) -> Fate {
        let key = (from.to_string(), to.to_string());
        let mut guard = self.lock();
        let NetState {
            links,
            filters,
            rngs,
            log,
            ..
        } = &mut *guard;
        let mut wait = Duration::ZERO;
        let mut fate = None;
        let chain = links
            .get(&key)
            .into_iter()
            .chain(filters.iter().map(|(_, f)| f));
        for f in chain.filter(|f| f.catches(from, to, kind)) {
            match f.action {
                Action::Delay(d) => wait += d,
                Action::Refuse => fate = Some(Fate::Refused),
                Action::Blackhole => fate = Some(Fate::Blackholed),
                Action::Drop(p) => {
                    let rng = rngs
                        .entry(key.clone())
                        .or_insert_with(|| link_rng(self.seed, from, to));
                    if rng.gen::<f64>() < p {
                        fate = Some(Fate::Dropped);
                    }
                }
            }
            if fate.is_some() {
                break;
            }
        }
        let fate = fate.unwrap_or(if wait.is_zero() {
            Fate::Delivered
        } else {
            Fate::Delayed(wait)
        });
        if let Some(log) = log {
            log.entry(key).or_default().push((kind, fate));
        }
        fate
    }

    /// Put one message on the link from `from` to `to`: its fate, then the receiving
    /// node's service if it gets there.
    async fn deliver(
        &self,
        from: &str,
        to: &str,
        kind: MessageKind,
    ) -> Result<Arc<InternodeService>, TransportError> {
        match self.judge(from, to, kind) {
            Fate::Delivered => {}
            Fate::Delayed(d) => tokio::time::sleep(d).await,
            Fate::Refused => {
                return Err(TransportError::Unreachable(format!(
                    "{to}: connection refused (simulated)"
                )))
            }
            Fate::Dropped => {
                return Err(TransportError::Unreachable(format!(
                    "{to}: message lost (simulated)"
                )))
            }
            Fate::Blackholed => std::future::pending::<()>().await,
        }
        self.lock()
            .services
            .get(to)
            .cloned()
            .ok_or_else(|| TransportError::Unreachable(format!("{to}: no such node")))
    }
}

/// A link's own generator: FNV-1a over the seed and the link's ends, so it depends on
/// nothing but those (not on the order links first carry a message, nor on the platform).
fn link_rng(seed: u64, from: &str, to: &str) -> StdRng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(from.bytes())
        .chain([0])
        .chain(to.bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    StdRng::seed_from_u64(h)
}

/// One node's view of the simulated network.
pub struct SimTransport {
    net: SimNet,
    from: String,
    /// Cleared when this incarnation crashes: it sends nothing more.
    alive: Arc<AtomicBool>,
}

impl SimTransport {
    /// `from`'s transport on `net`, sending while `alive` is set.
    pub(super) fn new(net: SimNet, from: &str, alive: Arc<AtomicBool>) -> SimTransport {
        SimTransport {
            net,
            from: from.to_string(),
            alive,
        }
    }
}

#[async_trait]
impl Transport for SimTransport {
    /// Through the filters to the receiving node's own dispatch, as its server would.
    async fn call(&self, to: &str, request: PeerRequest) -> Result<PeerResponse, TransportError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(TransportError::Unreachable(format!(
                "{}: crashed (simulated)",
                self.from
            )));
        }
        let service = self.net.deliver(&self.from, to, request.kind()).await?;
        Ok(service.handle(request).await?)
    }
}
