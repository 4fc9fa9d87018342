//! One run: the event loop over a simulated clock, deterministic from its seed.
//!
//! Events are kept in a heap ordered by (time, sequence), so two events at one second run in
//! the order they were scheduled. Each node has at most one pending online/offline flip and one
//! departure; global Poisson processes (arrivals, corruption) schedule their next event when
//! they fire.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use raidtorrent_tracker::placement::{self, NodeView, Policy, ShardNeed};
use raidtorrent_tracker::scoring::NodeTier;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{PolicyConfig, SimConfig};
use crate::dist::{exponential, DAY, HOUR, YEAR};
use crate::metrics::RunMetrics;
use crate::tasks::Tasks;
use crate::view::View;
use crate::world::{node_of, Node, Store, World, CORRUPT, EMPTY};

/// Something that happens at a simulated second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Arrive,
    Die(u32),
    /// The node's own daily schedule turns it on or off.
    Flip(u32),
    ZoneDown(u16),
    ZoneUp(u16),
    Corrupt,
    /// An audit of the copy of a shard on a node comes due.
    Audit(u32, u32),
    Pass,
    TaskDone(u32),
    Sample,
}

/// The whole state of one run.
pub struct Sim {
    pub cfg: SimConfig,
    pub policy: Policy,
    pub now: u64,
    pub horizon: u64,
    pub rng: SmallRng,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    pub world: World,
    pub view: View,
    pub tasks: Tasks,
    pub metrics: RunMetrics,
    pub zone_names: Vec<String>,
}

impl Sim {
    /// Builds the fleet and fills it with objects through the gateway's placement.
    pub fn new(cfg: &SimConfig, p: PolicyConfig, seed: u64) -> Sim {
        let n = p.k + p.m;
        let objects = (cfg.data.shard_copies / (n * p.copies) as u64).max(1) as usize;
        let shard_len = (cfg.data.object_mib * 1_048_576.0 / p.k as f64).ceil() as u64;
        let zone_names = (0..cfg.fleet.zones).map(|z| format!("z{z:03}")).collect();
        let policy = Policy {
            k: p.k,
            m: p.m,
            copies: p.copies,
            high_share: 0.0,
        };
        let mut sim = Sim {
            cfg: cfg.clone(),
            policy,
            now: 0,
            horizon: (cfg.run.years * YEAR) as u64,
            rng: SmallRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            world: World::new(
                cfg.fleet.zones as usize,
                Store::new(objects, p.k, p.m, p.copies, shard_len),
            ),
            view: View::new(cfg, policy),
            tasks: Tasks::new(cfg),
            metrics: RunMetrics::new(p, seed, objects, shard_len),
            zone_names,
        };
        for _ in 0..cfg.fleet.nodes {
            sim.spawn_node();
        }
        sim.fill();
        sim.world.start_tally();
        sim.schedule_processes();
        sim
    }

