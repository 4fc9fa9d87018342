//! Repair and rebalance planning: which shards lack copies, which copies move, and which go,
//! riskiest first.
//!
//! A pure function over a snapshot ([`ObjectState`]s with their copies, [`NodeStatus`]es): no I/O,
//! no clock. The gateway's health worker takes a snapshot, plans, and carries the tasks out with
//! hold and drop directives; the simulations in `sim.rs` drive it over thousands of nodes with
//! churn.
//!
//! Each copy of a shard is, from its node's status and its own audit record:
//! - **live**: the node is connected and trusted, and the copy passed its audits so far;
//! - **away**: the node is offline, but for less than the grace period (a restart, a short
//!   outage): the copy still counts, but cannot serve as a source;
//! - **lost**: the node has been offline longer than the grace period;
//! - **bad**: the copy failed an audit (it served pieces that do not match their hashes), or its
//!   node is disqualified. A bad copy never counts and never serves as a source.
//!
//! Invariants the plan keeps (checked by the simulations):
//! - a drop never leaves a shard with fewer than `copies` live copies, except that a bad copy may
//!   go once the shard has `copies` counted copies without it, and a plan drops at most one live
//!   copy of a shard (the next plan sees the result); so no plan ever removes the last
//!   copies of a shard, and a copy is only moved by adding its replacement first (the drop comes in
//!   a later plan, once the new copy is confirmed and counts as live);
//! - a shard below `copies` counted copies with a live copy is copied from its live copies (swarm
//!   repair: every source uploads at once); a shard with no counted copy is rebuilt with
//!   Reed-Solomon when at least `k` shards of its object have a live copy;
//! - objects closer to loss come first (fewer shards with a live copy beyond `k`, then fewer
//!   copies), so capacity and the task budget go to them;
//! - rebalance (moves off suspended and nearly full nodes, toward zone spread and the high-tier
//!   share, and toward a node online at the hours the object is read) only touches objects that are otherwise healthy, a bounded number per plan, and only
//!   when the new place is actually better, so moves never oscillate.

use std::collections::{HashMap, HashSet};

use crate::placement::{self, NodeView, Policy, ShardNeed};
use crate::scoring::NodeTier;
use raidtorrent_codec::InfoHash;

pub mod dirty;
mod moves;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

/// A distinct info-hash per (object, shard), for tests and simulations.
#[cfg(test)]
fn test_hash(object: u64, shard: u64) -> InfoHash {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&object.to_be_bytes());
    h[8..16].copy_from_slice(&shard.to_be_bytes());
    InfoHash(h)
}

pub use crate::ids::NodeId;

/// How the gateway sees a node when it plans.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub zone: String,
    pub tier: NodeTier,
    /// Connected now.
    pub online: bool,
    /// Seconds since it was last connected (0 while online).
    pub offline_secs: u64,
    /// Bytes it can still take.
    pub free: u64,
    /// Bytes it donates in all.
    pub capacity: u64,
    /// Transfers in flight to or from it.
    pub load: u32,
    /// Directives to it recently failed: give it no new copies for now.
    pub backing_off: bool,
    /// UTC hours of the day (bit h for hour h) at which it is often offline.
    pub poor_hours: u32,
}

/// One copy of a shard, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    pub node: NodeId,
    /// The copy failed an audit (served pieces that do not match their hashes).
    pub failed_audit: bool,
}

/// A shard of an object, with its recorded copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardState {
    pub idx: u32,
    pub info_hash: InfoHash,
    pub length: u64,
    pub copies: Vec<CopyState>,
}

/// A stored object: its policy and its shards (all `k + m` of them, in index order).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectState {
    pub id: i64,
    pub policy: Policy,
    pub shards: Vec<ShardState>,
    /// UTC hours of the day (bit h for hour h) at which the object has been read.
    pub read_hours: u32,
}

/// Knobs of the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    /// Seconds an offline node's copies still count.
    pub grace_secs: u64,
    /// Share of its capacity above which a node's copies are moved elsewhere (0..=1).
    pub quota_high_water: f64,
    /// Most copy, rebuild and drop tasks in one plan.
    pub max_tasks: usize,
    /// Most rebalance moves in one plan (within `max_tasks`).
    pub max_moves: usize,
    /// Nodes drawn as placement candidates for each object repaired or moved, besides its
    /// holders; 0, or a fleet no larger, considers every node.
    pub candidates: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            grace_secs: 900,
            quota_high_water: 0.95,
            max_tasks: 64,
            max_moves: 8,
            candidates: 1024,
        }
    }
}

