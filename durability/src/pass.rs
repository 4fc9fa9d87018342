//! The health pass, as the gateway's incremental worker runs it:
//! observe the nodes → select dirty objects and a sweep window → load their states → plan →
//! give the plan back → carry the tasks out.
//!
//! `repair::plan` places each repaired object over every node it is given, so the simulator
//! hands it, per chunk of [`CHUNK`] objects, only the holders of those objects plus a random
//! sample of `data.candidates` eligible nodes. Free space and load reserved by tasks already
//! started are folded into those statuses, so chunks do not promise the same room twice.

use std::collections::HashSet;

use raidtorrent_tracker::ids::InfoHash;
use raidtorrent_tracker::repair::dirty::{Selection, Window};
use raidtorrent_tracker::repair::{
    self, CopyState, NodeStatus, ObjectState, PlanConfig, ShardState,
};
use rand::Rng;

use crate::dist::DAY;
use crate::sim::{Event, Sim};
use crate::world::{node_of, EMPTY, FAILED};

/// Objects planned together in one call of `repair::plan`.
pub const CHUNK: usize = 64;

/// A distinct info-hash per (object, shard); the planner only carries it through.
pub fn shard_hash(object: u64, shard: u64) -> InfoHash {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&object.to_be_bytes());
    h[8..16].copy_from_slice(&shard.to_be_bytes());
    InfoHash(h)
}

impl Sim {
    pub(crate) fn pass(&mut self) {
        self.metrics.passes += 1;
        let forgotten = self.view.refresh(&self.world, &self.zone_names, self.now);
        for node in forgotten {
            self.forget(node);
        }
        let cfg = self.view.plan_cfg.clone();
        self.view.tracker.observe_nodes(&self.view.statuses, &cfg);
        self.metrics.peak_dirty = self.metrics.peak_dirty.max(self.view.tracker.dirty());
        let sweep_max = self.sweep_batch();
        let mut sel = self
            .view
            .tracker
            .select(self.cfg.repair.dirty_max, sweep_max);
        // The tracker's queue order follows its hash sets; sorting keeps a run a function of
        // its seed (whenever the queue fits in `dirty_max`, which then selects all of it).
        sel.dirty.sort_unstable();
        let mut budget = self.cfg.repair.max_tasks;
        self.tasks.pass_end = self.now;
        for chunk in sel.dirty.chunks(CHUNK) {
            let sub = Selection {
                dirty: chunk.to_vec(),
                sweep: None,
            };
            self.plan_chunk(&sub, &[], chunk, &mut budget);
        }
        if let Some(w) = sel.sweep {
            self.sweep(w, &mut budget);
        }
        let gap = self.cfg.repair.pass_minutes * 60.0;
        let from = if self.cfg.repair.wait_for_tasks {
            self.tasks.pass_end
        } else {
            self.now
        };
        self.schedule(from + gap as u64, Event::Pass);
    }

    /// Objects per sweep window, so that the sweep covers every object in `sweep_days`.
    fn sweep_batch(&self) -> usize {
        let passes = self.cfg.repair.sweep_days * DAY / (self.cfg.repair.pass_minutes * 60.0);
        (self.world.store.objects() as f64 / passes.max(1.0)).ceil() as usize
    }

    /// The gateway forgets a node that never came back, and its recorded copies.
    fn forget(&mut self, node: u32) {
        let held = self.world.nodes[node as usize].held.clone();
        for shard in held {
            self.world.remove_copy(shard, node);
            let o = self.world.store.object_of(shard);
            self.view.tracker.mark(o as i64);
        }
        self.world.nodes[node as usize].held = Vec::new();
    }

