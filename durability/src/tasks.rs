//! Carrying tasks out: how long each takes under the bandwidth model, and what it changes when
//! it ends. A copy is fetched by its targets from every live source at once (swarm repair); a
//! rebuild downloads `k` shards to the gateway and uploads the new ones. Tasks share
//! `repair.concurrency` lanes. A task checks the truth when it ends: a target that went offline
//! or left fails it and backs off; sources that no longer serve intact pieces fail it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use raidtorrent_tracker::repair::{Action, Task};

use crate::config::SimConfig;
use crate::dist::{exponential, HOUR};
use crate::sim::{Event, Sim};
use crate::world::Effect;

/// What a task in flight will do when it ends.
#[derive(Debug, Clone)]
enum Work {
    Copy {
        shard: u32,
        sources: Vec<u32>,
        targets: Vec<u32>,
    },
    Rebuild {
        object: usize,
        shards: Vec<(u32, Vec<u32>)>,
    },
    Drop {
        shard: u32,
        node: u32,
    },
}

#[derive(Debug)]
struct InFlight {
    object: usize,
    bytes: u64,
    work: Work,
}

/// Tasks in flight and the lanes they run in.
pub struct Tasks {
    slab: Vec<Option<InFlight>>,
    free: Vec<u32>,
    lanes: BinaryHeap<Reverse<u64>>,
    pub in_flight: usize,
    pub in_flight_bytes: u64,
    /// When the current pass's last task ends.
    pub pass_end: u64,
    node_bps: f64,
    gateway_bps: f64,
    fixed_hours: Option<f64>,
}

impl Tasks {
    pub fn new(cfg: &SimConfig) -> Tasks {
        Tasks {
            slab: Vec::new(),
            free: Vec::new(),
            lanes: (0..cfg.repair.concurrency).map(|_| Reverse(0)).collect(),
            in_flight: 0,
            in_flight_bytes: 0,
            pass_end: 0,
            node_bps: cfg.fleet.node_mbps * 1e6 / 8.0,
            gateway_bps: cfg.repair.gateway_mbps * 1e6 / 8.0,
            fixed_hours: cfg.repair.task_hours,
        }
    }

    fn insert(&mut self, t: InFlight) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(t);
                i
            }
            None => {
                self.slab.push(Some(t));
                (self.slab.len() - 1) as u32
            }
        }
    }

    /// Seconds a task takes once it has a lane.
    fn duration(&self, work: &Work, len: f64, k: f64) -> f64 {
        let secs = match work {
            Work::Copy {
                sources, targets, ..
            } => {
                let up = sources.len().max(1) as f64 * self.node_bps / targets.len().max(1) as f64;
                len / up.min(self.node_bps)
            }
            Work::Rebuild { shards, .. } => {
                let out: usize = shards.iter().map(|(_, t)| t.len()).sum();
                k * len / self.gateway_bps
                    + out as f64 * len / self.gateway_bps.min(self.node_bps * out as f64)
            }
            Work::Drop { .. } => 0.0,
        };
        secs + 30.0 // directive round trips and torrent start-up
    }
}

fn ids(v: &[i64]) -> Vec<u32> {
    v.iter().map(|&n| n as u32).collect()
}