/// A shard named in a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRef {
    pub idx: u32,
    pub info_hash: InfoHash,
    pub length: u64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `targets` fetch the shard from `sources` (all of them upload at once).
    Copy {
        shard: ShardRef,
        sources: Vec<NodeId>,
        targets: Vec<NodeId>,
    },
    /// These shards have no copy left: rebuild them from the object's shards that have live
    /// copies (`sources`: shard index and its live holders), then give each its targets.
    Rebuild {
        shards: Vec<(ShardRef, Vec<NodeId>)>,
        sources: Vec<(u32, Vec<NodeId>)>,
    },
    /// Remove the copy on `node`.
    Drop { shard: ShardRef, node: NodeId },
}

/// Why a task is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Why {
    /// Fewer counted copies than the policy wants.
    Repair,
    /// No copy left at all.
    Rebuild,
    /// The copy sits on a suspended node.
    Drain,
    /// The copy sits on a nearly full node.
    Quota,
    /// Two copies of the shard share a zone while another zone has room.
    ZoneSpread,
    /// Fewer high-tier copies than the bucket's share while high-tier nodes have room.
    TierShare,
    /// Every copy sits on a node that is often offline at the hours the object is read.
    ReadHours,
    /// More live copies than the policy wants (a node came back, or a move finished).
    Surplus,
    /// The copy failed an audit or its node was disqualified.
    BadCopy,
}

/// How close an object is to loss; smaller is riskier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Risk {
    /// Shards with a live copy, minus `k` (negative: unreadable now).
    pub margin: i64,
    /// Counted copies of the shard the task is about (of the object's weakest shard for rebuilds).
    pub copies: usize,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub object: i64,
    pub why: Why,
    pub risk: Risk,
    pub action: Action,
}

/// What the plan found, for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    pub objects: usize,
    pub shards: usize,
    /// Shards with fewer counted copies than their policy wants.
    pub shards_under: usize,
    /// Shards with no counted copy.
    pub shards_without_copy: usize,
    /// Objects readable with a margin but with a shard below its copies.
    pub objects_degraded: usize,
    /// Objects with at most `k` shards that have a live copy (one more loss and they are unreadable).
    pub objects_at_risk: usize,
    /// Objects with fewer than `k` shards with a live or away copy: unreadable until nodes return.
    pub objects_unreadable: usize,
    /// Copies beyond what policies want.
    pub surplus_copies: usize,
    /// Copies that failed audits or sit on disqualified nodes.
    pub bad_copies: usize,
    /// Shards by their number of live copies: entry `i` counts shards with `i` live copies, the
    /// last entry those with [`LIVE_COPIES_SHOWN`] or more.
    pub shards_by_live_copies: Vec<usize>,
}

/// Live-copy counts shown one by one in [`Health::shards_by_live_copies`].
pub const LIVE_COPIES_SHOWN: usize = 6;

/// One object's share of [`Health`], kept per object so that totals follow incremental passes
/// (`dirty.rs`): adding every object's share gives what a plan over all objects reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectHealth {
    pub shards: u32,
    pub shards_under: u32,
    pub shards_without_copy: u32,
    pub surplus_copies: u32,
    pub bad_copies: u32,
    pub degraded: bool,
    pub at_risk: bool,
    pub unreadable: bool,
    /// Shards by live copies, as in [`Health::shards_by_live_copies`].
    pub by_live_copies: [u32; LIVE_COPIES_SHOWN + 1],
}

impl ObjectHealth {
    /// Whether a plan could have work on the object now: a shard below its copies, a surplus
    /// copy, or a bad one.
    pub fn needs_work(&self) -> bool {
        self.shards_under > 0 || self.surplus_copies > 0 || self.bad_copies > 0
    }
}

impl Health {
    /// Counts one more object.
    pub fn add(&mut self, h: &ObjectHealth) {
        self.apply(h, |total, n| *total += n);
    }

    /// Takes back an object [`Health::add`] counted.
    pub fn sub(&mut self, h: &ObjectHealth) {
        self.apply(h, |total, n| *total -= n);
        while self.shards_by_live_copies.last() == Some(&0) {
            self.shards_by_live_copies.pop();
        }
    }

