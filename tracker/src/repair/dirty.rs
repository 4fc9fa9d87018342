//! Which objects a health pass looks at, so that a pass costs what changed, not what is stored.
//!
//! A [`Tracker`] keeps an index from each node to the objects it holds copies of, a queue of
//! *dirty* objects, and each object's share of [`Health`]. A pass:
//! 1. tells it the nodes as they are now ([`Tracker::observe_nodes`]): every node whose standing
//!    changed (connected, away within the grace period, gone past it or from the list, tier,
//!    hours it is often offline, over its quota) marks the objects it holds, and a fleet that
//!    can now offer something new (a zone, a high-tier node, other hours) asks for a full sweep.
//!    A tracker made with [`Tracker::away_marks`]`(false)` takes *away* for online: in a large
//!    fleet of volunteers who go offline every day, marking every object of every node that
//!    blinks would load the whole store twice a day, while a plan has nothing to do for a copy
//!    that still counts. Then only crossing the grace period marks; the health figures count an
//!    away copy as live until its object is next looked at, and a move that waited for every copy
//!    to be live waits for the sweep;
//! 2. marks the objects whose recorded copies changed ([`Tracker::mark`]; the gateway learns them
//!    from its database's change log and from nodes' reports);
//! 3. takes a [`Selection`]: at most `dirty_max` dirty objects, and the next window of the slow
//!    background sweep over every object by id, which catches what no event signals (an
//!    object's read hours, a bucket's policy) and purges objects deleted meanwhile;
//! 4. hands back what the edge read for them ([`Tracker::loaded`]), plans over it, and gives
//!    the plan back ([`Tracker::assessed`]): objects with work left (a shard below its copies,
//!    a surplus or bad copy, a task, a budget that ran out) stay dirty for the next pass.
//!
//! Invariant: for every object that is not dirty, the index holds the nodes of its recorded
//! copies. Every change to recorded copies marks the object, and loading an object re-reads
//! them; so a node's change either finds an object through the index or finds it dirty already.
//!
//! [`Tracker::health`] is the sum of the objects' latest shares. An object's share changes only
//! when one of its copies changes class, which marks it; so the totals are those a plan over
//! every object would give, except for what only the sweep notices.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound::{Excluded, Included};

use super::{Health, NodeId, NodeStatus, ObjectHealth, ObjectState, Plan, PlanConfig};
use crate::scoring::NodeTier;

/// An object's id in the metadata store.
pub type ObjectId = i64;

/// What a pass loads: dirty objects, and a window of the sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub dirty: Vec<ObjectId>,
    pub sweep: Option<Window>,
}

/// The next `limit` objects with ids above `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub after: ObjectId,
    pub limit: usize,
}

impl Window {
    /// Every object.
    pub const ALL: Window = Window {
        after: ObjectId::MIN,
        limit: usize::MAX,
    };
}

/// Where a node stands, as far as the copies it holds are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Online,
    /// Offline within the grace period: its copies still count.
    Away,
    /// Offline past the grace period, or no longer known.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeMark {
    presence: Presence,
    tier: NodeTier,
    poor_hours: u32,
    over_quota: bool,
}

impl NodeMark {
    fn of(n: &NodeStatus, cfg: &PlanConfig, away_marks: bool) -> Self {
        let presence = if n.online {
            Presence::Online
        } else if n.offline_secs <= cfg.grace_secs {
            if away_marks {
                Presence::Away
            } else {
                Presence::Online
            }
        } else {
            Presence::Gone
        };
        NodeMark {
            presence,
            tier: n.tier,
            poor_hours: n.poor_hours,
            over_quota: n.capacity == 0
                || n.capacity.saturating_sub(n.free) as f64
                    > cfg.quota_high_water * n.capacity as f64,
        }
    }
}

/// What nodes that may take copies offer the rebalance rules.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    zones: BTreeSet<String>,
    high: bool,
    hours: BTreeSet<u32>,
}

impl Offer {
    fn of(nodes: &[NodeStatus]) -> Self {
        let mut offer = Offer::default();
        for n in nodes.iter().filter(|n| super::eligible(n)) {
            if !offer.zones.contains(&n.zone) {
                offer.zones.insert(n.zone.clone());
            }
            offer.high |= n.tier == NodeTier::High;
            offer.hours.insert(n.poor_hours);
        }
        offer
    }

