//! A simulated cluster of thousands of nodes with churn (nodes leave for a while or for good,
//! come back, get suspended or disqualified, copies fail audits, directives fail), planned and
//! carried out step by step. Checks the plan's invariants at every step and, once churn stops,
//! that the cluster settles back to policy.

use std::collections::HashMap;

use super::*;

const MIB: u64 = 1 << 20;

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct World {
    nodes: Vec<NodeStatus>,
    objects: Vec<ObjectState>,
    /// Nodes gone for good (their disks are gone too).
    dead: Vec<bool>,
    step_secs: u64,
}

impl World {
    fn new(n: usize, zones: usize, objects: usize, p: Policy, rng: &mut Rng) -> World {
        let nodes: Vec<NodeStatus> = (0..n)
            .map(|i| NodeStatus {
                id: i as NodeId,
                zone: format!("z{}", i % zones),
                tier: if rng.chance(0.75) {
                    NodeTier::High
                } else {
                    NodeTier::Low
                },
                online: true,
                offline_secs: 0,
                free: (64 + rng.below(64) as u64) * MIB,
                capacity: 128 * MIB,
                load: 0,
                backing_off: false,
                poor_hours: 0,
            })
            .collect();
        let mut w = World {
            nodes,
            objects: Vec::new(),
            dead: vec![false; n],
            step_secs: 30,
        };
        for id in 0..objects {
            let views = w.views();
            let needs = vec![
                ShardNeed {
                    holders: Vec::new(),
                    want: p.copies
                };
                p.k + p.m
            ];
            let placed = placement::place(&views, &p, MIB, &needs);
            assert!(placed.is_complete());
            let shards = placed
                .targets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    for &n in t {
                        w.nodes[n as usize].free -= MIB;
                    }
                    ShardState {
                        idx: i as u32,
                        info_hash: test_hash(id as u64, i as u64),
                        length: MIB,
                        copies: t
                            .iter()
                            .map(|&node| CopyState {
                                node,
                                failed_audit: false,
                            })
                            .collect(),
                    }
                })
                .collect();
            w.objects.push(ObjectState {
                id: id as i64,
                policy: p,
                shards,
                read_hours: 0,
            });
        }
        w
    }

    fn views(&self) -> Vec<NodeView> {
        self.nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| NodeView {
                id: n.id,
                zone: n.zone.clone(),
                tier: n.tier,
                free: n.free,
                capacity: n.capacity,
                load: 0,
                network: None,
            })
            .collect()
    }

    fn churn(&mut self, rng: &mut Rng) {
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            n.backing_off = false;
            if self.dead[i] {
                n.offline_secs += self.step_secs;
                continue;
            }
            if n.online {
                if rng.chance(0.004) {
                    n.online = false;
                    n.offline_secs = 0;
                    // One in four departures is for good.
                    self.dead[i] = rng.chance(0.25);
                } else if rng.chance(0.0005) {
                    n.tier = NodeTier::Suspended;
                } else if rng.chance(0.0002) {
                    n.tier = NodeTier::Disqualified;
                }
            } else {
                n.offline_secs += self.step_secs;
                if rng.chance(0.2) {
                    n.online = true;
                    n.offline_secs = 0;
                }
            }
        }
        // Now and then a copy fails an audit.
        for _ in 0..2 {
            let o = rng.below(self.objects.len());
            let s = rng.below(self.objects[o].shards.len());
            if let Some(c) = self.objects[o].shards[s].copies.first_mut() {
                c.failed_audit = true;
            }
        }
    }

    /// Puts every node back online except the dead (suspended and disqualified nodes stay so), so
    /// the cluster can settle.
    fn calm(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.backing_off = false;
            if !self.dead[i] {
                n.online = true;
                n.offline_secs = 0;
            } else {
                n.offline_secs += 100_000;
            }
        }
    }

    fn live_copies(&self, o: usize, s: usize, grace: u64) -> Vec<NodeId> {
        self.objects[o].shards[s]
            .copies
            .iter()
            .filter(|c| classify(c, Some(&self.nodes[c.node as usize]), grace) == CopyClass::Live)
            .map(|c| c.node)
            .collect()
    }

    /// Checks the plan against the world it was made from, then carries it out; directives fail
    /// with probability `fail`.
    fn apply(&mut self, plan: &Plan, cfg: &PlanConfig, fail: f64, rng: &mut Rng) {
        let index: HashMap<i64, usize> = self
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id, i))
            .collect();
        // Drops per shard, checked against the live copies the plan saw.
        let mut drops: HashMap<(usize, u32), Vec<NodeId>> = HashMap::new();
        for t in &plan.tasks {
            if let Action::Drop { shard, node } = &t.action {
                drops
                    .entry((index[&t.object], shard.idx))
                    .or_default()
                    .push(*node);
            }
        }
        for ((o, s), dropped) in &drops {
            let r = self.objects[*o].policy.copies;
            let live = self.live_copies(*o, *s as usize, cfg.grace_secs);
            let kept = live.iter().filter(|n| !dropped.contains(n)).count();
            if dropped.iter().any(|n| live.contains(n)) {
                assert!(
                    kept >= r,
                    "object {o} shard {s}: drops {dropped:?} leave {kept} of {live:?}"
                );
            }
            // A copy that is not live may only go if it is bad (never a lost or away one: its node
            // may come back with the only surviving copy).
            for n in dropped.iter().filter(|n| !live.contains(n)) {
                let c = self.objects[*o].shards[*s as usize]
                    .copies
                    .iter()
                    .find(|c| c.node == *n)
                    .expect("dropped copies exist");
                assert_eq!(
                    classify(c, Some(&self.nodes[*n as usize]), cfg.grace_secs),
                    CopyClass::Bad
                );
            }
        }
        for t in &plan.tasks {
            let o = index[&t.object];
            match &t.action {
                Action::Copy {
                    shard,
                    sources,
                    targets,
                } => {
                    let live = self.live_copies(o, shard.idx as usize, cfg.grace_secs);
                    assert!(!sources.is_empty());
                    assert!(sources.iter().all(|s| live.contains(s)), "sources are live");
                    for &n in targets {
                        self.receive(o, shard.idx as usize, n, fail, rng);
                    }
                }
                Action::Rebuild { shards, sources } => {
                    let k = self.objects[o].policy.k;
                    assert!(sources.len() >= k, "rebuild from at least k shards");
                    for (s, holders) in sources {
                        let live = self.live_copies(o, *s as usize, cfg.grace_secs);
                        assert!(holders.iter().all(|h| live.contains(h)));
                    }
                    for (shard, targets) in shards {
                        for &n in targets {
                            self.receive(o, shard.idx as usize, n, fail, rng);
                        }
                    }
                }
                Action::Drop { shard, node } => {
                    let copies = &mut self.objects[o].shards[shard.idx as usize].copies;
                    let before = copies.len();
                    copies.retain(|c| c.node != *node);
                    assert_eq!(copies.len() + 1, before, "dropped a copy that was there");
                    self.nodes[*node as usize].free += MIB;
                }
            }
        }
    }

    fn receive(&mut self, o: usize, s: usize, n: NodeId, fail: f64, rng: &mut Rng) {
        let node = &mut self.nodes[n as usize];
        assert!(node.online, "targets are online");
        assert!(
            matches!(node.tier, NodeTier::High | NodeTier::Low),
            "targets are trusted"
        );
        assert!(node.free >= MIB, "targets have room");
        let copies = &mut self.objects[o].shards[s].copies;
        assert!(copies.iter().all(|c| c.node != n), "one copy per node");
        if rng.chance(fail) {
            node.backing_off = true;
            return;
        }
        node.free -= MIB;
        copies.push(CopyState {
            node: n,
            failed_audit: false,
        });
    }
}