    fn apply(&mut self, h: &ObjectHealth, f: impl Fn(&mut usize, usize)) {
        f(&mut self.objects, 1);
        f(&mut self.shards, h.shards as usize);
        f(&mut self.shards_under, h.shards_under as usize);
        f(
            &mut self.shards_without_copy,
            h.shards_without_copy as usize,
        );
        f(&mut self.surplus_copies, h.surplus_copies as usize);
        f(&mut self.bad_copies, h.bad_copies as usize);
        f(&mut self.objects_degraded, usize::from(h.degraded));
        f(&mut self.objects_at_risk, usize::from(h.at_risk));
        f(&mut self.objects_unreadable, usize::from(h.unreadable));
        let used = h
            .by_live_copies
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, |i| i + 1);
        if self.shards_by_live_copies.len() < used {
            self.shards_by_live_copies.resize(used, 0);
        }
        for (total, &n) in self.shards_by_live_copies.iter_mut().zip(&h.by_live_copies) {
            f(total, n as usize);
        }
    }
}

/// How close an object is to loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Redundancy {
    /// Every shard has the copies its policy wants.
    Healthy,
    /// Readable with a margin, but some shard lacks copies.
    Degraded,
    /// At most `k` shards have a live copy: one more loss and it is unreadable.
    AtRisk,
    /// Fewer than `k` shards have a live or away copy.
    Unreadable,
}

impl Redundancy {
    pub fn as_str(self) -> &'static str {
        match self {
            Redundancy::Healthy => "healthy",
            Redundancy::Degraded => "degraded",
            Redundancy::AtRisk => "at_risk",
            Redundancy::Unreadable => "unreadable",
        }
    }
}

/// One object's copies as the planner classes them, and its redundancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub redundancy: Redundancy,
    /// Per shard (in the object's order), each recorded copy and its class.
    pub copies: Vec<Vec<(NodeId, CopyClass)>>,
}

/// Classes every copy of `o` against `nodes`, as a plan would.
pub fn assess(o: &ObjectState, nodes: &[NodeStatus], grace_secs: u64) -> Assessment {
    let by_id: HashMap<NodeId, &NodeStatus> = nodes.iter().map(|n| (n.id, n)).collect();
    let copies: Vec<Vec<(NodeId, CopyClass)>> = o
        .shards
        .iter()
        .map(|s| {
            s.copies
                .iter()
                .map(|c| (c.node, classify(c, by_id.get(&c.node).copied(), grace_secs)))
                .collect()
        })
        .collect();
    let count = |shard: &Vec<(NodeId, CopyClass)>, counted: &[CopyClass]| {
        shard.iter().filter(|(_, c)| counted.contains(c)).count()
    };
    let live = copies
        .iter()
        .filter(|s| count(s, &[CopyClass::Live]) > 0)
        .count();
    let reachable = copies
        .iter()
        .filter(|s| count(s, &[CopyClass::Live, CopyClass::Away]) > 0)
        .count();
    let under = copies
        .iter()
        .any(|s| count(s, &[CopyClass::Live, CopyClass::Away]) < o.policy.copies);
    Assessment {
        redundancy: redundancy(o.policy.k, live, reachable, under),
        copies,
    }
}

/// The redundancy of an object with `live` shards with a live copy and `reachable` with a live
/// or away one.
fn redundancy(k: usize, live: usize, reachable: usize, under: bool) -> Redundancy {
    if reachable < k {
        Redundancy::Unreadable
    } else if live <= k {
        Redundancy::AtRisk
    } else if under {
        Redundancy::Degraded
    } else {
        Redundancy::Healthy
    }
}

/// The planner's answer: tasks riskiest first, and the cluster's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub tasks: Vec<Task>,
    /// The health of the objects planned over.
    pub health: Health,
    /// Each object's share of `health`, in the order they were given.
    pub objects: Vec<(i64, ObjectHealth)>,
    /// Objects a task or move budget ran out before: they may still have work.
    pub deferred: Vec<i64>,
}

/// A copy's state (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyClass {
    Live,
    Away,
    Lost,
    Bad,
}

