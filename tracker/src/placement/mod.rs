//! Placement: which nodes take the copies of an object's shards.
//!
//! A pure function over a snapshot of the cluster ([`NodeView`]s) and a request (how many more copies
//! each shard needs, and who already holds it). No I/O, no clock: the gateway takes a snapshot, plans,
//! then sends hold directives; tests drive it over simulated clusters of thousands of nodes.
//!
//! Rules, strongest first. The first two are never broken; the others are given up one at a time,
//! only for the copy that cannot be placed otherwise, and every rule given up is reported:
//!
//! 1. a node takes a copy only if it is eligible (in the snapshot) and has the free space;
//! 2. two copies of one shard never share a node (a second copy on the same disk adds nothing);
//! 3. [`Relaxation::NodeShared`] — no node holds two shards of the same object, so losing one node
//!    costs an object at most one shard;
//! 4. [`Relaxation::ZoneSpread`] — copies of a shard sit in different zones, and no zone holds every
//!    copy of more than `m` shards, so losing a whole zone leaves at least `k` shards;
//! 5. [`Relaxation::PrefixSpread`] — copies of a shard sit in different networks (the /24 of an
//!    IPv4 address, the /48 of an IPv6 one, [`network_of`]), so one household or one provider's
//!    subnet never holds every copy, whatever zones its nodes were registered in;
//! 6. [`Relaxation::TierShare`] — each shard has at least `ceil(high_share * copies)` copies on
//!    high-tier nodes.
//!
//! When a copy cannot be placed without breaking a rule, the planner tries the combinations of
//! relaxations in order of cost (tier share first, then prefix spread, zone spread, node sharing
//! last, then their combinations), and takes the first that works. When nothing works, the copy
//! is reported as a [`Plan::shortfall`].
//!
//! Among the nodes that satisfy the rules, the planner prefers, in order: zones with fewer copies of
//! this object; nodes with fewer shards of this object; nodes with a smaller share of their capacity
//! used (in whole percents); for copies beyond the high-tier share, low-tier nodes (keeping
//! high-tier space for the copies that need it); nodes with less transfer load; then node id, so
//! plans are reproducible.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

#[cfg(test)]
mod tests;

pub use crate::ids::NodeId;

pub use crate::scoring::NodeTier;

/// What placement needs to know of one eligible node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub id: NodeId,
    pub zone: String,
    /// The node's tier: a high-tier node counts towards the high-tier share, any other does not.
    /// Callers leave suspended and disqualified nodes out, or give them no free space.
    pub tier: NodeTier,
    /// Bytes the node can still take.
    pub free: u64,
    /// Bytes the node donates in all.
    pub capacity: u64,
    /// Transfers the node has in flight (lower is better).
    pub load: u32,
    /// The network the node connects from ([`network_of`] its address); `None` puts it under no
    /// prefix rule (loopback: a cloud on one machine).
    pub network: Option<IpAddr>,
}

/// The network an address belongs to for [`Relaxation::PrefixSpread`]: its /24 (IPv4, also
/// IPv4-mapped IPv6) or /48 (IPv6), as the address with the host bits cleared. `None` for
/// loopback and unspecified addresses, which say nothing about where a node is.
pub fn network_of(ip: IpAddr) -> Option<IpAddr> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
    })
}

/// A bucket's redundancy policy for one object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Data shards (any `k` rebuild the object).
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Copies of each shard.
    pub copies: usize,
    /// Share of each shard's copies that must sit on high-tier nodes (0.0 ..= 1.0).
    pub high_share: f64,
}

impl Policy {
    /// High-tier copies each shard needs.
    pub fn high_copies(&self) -> usize {
        ((self.high_share * self.copies as f64).ceil() as usize).min(self.copies)
    }
}

/// One shard's placement need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardNeed {
    /// Nodes that already hold a confirmed copy (kept; they count towards every rule).
    pub holders: Vec<NodeId>,
    /// New copies wanted.
    pub want: usize,
}

/// A rule given up to place a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relaxation {
    TierShare,
    PrefixSpread,
    ZoneSpread,
    NodeShared,
}