    /// Whether `self` offers something `before` did not.
    fn exceeds(&self, before: &Offer) -> bool {
        !self.zones.is_subset(&before.zones)
            || (self.high && !before.high)
            || !self.hours.is_subset(&before.hours)
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// Nodes with a recorded copy of one of its shards, sorted.
    nodes: Vec<NodeId>,
    health: Option<ObjectHealth>,
}

/// The incremental health pass's state (see the module doc).
#[derive(Debug)]
pub struct Tracker {
    by_node: HashMap<NodeId, HashSet<ObjectId>>,
    objects: BTreeMap<ObjectId, Entry>,
    dirty: VecDeque<ObjectId>,
    queued: HashSet<ObjectId>,
    marks: HashMap<NodeId, NodeMark>,
    offer: Option<Offer>,
    /// The sweep goes on after this id.
    cursor: ObjectId,
    /// The next selection sweeps everything (at start, and when the fleet offers more).
    full: bool,
    totals: Health,
    /// Whether going away (and coming back within the grace period) marks a node's objects.
    away_marks: bool,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// A tracker that knows nothing yet: its first selection sweeps every object.
    pub fn new() -> Self {
        Tracker {
            by_node: HashMap::new(),
            objects: BTreeMap::new(),
            dirty: VecDeque::new(),
            queued: HashSet::new(),
            marks: HashMap::new(),
            offer: None,
            cursor: ObjectId::MIN,
            full: true,
            totals: Health::default(),
            away_marks: true,
        }
    }

    /// Whether a node going offline within the grace period, or coming back within it, marks
    /// the objects it holds (the default); see the module doc for what turning it off costs.
    pub fn away_marks(mut self, on: bool) -> Self {
        self.away_marks = on;
        self
    }

    /// Objects it knows of.
    pub fn known(&self) -> usize {
        self.objects.len()
    }

    /// Objects waiting for a pass.
    pub fn dirty(&self) -> usize {
        self.dirty.len()
    }

    /// The health of every known object, from its latest assessment.
    pub fn health(&self) -> &Health {
        &self.totals
    }

    /// Marks an object for the next pass.
    pub fn mark(&mut self, object: ObjectId) {
        if self.queued.insert(object) {
            self.dirty.push_back(object);
        }
    }

    /// Marks every object `node` holds a copy of.
    pub fn mark_node(&mut self, node: NodeId) {
        let mut held: Vec<ObjectId> = self
            .by_node
            .get(&node)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        // In id order, so that the queue's order (and what a budget leaves for later) does not
        // depend on how a hash set happens to iterate.
        held.sort_unstable();
        for o in held {
            self.mark(o);
        }
    }

    /// Makes the next selection sweep every object (something changed that no mark covers).
    pub fn sweep_all(&mut self) {
        self.full = true;
    }

    /// Compares the nodes with the previous pass's and marks what their changes touch.
    pub fn observe_nodes(&mut self, nodes: &[NodeStatus], cfg: &PlanConfig) {
        let mut listed = HashSet::with_capacity(nodes.len());
        for n in nodes {
            listed.insert(n.id);
            let mark = NodeMark::of(n, cfg, self.away_marks);
            if self.marks.get(&n.id) != Some(&mark) {
                self.marks.insert(n.id, mark);
                self.mark_node(n.id);
            }
        }
        let unlisted: Vec<NodeId> = self
            .marks
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        for id in unlisted {
            self.marks.remove(&id);
            self.mark_node(id);
        }
        let offer = Offer::of(nodes);
        if self
            .offer
            .as_ref()
            .is_some_and(|before| offer.exceeds(before))
        {
            self.full = true;
        }
        self.offer = Some(offer);
    }