/// Classifies one copy.
pub fn classify(copy: &CopyState, node: Option<&NodeStatus>, grace_secs: u64) -> CopyClass {
    let Some(n) = node else {
        return CopyClass::Lost;
    };
    if copy.failed_audit || n.tier == NodeTier::Disqualified {
        CopyClass::Bad
    } else if n.online {
        CopyClass::Live
    } else if n.offline_secs <= grace_secs {
        CopyClass::Away
    } else {
        CopyClass::Lost
    }
}

/// Per-shard view while planning.
struct ShardView {
    live: Vec<NodeId>,
    away: Vec<NodeId>,
    bad: Vec<NodeId>,
}

impl ShardView {
    fn counted(&self) -> usize {
        self.live.len() + self.away.len()
    }
}

struct ObjectView<'a> {
    object: &'a ObjectState,
    shards: Vec<ShardView>,
    margin: i64,
    health: ObjectHealth,
}

/// Plans repair, rebalance and trimming for `objects` over `nodes`.
pub fn plan(objects: &[ObjectState], nodes: &[NodeStatus], cfg: &PlanConfig) -> Plan {
    let by_id: HashMap<NodeId, &NodeStatus> = nodes.iter().map(|n| (n.id, n)).collect();
    let mut health = Health::default();
    let views: Vec<ObjectView> = objects.iter().map(|o| view_of(o, &by_id, cfg)).collect();
    for v in &views {
        health.add(&v.health);
    }
    let mut order: Vec<usize> = (0..views.len()).collect();
    order.sort_by_key(|&i| (views[i].margin, weakest(&views[i]), views[i].object.id));

    let mut planner = Planner::new(nodes, &by_id, cfg);
    let mut deferred = planner.run(&views, &order);
    deferred.sort_unstable();
    Plan {
        tasks: planner.tasks,
        health,
        objects: views.iter().map(|v| (v.object.id, v.health)).collect(),
        deferred,
    }
}

fn weakest(v: &ObjectView) -> usize {
    v.shards.iter().map(ShardView::counted).min().unwrap_or(0)
}

fn view_of<'a>(
    o: &'a ObjectState,
    by_id: &HashMap<NodeId, &NodeStatus>,
    cfg: &PlanConfig,
) -> ObjectView<'a> {
    let shards: Vec<ShardView> = o
        .shards
        .iter()
        .map(|s| {
            let mut v = ShardView {
                live: Vec::new(),
                away: Vec::new(),
                bad: Vec::new(),
            };
            for c in &s.copies {
                match classify(c, by_id.get(&c.node).copied(), cfg.grace_secs) {
                    CopyClass::Live => v.live.push(c.node),
                    CopyClass::Away => v.away.push(c.node),
                    CopyClass::Bad => v.bad.push(c.node),
                    CopyClass::Lost => {}
                }
            }
            v
        })
        .collect();
    let intact = shards.iter().filter(|s| !s.live.is_empty()).count() as i64;
    let margin = intact - o.policy.k as i64;
    ObjectView {
        object: o,
        health: health_of(o.policy.k, o.policy.copies, &shards),
        shards,
        margin,
    }
}

/// An object's share of [`Health`], from its shards' classified copies.
fn health_of(k: usize, copies: usize, shards: &[ShardView]) -> ObjectHealth {
    let intact = shards.iter().filter(|s| !s.live.is_empty()).count();
    let reachable = shards.iter().filter(|s| s.counted() > 0).count();
    let under = shards.iter().any(|s| s.counted() < copies);
    let mut h = ObjectHealth {
        shards: shards.len() as u32,
        degraded: redundancy(k, intact, reachable, under) == Redundancy::Degraded,
        at_risk: intact <= k,
        unreadable: reachable < k,
        ..ObjectHealth::default()
    };
    for s in shards {
        h.by_live_copies[s.live.len().min(LIVE_COPIES_SHOWN)] += 1;
        h.shards_under += u32::from(s.counted() < copies);
        h.shards_without_copy += u32::from(s.counted() == 0);
        h.surplus_copies += s.live.len().saturating_sub(copies) as u32;
        h.bad_copies += s.bad.len() as u32;
    }
    h
}

