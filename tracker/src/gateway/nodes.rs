//! The nodes an operation may use. [`Nodes`] keeps what the gateway learns about nodes between
//! operations (scores as of the health worker's latest pass, per-node back-off after failed
//! directives, transfers in flight); [`NodeSnapshot`] is one consistent view of it together with
//! the control hub's connected nodes, taken once per operation. Uploads, reads, repair and
//! audits all see nodes through a snapshot, so they judge the same facts; the repair planner
//! applies its own placement rules (`crate::repair`) to the statuses a snapshot gives it.
//!
//! Rules a snapshot applies:
//! - a node serves (reads, repair sources, audits) only while connected with a data port and not
//!   disqualified; trusted nodes are asked first;
//! - a node takes new copies only while connected with a data port, registered and not revoked
//!   (a revoked node's connection is closing), high or low tier (a node without a score yet is
//!   new, so low), and not excluded by the caller; nodes backing off after failed directives are
//!   used only when the others cannot take the copies.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use raidtorrent_codec::InfoHash;

use super::config::HealthConfig;
use super::GatewayError;
use crate::control::{ConnectedNode, ControlHub};
use crate::placement::{network_of, NodeView};
use crate::registry::records::TransferOutcome;
use crate::registry::{unix_now, NodeId, Registry};
use crate::repair::NodeStatus;
use crate::scoring::{AuditOutcome, NodeTier, Score, ScoringConfig, TransferKind};

/// What the gateway keeps about nodes between operations; shared by every part of it.
pub(super) struct Nodes {
    hub: ControlHub,
    registry: Registry,
    /// The gateway's own seeder, registered as a node: never a placement target or repair node.
    own: NodeId,
    scores: RwLock<Arc<HashMap<NodeId, Score>>>,
    /// When `scores` were computed, and the registry's standing version read just before.
    scored: Mutex<Option<(Instant, u64)>>,
    /// Scores older than this are computed afresh; a change in standing does it at once.
    scores_every: Duration,
    traffic: Mutex<Traffic>,
    backoff_base: Duration,
    backoff_max: Duration,
}

/// Whether scores computed at `last` (when, and the standing version then) must be computed
/// again at `now`: never computed, older than `every`, or the standing changed since (a node
/// registered, revoked or requalified, an audit not passed), which a placement or a drain must
/// see at once. The rest of a score (uptime over days, transfer averages) moves slowly; at
/// 100,000 nodes scoring reads millions of rows, so it waits for `every`.
fn scores_due(last: Option<(Instant, u64)>, version: u64, now: Instant, every: Duration) -> bool {
    match last {
        None => true,
        Some((at, seen)) => seen != version || now.saturating_duration_since(at) >= every,
    }
}

/// Back-off and load per node.
#[derive(Default)]
struct Traffic {
    /// Failed directives in a row, and the end of the current back-off.
    failures: HashMap<NodeId, (u32, Instant)>,
    /// Transfers in flight to or from the node.
    load: HashMap<NodeId, u32>,
}

impl Traffic {
    fn backing_off(&self, node: NodeId, now: Instant) -> bool {
        self.failures
            .get(&node)
            .is_some_and(|(_, until)| *until > now)
    }
}

impl Nodes {
    pub(super) fn new(
        hub: ControlHub,
        registry: Registry,
        own: NodeId,
        cfg: &HealthConfig,
    ) -> Self {
        Nodes {
            hub,
            registry,
            own,
            scores: RwLock::new(Arc::new(HashMap::new())),
            scored: Mutex::new(None),
            scores_every: cfg.scores_every,
            traffic: Mutex::new(Traffic::default()),
            backoff_base: cfg.backoff_base,
            backoff_max: cfg.backoff_max,
        }
    }

    pub(super) fn hub(&self) -> &ControlHub {
        &self.hub
    }

    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The announce token for the torrents `node` is handed; `None` once it is revoked.
    pub(super) fn announce_token(&self, node: NodeId) -> Option<String> {
        self.registry.announce_token(node)
    }