/// How the simulation plans: over every object each step, as a small gateway does, or through a
/// [`dirty::Tracker`] over what changed, checked at every step against a plan over everything.
#[derive(Clone, Copy)]
enum Mode {
    Full,
    Incremental { sweep: usize },
}

/// Plans through a tracker, as the gateway's health pass does, and checks it against the plan
/// over every object: the same health, and every object with repair work among those planned.
struct Incremental {
    tracker: dirty::Tracker,
    sweep: usize,
    /// The objects as the tracker last saw them recorded, to mark the ones that changed (the
    /// gateway's database change log).
    recorded: Vec<ObjectState>,
}

impl Incremental {
    fn plan(&mut self, w: &World, cfg: &PlanConfig) -> Plan {
        for (o, before) in w.objects.iter().zip(&self.recorded) {
            if o != before {
                self.tracker.mark(o.id);
            }
        }
        self.recorded = w.objects.clone();
        self.tracker.observe_nodes(&w.nodes, cfg);
        let sel = self.tracker.select(usize::MAX, self.sweep);
        let window: Vec<i64> = sel.sweep.map_or(Vec::new(), |win| {
            let after = w.objects.iter().filter(|o| o.id > win.after);
            after.take(win.limit).map(|o| o.id).collect()
        });
        let chosen: Vec<ObjectState> = w
            .objects
            .iter()
            .filter(|o| sel.dirty.contains(&o.id) || window.contains(&o.id))
            .cloned()
            .collect();
        self.tracker.loaded(&sel, &window, &chosen);
        let plan = plan(&chosen, &w.nodes, cfg);
        self.tracker.assessed(&plan, &[]);
        let full = super::plan(&w.objects, &w.nodes, cfg);
        assert_eq!(self.tracker.health(), &full.health, "incremental health");
        let urgent = [
            Why::Repair,
            Why::Rebuild,
            Why::BadCopy,
            Why::Surplus,
            Why::Drain,
        ];
        for t in full.tasks.iter().filter(|t| urgent.contains(&t.why)) {
            assert!(
                chosen.iter().any(|o| o.id == t.object),
                "object {} has {:?} work but was not selected",
                t.object,
                t.why
            );
        }
        plan
    }
}