/// Planning state across objects: capacity and load already promised by earlier tasks.
struct Planner<'a> {
    nodes: &'a [NodeStatus],
    by_id: &'a HashMap<NodeId, &'a NodeStatus>,
    cfg: &'a PlanConfig,
    free: HashMap<NodeId, u64>,
    load: HashMap<NodeId, u32>,
    tasks: Vec<Task>,
    moves: usize,
    /// Rebalance placements tried in this plan.
    attempts: usize,
    /// Zones with a node that may take copies, and whether any such node is high tier.
    eligible_zones: HashSet<String>,
    eligible_high: bool,
    /// The distinct poor-hour sets of nodes that may take copies.
    eligible_hours: HashSet<u32>,
    /// Nodes that may take copies, to sample placement candidates from.
    pool: Vec<&'a NodeStatus>,
}

/// SplitMix64: a small, well-mixed generator for the candidate draw.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether a node may take new copies at all (before per-object rules).
fn eligible(n: &NodeStatus) -> bool {
    n.online && !n.backing_off && matches!(n.tier, NodeTier::High | NodeTier::Low) && n.free > 0
}

impl<'a> Planner<'a> {
    fn new(
        nodes: &'a [NodeStatus],
        by_id: &'a HashMap<NodeId, &'a NodeStatus>,
        cfg: &'a PlanConfig,
    ) -> Self {
        let pool: Vec<&NodeStatus> = nodes.iter().filter(|n| eligible(n)).collect();
        Planner {
            nodes,
            by_id,
            cfg,
            free: nodes.iter().map(|n| (n.id, n.free)).collect(),
            load: nodes.iter().map(|n| (n.id, n.load)).collect(),
            tasks: Vec::new(),
            moves: 0,
            attempts: 0,
            eligible_zones: pool.iter().map(|n| n.zone.clone()).collect(),
            eligible_high: pool.iter().any(|n| n.tier == NodeTier::High),
            eligible_hours: pool.iter().map(|n| n.poor_hours).collect(),
            pool,
        }
    }

    /// Repairs, then rebalance moves, then trims, riskiest object first, within the budgets.
    /// Returns the objects a budget ran out before that the stage could have had work for.
    fn run(&mut self, views: &[ObjectView], order: &[usize]) -> Vec<i64> {
        let mut deferred: HashSet<i64> = HashSet::new();
        let mut defer = |rest: &[usize], has_work: &dyn Fn(&ObjectView) -> bool| {
            let left = rest.iter().map(|&i| &views[i]).filter(|v| has_work(v));
            deferred.extend(left.map(|v| v.object.id));
        };
        for (at, &i) in order.iter().enumerate() {
            if self.full() {
                defer(&order[at..], &|v| v.health.needs_work());
                break;
            }
            self.repair(&views[i]);
        }
        let max_moves = self.cfg.max_moves;
        for (at, &i) in order.iter().enumerate() {
            // Each attempt costs a placement: bounded, so that reasons no move can fix (one
            // zone, no high-tier node with room) never cost a pass over every object.
            if self.full() || self.moves >= max_moves || self.attempts >= 4 * max_moves.max(1) {
                if max_moves > 0 {
                    defer(&order[at..], &|v| self.wants_move(v));
                }
                break;
            }
            self.rebalance(&views[i]);
        }
        for (at, &i) in order.iter().enumerate() {
            if self.full() {
                defer(&order[at..], &|v| v.health.needs_work());
                break;
            }
            self.trim(&views[i]);
        }
        deferred.into_iter().collect()
    }

    fn full(&self) -> bool {
        self.tasks.len() >= self.cfg.max_tasks
    }

    /// The placement snapshot for one object: nodes that may take copies (online, trusted, not
    /// backing off, holding no bad copy of the object), and the object's counted holders (with no
    /// room, so they count for the rules without taking anything).
    fn snapshot(&self, v: &ObjectView) -> Vec<NodeView> {
        self.snapshot_where(v, |_| true)
    }

    /// [`Planner::snapshot`], with only the nodes `fits` accepts taking copies.
    fn snapshot_where(&self, v: &ObjectView, fits: impl Fn(&NodeStatus) -> bool) -> Vec<NodeView> {
        let bad: HashSet<NodeId> = v.shards.iter().flat_map(|s| s.bad.clone()).collect();
        let holders: HashSet<NodeId> = v
            .shards
            .iter()
            .flat_map(|s| s.live.iter().chain(&s.away).copied())
            .collect();
        self.candidates(v.object.id, &holders)
            .into_iter()
            .filter_map(|n| {
                let eligible = eligible(n) && !bad.contains(&n.id) && fits(n);
                if !eligible && !holders.contains(&n.id) {
                    return None;
                }
                Some(NodeView {
                    id: n.id,
                    zone: n.zone.clone(),
                    tier: n.tier,
                    free: if eligible { self.free[&n.id] } else { 0 },
                    capacity: n.capacity,
                    load: self.load[&n.id],
                    // The repair planner spreads by node and zone; networks are the upload's.
                    network: None,
                })
            })
            .collect()
    }