    /// One view of every node, taken now.
    pub(super) fn snapshot(&self) -> NodeSnapshot {
        let connected = self
            .hub
            .connected()
            .into_iter()
            .filter(|c| self.registry.is_valid(c.node))
            .map(|c| (c.node, c))
            .collect();
        let now = Instant::now();
        let traffic = self.traffic.lock().expect("traffic lock");
        let backing_off = traffic
            .failures
            .keys()
            .copied()
            .filter(|n| traffic.backing_off(*n, now))
            .collect();
        NodeSnapshot {
            own: self.own,
            connected,
            scores: self.scores(),
            backing_off,
            load: traffic.load.clone(),
        }
    }

    /// Scores as of the health worker's latest pass.
    pub(crate) fn scores(&self) -> Arc<HashMap<NodeId, Score>> {
        self.scores.read().expect("scores lock").clone()
    }

    /// Scores every node afresh from its records when they are due ([`scores_due`]); every
    /// later snapshot sees them. `shared`: other gateways write records to the same database,
    /// so the scores are computed from the records, not from this gateway's facts book. Returns
    /// whether it scored.
    pub(super) async fn refresh_scores(
        &self,
        cfg: &ScoringConfig,
        shared: bool,
    ) -> Result<bool, GatewayError> {
        let version = self.registry.standing_version();
        let last = *self.scored.lock().expect("scored lock");
        if !scores_due(last, version, Instant::now(), self.scores_every) {
            return Ok(false);
        }
        if shared {
            self.registry.forget_book().await;
        }
        let scores = self
            .registry
            .scores(unix_now(), cfg)
            .await
            .map_err(|e| GatewayError::Internal(format!("scores: {e}")))?;
        *self.scores.write().expect("scores lock") = Arc::new(scores);
        *self.scored.lock().expect("scored lock") = Some((Instant::now(), version));
        Ok(true)
    }

    /// A directive to `node` starts a transfer.
    pub(super) fn transfer_started(&self, node: NodeId) {
        let mut t = self.traffic.lock().expect("traffic lock");
        *t.load.entry(node).or_default() += 1;
    }

    /// The transfer ended: a failure backs the node off (doubling per failure in a row), a
    /// success ends its back-off; `None` (cancelled before an answer) only ends the load.
    pub(super) fn transfer_ended(&self, node: NodeId, ok: Option<bool>) {
        let mut t = self.traffic.lock().expect("traffic lock");
        if let Some(l) = t.load.get_mut(&node) {
            *l = l.saturating_sub(1);
            if *l == 0 {
                t.load.remove(&node);
            }
        }
        let Some(ok) = ok else { return };
        if ok {
            t.failures.remove(&node);
            return;
        }
        let (base, max) = (self.backoff_base, self.backoff_max);
        let e = t.failures.entry(node).or_insert((0, Instant::now()));
        let delay = base.saturating_mul(1 << e.0.min(16)).min(max);
        e.0 += 1;
        e.1 = Instant::now() + delay;
    }

    /// Adds a transfer outcome to the node's record, with the records' next batch; a failure
    /// to record is logged, not fatal.
    pub(super) async fn record_transfer(&self, t: TransferRecord<'_>) {
        let outcome = TransferOutcome {
            node: t.node,
            kind: t.kind,
            info_hash: *t.info_hash,
            ok: t.ok,
            bytes: t.bytes,
            millis: u64::try_from(t.took.as_millis()).unwrap_or(u64::MAX),
            at: unix_now(),
        };
        if let Err(e) = self.hub.recorder().transfer(outcome).await {
            tracing::warn!(node = t.node, error = %e, "transfer outcome not recorded");
        }
    }
}

impl Nodes {
    /// Adds an audit's outcome to the node's record.
    pub(super) async fn record_audit(
        &self,
        node: NodeId,
        info_hash: &InfoHash,
        outcome: AuditOutcome,
        detail: &str,
        now: i64,
    ) -> Result<(), GatewayError> {
        self.registry
            .record_audit(node, &info_hash.to_hex(), outcome, detail, now)
            .await
            .map_err(|e| GatewayError::Internal(format!("recording an audit: {e}")))
    }
}