impl Sim {
    /// Starts one planned task: reserves room on its targets and gives it a lane.
    pub(crate) fn start_task(&mut self, t: Task) {
        let (n, k, len) = (
            self.world.store.n,
            self.world.store.k,
            self.world.store.shard_len,
        );
        let object = t.object as usize;
        let shard_of = |idx: u32| (object * n) as u32 + idx;
        let (work, bytes) = match t.action {
            Action::Copy {
                shard,
                sources,
                targets,
            } => {
                let bytes = len * targets.len() as u64;
                let work = Work::Copy {
                    shard: shard_of(shard.idx),
                    sources: ids(&sources),
                    targets: ids(&targets),
                };
                (work, bytes)
            }
            Action::Rebuild { shards, .. } => {
                let out: usize = shards.iter().map(|(_, t)| t.len()).sum();
                let bytes = len * (k + out) as u64;
                let shards = shards
                    .into_iter()
                    .map(|(s, t)| (shard_of(s.idx), ids(&t)))
                    .collect();
                (Work::Rebuild { object, shards }, bytes)
            }
            Action::Drop { shard, node } => {
                let work = Work::Drop {
                    shard: shard_of(shard.idx),
                    node: node as u32,
                };
                (work, 0)
            }
        };
        self.reserve(&work, true);
        let secs = match self.tasks.fixed_hours {
            Some(h) => exponential(&mut self.rng, h * HOUR),
            None => self.tasks.duration(&work, len as f64, k as f64),
        };
        let done = match self.tasks.fixed_hours {
            Some(_) => self.now + secs as u64,
            None => {
                let Reverse(lane) = self.tasks.lanes.pop().unwrap_or(Reverse(self.now));
                let done = lane.max(self.now) + secs as u64;
                self.tasks.lanes.push(Reverse(done));
                done
            }
        };
        self.world.store.busy[object] += 1;
        self.tasks.in_flight += 1;
        self.tasks.in_flight_bytes += bytes;
        self.tasks.pass_end = self.tasks.pass_end.max(done);
        self.metrics
            .task_started(bytes, self.tasks.in_flight, self.tasks.in_flight_bytes);
        let id = self.tasks.insert(InFlight {
            object,
            bytes,
            work,
        });
        self.schedule(done, Event::TaskDone(id));
    }

    /// Load on sources and targets, and room on targets: taken at start, given back at the end.
    fn reserve(&mut self, work: &Work, take: bool) {
        let len = self.world.store.shard_len;
        let nodes = &mut self.world.nodes;
        let mut load = |n: u32, room: bool| {
            let node = &mut nodes[n as usize];
            if take {
                node.load += 1;
                if room {
                    node.free = node.free.saturating_sub(len);
                }
            } else {
                node.load = node.load.saturating_sub(1);
                if room {
                    node.free = (node.free + len).min(node.capacity);
                }
            }
        };
        match work {
            Work::Copy {
                sources, targets, ..
            } => {
                sources.iter().for_each(|&s| load(s, false));
                targets.iter().for_each(|&t| load(t, true));
            }
            Work::Rebuild { shards, .. } => {
                for (_, targets) in shards {
                    targets.iter().for_each(|&t| load(t, true));
                }
            }
            Work::Drop { node, .. } => load(*node, false),
        }
    }

    pub(crate) fn task_done(&mut self, id: u32) {
        let Some(t) = self.tasks.slab[id as usize].take() else {
            return;
        };
        self.tasks.free.push(id);
        self.tasks.in_flight -= 1;
        self.tasks.in_flight_bytes -= t.bytes;
        self.reserve(&t.work, false);
        match &t.work {
            Work::Copy {
                shard,
                sources,
                targets,
            } => {
                let served = sources.iter().any(|&s| self.world.serves(*shard, s));
                self.deliver(*shard, targets, served);
            }
            Work::Rebuild { object, shards } => {
                let ok = self.world.readable_shards(*object) >= self.policy.k;
                for (shard, targets) in shards {
                    self.deliver(*shard, targets, ok);
                }
            }
            Work::Drop { shard, node } => {
                if self.world.nodes[*node as usize].online
                    && self.world.remove_copy(*shard, *node) == Effect::Lost
                {
                    self.metrics
                        .lose(self.world.store.shard_len * self.policy.k as u64, self.now);
                }
            }
        }
        let busy = &mut self.world.store.busy[t.object];
        *busy = busy.saturating_sub(1);
        self.view.tracker.mark(t.object as i64);
    }

    /// New copies on the targets that are still there, when the data could be had.
    fn deliver(&mut self, shard: u32, targets: &[u32], available: bool) {
        let grace = self.view.plan_cfg.grace_secs;
        let backoff = (self.cfg.repair.backoff_hours * HOUR) as u64;
        for &t in targets {
            let node = &self.world.nodes[t as usize];
            let ok = available && node.online && self.world.add_copy(shard, t, self.now, grace);
            if !ok {
                self.metrics.tasks_failed += 1;
                if !self.world.nodes[t as usize].online {
                    self.world.nodes[t as usize].backoff_until = self.now + backoff;
                }
            }
        }
    }
}