    /// The nodes placement may consider for an object: every node, or in a fleet with more
    /// than `cfg.candidates` nodes that may take copies, the object's holders and that many
    /// drawn from them (the same draw for the same object and fleet), so that placing costs
    /// the sample's size, not the fleet's.
    fn candidates(&self, object: i64, holders: &HashSet<NodeId>) -> Vec<&'a NodeStatus> {
        let want = self.cfg.candidates;
        if want == 0 || self.pool.len() <= want {
            return self.nodes.iter().collect();
        }
        let mut seed = (object as u64) ^ 0x9E37_79B9_7F4A_7C15;
        let mut picked: Vec<usize> = (0..want)
            .map(|_| (splitmix(&mut seed) % self.pool.len() as u64) as usize)
            .collect();
        picked.sort_unstable();
        picked.dedup();
        let mut out: Vec<&'a NodeStatus> = picked.into_iter().map(|i| self.pool[i]).collect();
        let by_id = self.by_id;
        out.extend(holders.iter().filter_map(|id| by_id.get(id).copied()));
        out.sort_by_key(|n| n.id);
        out.dedup_by_key(|n| n.id);
        out
    }

    fn take(&mut self, node: NodeId, bytes: u64) {
        if let Some(f) = self.free.get_mut(&node) {
            *f = f.saturating_sub(bytes);
        }
        *self.load.entry(node).or_default() += 1;
    }

    fn push(&mut self, task: Task) {
        if let Action::Copy { sources, .. } = &task.action {
            for s in sources {
                *self.load.entry(*s).or_default() += 1;
            }
        }
        self.tasks.push(task);
    }

    fn shard_ref(s: &ShardState) -> ShardRef {
        ShardRef {
            idx: s.idx,
            info_hash: s.info_hash,
            length: s.length,
        }
    }

    /// Copies for shards below policy, and rebuilds for shards with none left.
    fn repair(&mut self, v: &ObjectView) {
        let o = v.object;
        let r = o.policy.copies;
        let rebuildable = v.margin >= 0;
        let needs: Vec<ShardNeed> = v
            .shards
            .iter()
            .map(|s| ShardNeed {
                holders: s.live.iter().chain(&s.away).copied().collect(),
                // A shard whose counted copies are all away waits for them; one with none left
                // is rebuilt when the object can be.
                want: if !s.live.is_empty() || (s.counted() == 0 && rebuildable) {
                    r.saturating_sub(s.counted())
                } else {
                    0
                },
            })
            .collect();
        if needs.iter().all(|n| n.want == 0) {
            return;
        }
        let shard_len = o.shards.iter().map(|s| s.length).max().unwrap_or(0);
        let snapshot = self.snapshot(v);
        let placed = placement::place(&snapshot, &o.policy, shard_len, &needs);
        let mut rebuild = Vec::new();
        for (i, s) in o.shards.iter().enumerate() {
            let targets = placed.targets[i].clone();
            if targets.is_empty() {
                continue;
            }
            for t in &targets {
                self.take(*t, s.length);
            }
            let view = &v.shards[i];
            if view.counted() == 0 {
                rebuild.push((Self::shard_ref(s), targets));
            } else {
                self.push(Task {
                    object: o.id,
                    why: Why::Repair,
                    risk: Risk {
                        margin: v.margin,
                        copies: view.counted(),
                    },
                    action: Action::Copy {
                        shard: Self::shard_ref(s),
                        sources: view.live.clone(),
                        targets,
                    },
                });
            }
        }
        if !rebuild.is_empty() {
            let sources = o
                .shards
                .iter()
                .zip(&v.shards)
                .filter(|(_, view)| !view.live.is_empty())
                .map(|(s, view)| (s.idx, view.live.clone()))
                .collect();
            self.push(Task {
                object: o.id,
                why: Why::Rebuild,
                risk: Risk {
                    margin: v.margin,
                    copies: 0,
                },
                action: Action::Rebuild {
                    shards: rebuild,
                    sources,
                },
            });
        }
    }
}