/// One transfer's outcome, for a node's record.
pub(super) struct TransferRecord<'a> {
    pub node: NodeId,
    pub kind: TransferKind,
    pub info_hash: &'a InfoHash,
    pub ok: bool,
    pub bytes: u64,
    pub took: Duration,
}

/// Every node as one operation sees it.
pub(super) struct NodeSnapshot {
    own: NodeId,
    connected: HashMap<NodeId, ConnectedNode>,
    scores: Arc<HashMap<NodeId, Score>>,
    backing_off: HashSet<NodeId>,
    load: HashMap<NodeId, u32>,
}

/// What a connected node last reported about one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reported {
    /// The node is not connected: its copies are judged by the grace period.
    Offline,
    /// Connected, but no report yet.
    NotYet,
    Holds,
    Lacks,
}

impl NodeSnapshot {
    /// Where a connected node accepts BitTorrent connections.
    pub(super) fn data_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.connected.get(&node)?.data_addr
    }

    /// The data addresses of those of `nodes` that are connected.
    pub(super) fn data_addrs(&self, nodes: &[NodeId]) -> Vec<SocketAddr> {
        nodes.iter().filter_map(|n| self.data_addr(*n)).collect()
    }

    /// Which node listens at each data address.
    pub(super) fn by_addr(&self) -> HashMap<SocketAddr, NodeId> {
        self.connected
            .values()
            .filter_map(|c| Some((c.data_addr?, c.node)))
            .collect()
    }

    pub(super) fn connected(&self, node: NodeId) -> Option<&ConnectedNode> {
        self.connected.get(&node)
    }

    pub(super) fn scores(&self) -> &HashMap<NodeId, Score> {
        &self.scores
    }

    fn tier(&self, node: NodeId) -> NodeTier {
        // A node without a score yet (just registered) is new: low tier until vetted.
        self.scores.get(&node).map_or(NodeTier::Low, |s| s.tier)
    }

    /// Whether a node's copies may serve reads, repairs and audits.
    pub(super) fn may_serve(&self, node: NodeId) -> bool {
        self.tier(node) != NodeTier::Disqualified
    }

    /// The data addresses of those `holders` that may serve, better-scored nodes first.
    pub(super) fn sources(&self, holders: &[NodeId]) -> Vec<SocketAddr> {
        let mut ranked: Vec<NodeId> = holders
            .iter()
            .copied()
            .filter(|n| self.may_serve(*n))
            .collect();
        let value = |n: &NodeId| self.scores.get(n).map_or(0.0, |s| s.value);
        ranked.sort_by(|a, b| value(b).total_cmp(&value(a)));
        self.data_addrs(&ranked)
    }

    /// Nodes that may take new copies, leaving out `excluded` and, unless `with_backing_off`,
    /// the nodes backing off.
    pub(super) fn placement(&self, excluded: &[NodeId], with_backing_off: bool) -> Vec<NodeView> {
        let mut views: Vec<NodeView> = self
            .connected
            .values()
            .filter(|c| c.node != self.own && c.data_addr.is_some())
            .filter(|c| !excluded.contains(&c.node))
            .filter(|c| with_backing_off || !self.backing_off.contains(&c.node))
            .filter(|c| matches!(self.tier(c.node), NodeTier::High | NodeTier::Low))
            .map(|c| NodeView {
                id: c.node,
                tier: self.tier(c.node),
                zone: c.zone.clone(),
                free: c.free,
                capacity: c.capacity,
                load: self.load.get(&c.node).copied().unwrap_or(0),
                // Where the connection comes from, not what the node says.
                network: network_of(c.peer_addr.ip()),
            })
            .collect();
        views.sort_by_key(|v| v.id);
        views
    }

    /// Nodes backing off after failed directives.
    pub(super) fn backing_off(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.backing_off.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// What `node` last reported about `info_hash`.
    pub(super) fn reported(&self, node: NodeId, info_hash: &InfoHash) -> Reported {
        match self.connected.get(&node).map(|c| &c.held) {
            None => Reported::Offline,
            Some(None) => Reported::NotYet,
            Some(Some(held)) if held.contains(info_hash) => Reported::Holds,
            Some(Some(_)) => Reported::Lacks,
        }
    }

    /// What each connected node (the gateway's own seeder aside) last reported holding or
    /// fetching (the shards of its transfers), with how long it has been connected; nodes
    /// without a report yet are left out.
    pub(super) fn reported_copies(&self) -> Vec<(NodeId, Duration, Vec<InfoHash>)> {
        let mut out: Vec<_> = self
            .connected
            .values()
            .filter(|c| c.node != self.own)
            .filter_map(|c| {
                let (report, held) = (c.report.as_ref()?, c.held.as_ref()?);
                let mut ihs: Vec<InfoHash> = held.iter().copied().collect();
                ihs.extend(report.transfers.iter().map(|t| t.ih));
                let since = c.connected_since.elapsed().unwrap_or_default();
                Some((c.node, since, ihs))
            })
            .collect();
        out.sort_by_key(|(node, ..)| *node);
        out
    }

    /// Whether `node` can be audited: connected with a data port and not disqualified.
    pub(super) fn auditable(&self, node: NodeId) -> bool {
        self.data_addr(node).is_some() && self.may_serve(node)
    }

    /// Whether `node` has been connected for at least `settle`.
    pub(super) fn settled(&self, node: NodeId, settle: Duration) -> bool {
        self.connected
            .get(&node)
            .is_some_and(|c| c.connected_since.elapsed().is_ok_and(|d| d >= settle))
    }

    /// Every scored node as the repair planner sees it; the gateway's own seeder is not a node.
    /// `seen` remembers when each node was last connected with a data port (a connection without
    /// one cannot serve, so its node counts as away), its zone and its capacity.
    pub(super) fn statuses(&self, seen: &mut Seen) -> Vec<NodeStatus> {
        let now = Instant::now();
        for c in self.connected.values().filter(|c| c.data_addr.is_some()) {
            seen.last.insert(c.node, (now, c.zone.clone(), c.capacity));
        }
        self.scores
            .iter()
            .filter(|(id, _)| **id != self.own)
            .map(|(&id, score)| {
                let online = self.connected.get(&id).filter(|c| c.data_addr.is_some());
                let (last, zone, capacity) =
                    seen.last
                        .get(&id)
                        .cloned()
                        .unwrap_or((seen.started, String::new(), 0));
                NodeStatus {
                    id,
                    zone,
                    tier: score.tier,
                    online: online.is_some(),
                    offline_secs: match online {
                        Some(_) => 0,
                        None => now.duration_since(last).as_secs(),
                    },
                    free: online.map_or(0, |c| c.free),
                    capacity: online.map_or(capacity, |c| c.capacity),
                    load: self.load.get(&id).copied().unwrap_or(0),
                    backing_off: self.backing_off.contains(&id),
                    poor_hours: score.poor_hours_mask(),
                }
            })
            .collect()
    }
}

/// When each node was last seen connected, with its zone and capacity then: what the planner
/// knows of nodes that are gone.
pub(super) struct Seen {
    started: Instant,
    last: HashMap<NodeId, (Instant, String, u64)>,
}

impl Seen {
    pub(super) fn new() -> Self {
        Seen {
            started: Instant::now(),
            last: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_due_when_never_computed_old_or_standing_changed() {
        let every = Duration::from_secs(300);
        let t0 = Instant::now();
        assert!(scores_due(None, 0, t0, every));
        let last = Some((t0, 7));
        assert!(!scores_due(last, 7, t0 + Duration::from_secs(299), every));
        assert!(scores_due(last, 7, t0 + every, every));
        assert!(scores_due(last, 8, t0 + Duration::from_secs(1), every));
        assert!(scores_due(last, 7, t0, Duration::ZERO));
    }
}