/// Runs churn for `steps`, then lets the cluster settle; returns the tasks planned during churn by
/// reason.
fn run(seed: u64, nodes: usize, objects: usize, steps: usize, mode: Mode) -> HashMap<Why, usize> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let p = Policy {
        k: 4,
        m: 2,
        copies: 2,
        high_share: 0.5,
    };
    let mut w = World::new(nodes, 6, objects, p, &mut rng);
    let cfg = PlanConfig {
        grace_secs: 90,
        max_tasks: 100_000,
        max_moves: 50,
        ..PlanConfig::default()
    };
    let mut inc = match mode {
        Mode::Full => None,
        Mode::Incremental { sweep } => Some(Incremental {
            tracker: dirty::Tracker::new(),
            sweep,
            recorded: Vec::new(),
        }),
    };
    let mut plan_now = |w: &World| match inc.as_mut() {
        Some(inc) => inc.plan(w, &cfg),
        None => plan(&w.objects, &w.nodes, &cfg),
    };
    let mut repaired = 0;
    let mut kinds: HashMap<Why, usize> = HashMap::new();
    for _ in 0..steps {
        w.churn(&mut rng);
        let plan = plan_now(&w);
        repaired += plan.tasks.len();
        for t in &plan.tasks {
            *kinds.entry(t.why).or_insert(0usize) += 1;
        }
        w.apply(&plan, &cfg, 0.05, &mut rng);
    }
    eprintln!("seed {seed}: {repaired} tasks during churn: {kinds:?}");
    assert!(
        kinds.contains_key(&Why::Repair),
        "churn gave the planner work"
    );
    w.calm();
    let mut rounds = 0;
    loop {
        let plan = plan_now(&w);
        if plan.tasks.is_empty() {
            assert_eq!(plan.health.objects_unreadable, 0);
            break;
        }
        w.apply(&plan, &cfg, 0.0, &mut rng);
        rounds += 1;
        assert!(rounds < 200, "settles");
    }
    // Back to policy: exactly `copies` live copies per shard, enough high-tier copies, nothing
    // on suspended or disqualified nodes, no bad copies.
    for o in &w.objects {
        for s in &o.shards {
            let live: Vec<&CopyState> = s
                .copies
                .iter()
                .filter(|c| !w.dead[c.node as usize])
                .collect();
            assert_eq!(live.len(), p.copies, "object {} shard {}", o.id, s.idx);
            assert!(live.iter().all(|c| !c.failed_audit));
            let high = live
                .iter()
                .filter(|c| w.nodes[c.node as usize].tier == NodeTier::High)
                .count();
            assert!(high >= p.high_copies(), "object {} shard {}", o.id, s.idx);
            assert!(live.iter().all(|c| matches!(
                w.nodes[c.node as usize].tier,
                NodeTier::High | NodeTier::Low
            )));
        }
    }
    kinds
}

/// Every kind of task a churning cloud of thousands of nodes must give the planner.
const EXERCISED: [Why; 5] = [
    Why::Repair,
    Why::Rebuild,
    Why::Surplus,
    Why::Drain,
    Why::BadCopy,
];

#[test]
fn thousands_of_nodes_with_churn_settle_back_to_policy() {
    let kinds = run(0x5eed, 2000, 400, 40, Mode::Full);
    for why in EXERCISED {
        assert!(kinds.contains_key(&why), "{why:?} exercised: {kinds:?}");
    }
}

#[test]
fn small_clusters_with_churn_settle_back_to_policy() {
    let mut surplus = 0;
    for seed in 1..9 {
        surplus += run(seed, 24, 30, 30, Mode::Full)
            .get(&Why::Surplus)
            .copied()
            .unwrap_or(0);
    }
    assert!(
        surplus > 0,
        "nodes came back after their copies were replaced"
    );
}

#[test]
fn incremental_passes_see_all_repair_work_and_settle_back_to_policy() {
    // No sweep at all: marks alone must find every object with work.
    let kinds = run(0x1dea, 2000, 400, 40, Mode::Incremental { sweep: 0 });
    for why in EXERCISED {
        assert!(kinds.contains_key(&why), "{why:?} exercised: {kinds:?}");
    }
    for seed in 1..5 {
        run(seed, 24, 30, 30, Mode::Incremental { sweep: 3 });
    }
}