impl Relaxation {
    /// In order of cost: the planner gives up the earlier ones first.
    const ALL: [Relaxation; 4] = [
        Relaxation::TierShare,
        Relaxation::PrefixSpread,
        Relaxation::ZoneSpread,
        Relaxation::NodeShared,
    ];

    /// What an operator reads when the rule was given up.
    pub fn explain(&self) -> &'static str {
        match self {
            Relaxation::TierShare => "not enough high-tier nodes with space: some copies went to low-tier nodes",
            Relaxation::PrefixSpread => "not enough networks: some copies of a shard share an IP prefix (/24 or /48)",
            Relaxation::ZoneSpread => "not enough zones: some copies share a zone, so a zone outage may cost more than m shards",
            Relaxation::NodeShared => "not enough nodes: some nodes hold more than one shard of the object",
        }
    }
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// New nodes for each shard, in request order.
    pub targets: Vec<Vec<NodeId>>,
    /// Rules given up somewhere in this plan.
    pub relaxed: BTreeSet<Relaxation>,
    /// (shard, copies that could not be placed at all).
    pub shortfall: Vec<(usize, usize)>,
}

impl Plan {
    pub fn is_complete(&self) -> bool {
        self.shortfall.is_empty()
    }
}

/// Plans copies for every shard of one object. `shards.len()` is `k + m` for a new object; repair
/// passes the shards it is fixing with their surviving holders.
pub fn place(nodes: &[NodeView], policy: &Policy, shard_len: u64, shards: &[ShardNeed]) -> Plan {
    let mut state = State::new(nodes, policy, shard_len, shards);
    let mut plan = Plan {
        targets: vec![Vec::new(); shards.len()],
        ..Plan::default()
    };
    // Round by round, so that when capacity runs short every shard gets its first copies before any
    // gets its last; within a round, the shard with the fewest rule-keeping candidates goes first, so
    // that an easy shard does not take the only node a hard one could use.
    let rounds = shards.iter().map(|s| s.want).max().unwrap_or(0);
    for round in 0..rounds {
        let mut pending: Vec<usize> = (0..shards.len())
            .filter(|&s| shards[s].want > round)
            .collect();
        while !pending.is_empty() {
            let (at, _) = pending
                .iter()
                .enumerate()
                .min_by_key(|(_, &s)| (state.strict_candidates(s, MRV_CAP), s))
                .expect("pending is not empty");
            let s = pending.swap_remove(at);
            match state.pick(s) {
                Some((node, relaxed)) => {
                    plan.relaxed.extend(relaxed);
                    state.assign(s, node);
                    plan.targets[s].push(nodes[node].id);
                }
                None => plan
                    .shortfall
                    .push((s, shards[s].want - plan.targets[s].len())),
            }
        }
    }
    plan.shortfall.sort();
    plan.shortfall.dedup_by_key(|(s, _)| *s);
    if !plan.relaxed.is_empty() || !plan.is_complete() {
        // Greedy choices can paint a small cluster into a corner that a rule-keeping placement
        // avoids; look for one with a bounded search before settling.
        let mut fresh = State::new(nodes, policy, shard_len, shards);
        let slots: Vec<usize> = (0..shards.iter().map(|s| s.want).max().unwrap_or(0))
            .flat_map(|round| (0..shards.len()).filter(move |&s| shards[s].want > round))
            .collect();
        let mut budget = SEARCH_BUDGET;
        let mut picked = Vec::with_capacity(slots.len());
        if fresh.search(&slots, &mut picked, &mut budget) {
            let mut targets = vec![Vec::new(); shards.len()];
            for (s, i) in slots.iter().zip(picked) {
                targets[*s].push(nodes[i].id);
            }
            return Plan {
                targets,
                ..Plan::default()
            };
        }
    }
    plan
}

/// Rule checks the fallback search may spend (bounds its time on clusters where no rule-keeping
/// placement exists).
const SEARCH_BUDGET: usize = 200_000;