    pub fn schedule(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, e)));
    }

    fn after(&mut self, secs: f64, e: Event) {
        let at = self.now + secs.max(1.0) as u64;
        self.schedule(at, e);
    }

    /// Runs to the horizon; `tick` is told of simulated seconds as they pass.
    pub fn run(&mut self, mut tick: impl FnMut(u64)) {
        let started = std::time::Instant::now();
        while let Some(Reverse((at, _, e))) = self.queue.pop() {
            if at > self.horizon {
                break;
            }
            self.metrics.node_secs += self.metrics.alive as f64 * (at - self.now) as f64;
            if at / 3600 != self.now / 3600 {
                tick(at);
            }
            self.now = at;
            self.world.clock = at;
            self.handle(e);
        }
        self.metrics.node_secs += self.metrics.alive as f64 * (self.horizon - self.now) as f64;
        self.now = self.horizon;
        self.world.tally.finish(self.horizon);
        self.metrics.tally = self.world.tally.clone();
        self.metrics
            .finish(self.horizon, started.elapsed().as_secs_f64());
        tick(self.horizon);
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Arrive => {
                self.spawn_node();
                let mean = self.cfg.fleet.lifetime.mean_secs() / self.cfg.fleet.nodes as f64;
                let dt = exponential(&mut self.rng, mean);
                self.after(dt, Event::Arrive);
            }
            Event::Die(node) => self.die(node),
            Event::Flip(node) => self.flip(node),
            Event::ZoneDown(z) => self.zone_down(z),
            Event::ZoneUp(z) => self.zone_up(z),
            Event::Corrupt => self.corrupt(),
            Event::Audit(shard, node) => self.audit(shard, node),
            Event::Pass => self.pass(),
            Event::TaskDone(t) => self.task_done(t),
            Event::Sample => self.sample(),
        }
    }

    fn schedule_processes(&mut self) {
        self.after(0.0, Event::Pass);
        self.after(HOUR, Event::Sample);
        let mean = self.cfg.fleet.lifetime.mean_secs() / self.cfg.fleet.nodes as f64;
        let dt = exponential(&mut self.rng, mean);
        self.after(dt, Event::Arrive);
        if self.cfg.outages.per_zone_year > 0.0 {
            for z in 0..self.cfg.fleet.zones {
                let dt = exponential(&mut self.rng, YEAR / self.cfg.outages.per_zone_year);
                self.after(dt, Event::ZoneDown(z));
            }
        }
        if let Some(mean) = self.corruption_gap() {
            let dt = exponential(&mut self.rng, mean);
            self.after(dt, Event::Corrupt);
        }
    }

    /// Mean seconds between two corruption draws over every slot of the arena (draws that hit
    /// an empty slot do nothing, so each copy is hit at the configured rate).
    fn corruption_gap(&self) -> Option<f64> {
        let rate = self.cfg.corruption.per_copy_year;
        (rate > 0.0).then(|| YEAR / (rate * self.world.store.slots.len() as f64))
    }

    fn spawn_node(&mut self) {
        let f = &self.cfg.fleet;
        let id = self.world.nodes.len() as u32;
        let uptime = self.rng.random_range(f.uptime_min..=f.uptime_max);
        let offline_len = ((1.0 - uptime) * DAY) as u32;
        let capacity = (f.capacity_gib * 1_073_741_824.0) as u64;
        let zone = self.rng.random_range(0..f.zones);
        // The daily offline window starts at a random time of day.
        let phase = self.rng.random_range(0.0..DAY);
        let day_secs = (self.now as f64) % DAY;
        let into = (day_secs - phase).rem_euclid(DAY);
        let up = offline_len == 0 || into >= offline_len as f64;
        self.world.nodes.push(Node {
            zone,
            alive: true,
            up,
            online: false,
            offline_len,
            offline_since: self.now,
            capacity,
            free: capacity,
            load: 0,
            backoff_until: 0,
            held: Vec::new(),
        });
        self.world.set_online(id, self.now);
        self.metrics.alive += 1;
        if offline_len > 0 {
            let next = if up {
                DAY - into
            } else {
                offline_len as f64 - into
            };
            self.after(next, Event::Flip(id));
        }
        let life = self.cfg.fleet.lifetime.sample(&mut self.rng);
        self.after(life, Event::Die(id));
    }

    fn die(&mut self, node: u32) {
        if !self.world.nodes[node as usize].alive {
            return;
        }
        self.metrics.alive -= 1;
        self.metrics.deaths += 1;
        for _ in self.world.kill(node, self.now) {
            self.metrics
                .lose(self.world.store.shard_len * self.policy.k as u64, self.now);
        }
    }

    fn flip(&mut self, node: u32) {
        let now = self.now;
        let n = &mut self.world.nodes[node as usize];
        if !n.alive {
            return;
        }
        n.up = !n.up;
        let next = if n.up {
            DAY - n.offline_len as f64
        } else {
            n.offline_len as f64
        };
        self.world.set_online(node, now);
        self.after(next, Event::Flip(node));
    }

    fn zone_nodes(&self, z: u16) -> Vec<u32> {
        let nodes = self.world.nodes.iter().enumerate();
        let alive = nodes.filter(|(_, n)| n.alive && n.zone == z);
        alive.map(|(i, _)| i as u32).collect()
    }

    fn zone_down(&mut self, z: u16) {
        self.metrics.zone_outages += 1;
        let nodes = self.zone_nodes(z);
        if self.rng.random::<f64>() < self.cfg.outages.disaster_p {
            for n in nodes {
                self.die(n);
            }
            let dt = exponential(&mut self.rng, YEAR / self.cfg.outages.per_zone_year);
            self.after(dt, Event::ZoneDown(z));
            return;
        }
        self.world.zone_down[z as usize] = true;
        for n in nodes {
            self.world.set_online(n, self.now);
        }
        let dt = exponential(&mut self.rng, self.cfg.outages.mean_hours * HOUR);
        self.after(dt, Event::ZoneUp(z));
    }

    fn zone_up(&mut self, z: u16) {
        self.world.zone_down[z as usize] = false;
        for n in self.zone_nodes(z) {
            self.world.set_online(n, self.now);
        }
        let dt = exponential(&mut self.rng, YEAR / self.cfg.outages.per_zone_year);
        self.after(dt, Event::ZoneDown(z));
    }

    fn corrupt(&mut self) {
        let slots = self.world.store.slots.len();
        let i = self.rng.random_range(0..slots);
        let stride = self.world.store.stride;
        let (shard, at) = ((i / stride) as u32, i % stride);
        let slot = self.world.store.slots[i];
        if slot != EMPTY
            && slot & CORRUPT == 0
            && !self.world.store.lost[shard as usize / self.world.store.n]
        {
            self.metrics.corruptions += 1;
            if self.world.corrupt(shard, at) == crate::world::Effect::Lost {
                self.metrics
                    .lose(self.world.store.shard_len * self.policy.k as u64, self.now);
            }
            let dt = exponential(&mut self.rng, self.cfg.corruption.audit_days * DAY);
            self.after(dt, Event::Audit(shard, node_of(slot)));
        }
        if let Some(mean) = self.corruption_gap() {
            let dt = exponential(&mut self.rng, mean);
            self.after(dt, Event::Corrupt);
        }
    }

    /// An audit of a corrupt copy: the node serves pieces that fail their hashes, so the
    /// gateway records a failed audit and marks the object. Offline nodes are audited later.
    fn audit(&mut self, shard: u32, node: u32) {
        let slots = self.world.store.slots_of(shard);
        let Some(at) = slots.iter().position(|&s| s != EMPTY && node_of(s) == node) else {
            return;
        };
        let n = &self.world.nodes[node as usize];
        if !n.alive {
            return;
        }
        if !n.online {
            let dt = exponential(&mut self.rng, self.cfg.corruption.audit_days * DAY);
            self.after(dt, Event::Audit(shard, node));
            return;
        }
        self.world.fail_audit(shard, at);
        self.metrics.audit_failures += 1;
        let o = self.world.store.object_of(shard);
        self.view.tracker.mark(o as i64);
    }

    /// Hourly: sampled reads for availability, and once a day a time-series row.
    fn sample(&mut self) {
        let objects = self.world.store.objects();
        for _ in 0..self.cfg.run.reads_per_hour {
            let o = self.rng.random_range(0..objects);
            let ok = self.world.object_readable(o);
            self.metrics.read(ok);
        }
        if self.now % (DAY as u64) < HOUR as u64 {
            let online = self.world.nodes.iter().filter(|n| n.online).count();
            self.metrics
                .row(self.now, online, &self.tasks, self.view.tracker.dirty());
        }
        self.after(HOUR, Event::Sample);
    }

    /// The write path: every object placed by `placement::place` over a sample of nodes with
    /// room, as the gateway places an upload over its connected nodes. Uploads are taken as
    /// spread over the day, so the sample ignores who is online at second 0 (sampling only
    /// those would give every holder the same offline hours).
    fn fill(&mut self) {
        let st = &self.world.store;
        let (objects, n, len) = (st.objects(), st.n, st.shard_len);
        let needs: Vec<ShardNeed> = (0..n)
            .map(|_| ShardNeed {
                holders: Vec::new(),
                want: self.policy.copies,
            })
            .collect();
        for o in 0..objects {
            let views = self.sample_views(len);
            let plan = placement::place(&views, &self.policy, len, &needs);
            self.metrics.fill_shortfall += plan.shortfall.iter().map(|s| s.1 as u64).sum::<u64>();
            for (i, targets) in plan.targets.iter().enumerate() {
                let shard = (o * n + i) as u32;
                for &t in targets {
                    self.world.add_copy(shard, t as u32, 0, 0);
                }
            }
            if (self.world.store.intact[o] as usize) < self.policy.k {
                self.world.store.lost[o] = true;
                self.metrics.fill_failed += 1;
            }
        }
    }

    /// Up to `data.candidates` distinct online nodes with room for a shard, as placement views.
    fn sample_views(&mut self, len: u64) -> Vec<NodeView> {
        let want = self.cfg.data.candidates;
        let total = self.world.nodes.len();
        // Draws with replacement, then keeps distinct eligible nodes (sorting only dedups;
        // placement ranks candidates itself).
        let mut picked: Vec<u32> = (0..want)
            .map(|_| self.rng.random_range(0..total) as u32)
            .collect();
        picked.sort_unstable();
        picked.dedup();
        picked.retain(|&i| {
            let n = &self.world.nodes[i as usize];
            n.alive && n.free >= len
        });
        picked
            .into_iter()
            .map(|i| {
                let n = &self.world.nodes[i as usize];
                NodeView {
                    id: i as i64,
                    zone: self.zone_names[n.zone as usize].clone(),
                    tier: NodeTier::Low,
                    free: n.free,
                    capacity: n.capacity,
                    load: n.load,
                    network: None,
                }
            })
            .collect()
    }
}