    /// Loads the window's objects chunk by chunk, each chunk with its own part of the window.
    fn sweep(&mut self, w: Window, budget: &mut usize) {
        let objects = self.world.store.objects();
        let start = if w.after < 0 { 0 } else { w.after as usize + 1 };
        let end = start.saturating_add(w.limit).min(objects).max(start);
        let ids: Vec<i64> = (start..end).map(|i| i as i64).collect();
        let reached_end = end - start < w.limit;
        if ids.is_empty() {
            let sub = Selection {
                dirty: Vec::new(),
                sweep: Some(Window {
                    after: w.after,
                    limit: 1,
                }),
            };
            self.view.tracker.loaded(&sub, &[], &[]);
            return;
        }
        let chunks = ids.len().div_ceil(CHUNK);
        let mut after = w.after;
        for (i, chunk) in ids.chunks(CHUNK).enumerate() {
            let last = i + 1 == chunks;
            // A window shorter than its limit ends the sweep: the tracker starts over.
            let limit = chunk.len() + usize::from(last && reached_end);
            let sub = Selection {
                dirty: Vec::new(),
                sweep: Some(Window { after, limit }),
            };
            self.plan_chunk(&sub, chunk, chunk, budget);
            after = *chunk.last().unwrap_or(&after);
        }
    }

    /// One chunk through the tracker and the planner.
    fn plan_chunk(&mut self, sub: &Selection, window: &[i64], ids: &[i64], budget: &mut usize) {
        let mut states = Vec::with_capacity(ids.len());
        for &id in ids {
            let o = id as usize;
            if o >= self.world.store.objects() || self.world.store.lost[o] {
                continue; // a lost object is no longer kept: the tracker forgets it
            }
            states.push(self.object_state(o));
        }
        self.view.tracker.loaded(sub, window, &states);
        // Objects with tasks in flight are not planned again (the gateway waits for its tasks
        // before the next pass); the end of each task marks its object.
        states.retain(|s| self.world.store.busy[s.id as usize] == 0);
        let nodes = self.candidates(&states);
        let cfg = PlanConfig {
            max_tasks: *budget,
            ..self.view.plan_cfg.clone()
        };
        let plan = repair::plan(&states, &nodes, &cfg);
        self.view.tracker.assessed(&plan, &[]);
        *budget = budget.saturating_sub(plan.tasks.len());
        self.metrics.planned += states.len() as u64;
        for t in plan.tasks {
            self.start_task(t);
        }
    }

    /// An object's recorded copies, as the gateway's metadata holds them.
    fn object_state(&self, o: usize) -> ObjectState {
        let st = &self.world.store;
        let shards = (0..st.n)
            .map(|i| {
                let shard = (o * st.n + i) as u32;
                let copies = st.slots_of(shard).iter().filter(|&&s| s != EMPTY);
                ShardState {
                    idx: i as u32,
                    info_hash: shard_hash(o as u64, i as u64),
                    length: st.shard_len,
                    copies: copies
                        .map(|&s| CopyState {
                            node: node_of(s) as i64,
                            failed_audit: s & FAILED != 0,
                        })
                        .collect(),
                }
            })
            .collect();
        ObjectState {
            id: o as i64,
            policy: self.policy,
            shards,
            read_hours: 0,
        }
    }

    /// The nodes one plan sees: every listed holder of the chunk's objects, and a random
    /// sample of eligible nodes, with the room and load tasks in flight left them.
    fn candidates(&mut self, states: &[ObjectState]) -> Vec<NodeStatus> {
        let mut seen: HashSet<i64> = HashSet::new();
        let mut out = Vec::new();
        let holders = states.iter().flat_map(|o| {
            o.shards
                .iter()
                .flat_map(|s| s.copies.iter().map(|c| c.node))
        });
        for id in holders {
            if seen.insert(id) {
                if let Some(s) = self.view.status(id as u32) {
                    out.push(self.fresh(s));
                }
            }
        }
        if states.is_empty() {
            return out;
        }
        let listed = self.view.statuses.len();
        for _ in 0..self.cfg.data.candidates {
            let s = &self.view.statuses[self.rng.random_range(0..listed)];
            let n = &self.world.nodes[s.id as usize];
            let eligible = s.online && n.free >= self.world.store.shard_len;
            if eligible && n.backoff_until <= self.now && seen.insert(s.id) {
                out.push(self.fresh(s));
            }
        }
        out
    }

    fn fresh(&self, s: &NodeStatus) -> NodeStatus {
        let n = &self.world.nodes[s.id as usize];
        NodeStatus {
            free: n.free,
            load: n.load,
            backing_off: n.backoff_until > self.now,
            ..s.clone()
        }
    }
}