/// Candidate counts above this are all "plenty": counting stops there, so ordering costs little on
/// large clusters.
const MRV_CAP: usize = 16;

/// Working state of one plan: indices into the snapshot.
struct State<'a> {
    nodes: &'a [NodeView],
    policy: &'a Policy,
    shard_len: u64,
    free: Vec<u64>,
    /// Node indices holding each shard (existing holders and planned copies).
    copies: Vec<Vec<usize>>,
    /// Total copies each shard will have when the plan is done.
    final_copies: Vec<usize>,
    /// Shards of this object per node index.
    per_node: Vec<u32>,
    /// Copies of this object per zone.
    per_zone: HashMap<&'a str, u32>,
    /// Shards of this object whose copies are all made and all lie in one zone, per zone.
    confined: HashMap<&'a str, usize>,
}

impl<'a> State<'a> {
    fn new(
        nodes: &'a [NodeView],
        policy: &'a Policy,
        shard_len: u64,
        shards: &[ShardNeed],
    ) -> Self {
        let index: HashMap<NodeId, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut state = State {
            nodes,
            policy,
            shard_len,
            free: nodes.iter().map(|n| n.free).collect(),
            copies: vec![Vec::new(); shards.len()],
            final_copies: shards.iter().map(|s| s.holders.len() + s.want).collect(),
            per_node: vec![0; nodes.len()],
            per_zone: HashMap::new(),
            confined: HashMap::new(),
        };
        for (s, need) in shards.iter().enumerate() {
            // Holders missing from the snapshot (offline, suspended) still hold their copy, but
            // placement cannot reason about them.
            for i in need.holders.iter().filter_map(|h| index.get(h)) {
                state.copies[s].push(*i);
                state.per_node[*i] += 1;
                *state.per_zone.entry(nodes[*i].zone.as_str()).or_default() += 1;
            }
            state.recount_confined(s, None);
        }
        state
    }