    /// What the next pass loads: at most `dirty_max` dirty objects, oldest marks first, and the
    /// sweep's next `sweep_max` objects (all of them after a start or a [`Tracker::sweep_all`]).
    pub fn select(&mut self, dirty_max: usize, sweep_max: usize) -> Selection {
        if std::mem::take(&mut self.full) {
            // The window covers every object, the dirty ones too.
            self.dirty.clear();
            self.queued.clear();
            self.cursor = ObjectId::MIN;
            return Selection {
                dirty: Vec::new(),
                sweep: Some(Window::ALL),
            };
        }
        let take = dirty_max.min(self.dirty.len());
        let dirty: Vec<ObjectId> = self.dirty.drain(..take).collect();
        for o in &dirty {
            self.queued.remove(o);
        }
        let sweep = (sweep_max > 0).then_some(Window {
            after: self.cursor,
            limit: sweep_max,
        });
        Selection { dirty, sweep }
    }

    /// Takes in what the edge read for `selection`: `window` lists the ids the sweep's window
    /// held, in order (objects of every kind); `objects` every selected object that still has
    /// stored shards, with all its recorded copies. Objects selected but not read are forgotten.
    pub fn loaded(&mut self, selection: &Selection, window: &[ObjectId], objects: &[ObjectState]) {
        let read: HashMap<ObjectId, &ObjectState> = objects.iter().map(|o| (o.id, o)).collect();
        let mut asked: HashSet<ObjectId> = selection.dirty.iter().copied().collect();
        asked.extend(window.iter().copied());
        if let Some(w) = selection.sweep {
            let end = match window.last() {
                Some(&last) if window.len() >= w.limit => last,
                _ => ObjectId::MAX,
            };
            let stale: Vec<ObjectId> = self
                .objects
                .range((Excluded(w.after), Included(end)))
                .map(|(&id, _)| id)
                .filter(|id| !asked.contains(id))
                .collect();
            for id in stale {
                self.forget(id);
            }
            self.cursor = if end == ObjectId::MAX {
                ObjectId::MIN
            } else {
                end
            };
        }
        for id in asked {
            match read.get(&id) {
                Some(o) => self.record(o),
                None => self.forget(id),
            }
        }
    }

    /// Takes in the plan made over what was loaded: each object's new share of the health, and
    /// marks for the objects with work left. `unsettled` are objects with copies the plan could
    /// not count yet (a connected node that has not reported them).
    pub fn assessed(&mut self, plan: &Plan, unsettled: &[ObjectId]) {
        for (id, h) in &plan.objects {
            let Some(entry) = self.objects.get_mut(id) else {
                continue;
            };
            if let Some(old) = entry.health.replace(*h) {
                self.totals.sub(&old);
            }
            self.totals.add(h);
            if h.needs_work() {
                self.mark(*id);
            }
        }
        let more = plan.tasks.iter().map(|t| t.object);
        let more: Vec<ObjectId> = more.chain(plan.deferred.iter().copied()).collect();
        for id in more.into_iter().chain(unsettled.iter().copied()) {
            self.mark(id);
        }
    }

    /// Sets an object's index entry to its recorded copies.
    fn record(&mut self, o: &ObjectState) {
        let mut nodes: Vec<NodeId> = o
            .shards
            .iter()
            .flat_map(|s| s.copies.iter().map(|c| c.node))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let entry = self.objects.entry(o.id).or_default();
        for n in entry
            .nodes
            .iter()
            .filter(|n| nodes.binary_search(n).is_err())
        {
            unlink(&mut self.by_node, *n, o.id);
        }
        for n in nodes
            .iter()
            .filter(|n| entry.nodes.binary_search(n).is_err())
        {
            self.by_node.entry(*n).or_default().insert(o.id);
        }
        entry.nodes = nodes;
    }

    fn forget(&mut self, id: ObjectId) {
        let Some(entry) = self.objects.remove(&id) else {
            return;
        };
        for n in entry.nodes {
            unlink(&mut self.by_node, n, id);
        }
        if let Some(h) = entry.health {
            self.totals.sub(&h);
        }
    }
}

fn unlink(by_node: &mut HashMap<NodeId, HashSet<ObjectId>>, node: NodeId, object: ObjectId) {
    if let Some(set) = by_node.get_mut(&node) {
        set.remove(&object);
        if set.is_empty() {
            by_node.remove(&node);
        }
    }
}

#[cfg(test)]
mod tests;