    /// The zone holding every copy of shard `o`, once all of them are made.
    fn confined_zone(&self, o: usize) -> Option<&'a str> {
        let nodes = self.nodes;
        let (&first, rest) = self.copies[o].split_first()?;
        let zone = nodes[first].zone.as_str();
        (self.copies[o].len() == self.final_copies[o]
            && rest.iter().all(|&c| nodes[c].zone == zone))
        .then_some(zone)
    }

    /// Moves shard `o` in [`Self::confined`] from `before` (its zone before its copies changed)
    /// to where it is now.
    fn recount_confined(&mut self, o: usize, before: Option<&'a str>) {
        let after = self.confined_zone(o);
        if before == after {
            return;
        }
        if let Some(zone) = before {
            *self.confined.get_mut(zone).expect("counted before") -= 1;
        }
        if let Some(zone) = after {
            *self.confined.entry(zone).or_default() += 1;
        }
    }

    fn assign(&mut self, s: usize, i: usize) {
        let before = self.confined_zone(s);
        self.free[i] -= self.shard_len;
        self.copies[s].push(i);
        self.per_node[i] += 1;
        *self
            .per_zone
            .entry(self.nodes[i].zone.as_str())
            .or_default() += 1;
        self.recount_confined(s, before);
    }

    /// The best node for the next copy of shard `s`, and the rules given up to take it.
    fn pick(&self, s: usize) -> Option<(usize, Vec<Relaxation>)> {
        for mask in 0u8..1 << Relaxation::ALL.len() {
            let relaxed: Vec<Relaxation> = Relaxation::ALL
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, r)| *r)
                .collect();
            let needs_high = self.high_copies_of(s) < self.policy.high_copies();
            let best = (0..self.nodes.len())
                .filter(|&i| self.allowed(s, i, &relaxed, needs_high))
                .min_by_key(|&i| self.preference(i, needs_high));
            if let Some(i) = best {
                // Report only the rules this choice actually broke.
                let broken = relaxed
                    .into_iter()
                    .filter(|r| self.breaks(s, i, *r, needs_high))
                    .collect();
                return Some((i, broken));
            }
        }
        None
    }

    /// Depth-first search for a placement of `slots` (shard per copy) that keeps every rule.
    fn search(&mut self, slots: &[usize], picked: &mut Vec<usize>, budget: &mut usize) -> bool {
        let Some((&s, rest)) = slots.split_first() else {
            return true;
        };
        let needs_high = self.high_copies_of(s) < self.policy.high_copies();
        let mut candidates: Vec<usize> = Vec::new();
        for i in 0..self.nodes.len() {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            if self.allowed(s, i, &[], needs_high) {
                candidates.push(i);
            }
        }
        candidates.sort_by_key(|&i| self.preference(i, needs_high));
        for i in candidates {
            self.assign(s, i);
            picked.push(i);
            if self.search(rest, picked, budget) {
                return true;
            }
            picked.pop();
            self.unassign(s, i);
        }
        false
    }

    fn unassign(&mut self, s: usize, i: usize) {
        let before = self.confined_zone(s);
        self.free[i] += self.shard_len;
        self.copies[s].pop();
        self.per_node[i] -= 1;
        *self
            .per_zone
            .get_mut(self.nodes[i].zone.as_str())
            .expect("assigned before") -= 1;
        self.recount_confined(s, before);
    }

    /// Nodes that could take shard `s`'s next copy without breaking any rule, counted up to `cap`.
    fn strict_candidates(&self, s: usize, cap: usize) -> usize {
        let needs_high = self.high_copies_of(s) < self.policy.high_copies();
        (0..self.nodes.len())
            .filter(|&i| self.allowed(s, i, &[], needs_high))
            .take(cap)
            .count()
    }

    fn high_copies_of(&self, s: usize) -> usize {
        self.copies[s]
            .iter()
            .filter(|&&i| self.nodes[i].tier == NodeTier::High)
            .count()
    }

    fn allowed(&self, s: usize, i: usize, relaxed: &[Relaxation], needs_high: bool) -> bool {
        if self.free[i] < self.shard_len || self.copies[s].contains(&i) {
            return false;
        }
        Relaxation::ALL
            .iter()
            .all(|r| relaxed.contains(r) || !self.breaks(s, i, *r, needs_high))
    }

    /// Whether giving shard `s` a copy on node `i` breaks rule `r`.
    fn breaks(&self, s: usize, i: usize, r: Relaxation, needs_high: bool) -> bool {
        let node = &self.nodes[i];
        match r {
            Relaxation::TierShare => needs_high && node.tier != NodeTier::High,
            Relaxation::NodeShared => self.per_node[i] > 0,
            Relaxation::PrefixSpread => node.network.is_some_and(|net| {
                self.copies[s]
                    .iter()
                    .any(|&c| self.nodes[c].network == Some(net))
            }),
            Relaxation::ZoneSpread => {
                let zone = node.zone.as_str();
                if self.copies[s].iter().any(|&c| self.nodes[c].zone == zone) {
                    return true;
                }
                // A shard whose only copy this is will live in one zone: at most m such per zone.
                // (Shard `s` has no copy yet, so it is not among those counted.)
                self.final_copies[s] == 1
                    && self.copies[s].is_empty()
                    && self.confined.get(zone).copied().unwrap_or(0) >= self.policy.m
            }
        }
    }

    fn preference(&self, i: usize, needs_high: bool) -> (u32, u32, u64, bool, u32, u64, NodeId) {
        let n = &self.nodes[i];
        let zone_load = self.per_zone.get(n.zone.as_str()).copied().unwrap_or(0);
        // Keep high-tier space for copies that need it.
        let spends_high = !needs_high && n.tier == NodeTier::High;
        // Used share of capacity, in millionths (lower is better).
        let used = if n.capacity == 0 {
            u64::MAX
        } else {
            (n.capacity.saturating_sub(self.free[i]) as u128 * 1_000_000 / n.capacity as u128)
                as u64
        };
        // Fill evens out in whole percents; within a percent, the less busy node wins.
        (
            zone_load,
            self.per_node[i],
            used / 10_000,
            spends_high,
            n.load,
            used,
            n.id,
        )
    }
}
