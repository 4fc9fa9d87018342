//! What the gateway knows: the node list a pass gives the planner, and the incremental
//! [`Tracker`]. Node statuses come from the world exactly as the gateway would see them: online
//! or not, seconds since last seen, free space, transfers in flight, back-off.

use raidtorrent_tracker::placement::Policy;
use raidtorrent_tracker::repair::dirty::Tracker;
use raidtorrent_tracker::repair::{NodeStatus, PlanConfig};
use raidtorrent_tracker::scoring::NodeTier;

use crate::config::SimConfig;
use crate::dist::{DAY, HOUR};
use crate::world::World;

const UNLISTED: u32 = u32::MAX;

pub struct View {
    /// Every node the gateway still knows, in no particular order.
    pub statuses: Vec<NodeStatus>,
    /// Node id → index in `statuses`.
    pos: Vec<u32>,
    pub tracker: Tracker,
    pub plan_cfg: PlanConfig,
    pub policy: Policy,
    forget_secs: u64,
}

impl View {
    pub fn new(cfg: &SimConfig, policy: Policy) -> View {
        View {
            statuses: Vec::new(),
            pos: Vec::new(),
            tracker: Tracker::new().away_marks(cfg.repair.away_marks),
            plan_cfg: PlanConfig {
                grace_secs: (cfg.repair.grace_hours * HOUR) as u64,
                quota_high_water: 0.95,
                max_tasks: cfg.repair.max_tasks,
                max_moves: cfg.repair.max_moves,
                // The planner's own sampling, over the subset the pass already hands it.
                candidates: cfg.data.candidates,
            },
            policy,
            forget_secs: (cfg.repair.forget_days * DAY) as u64,
        }
    }

    /// Brings every status up to date; lists nodes that arrived since the last pass. Returns
    /// the nodes the gateway forgets now (gone longer than `forget_days`), already unlisted.
    pub fn refresh(&mut self, world: &World, zones: &[String], now: u64) -> Vec<u32> {
        for id in self.pos.len()..world.nodes.len() {
            self.pos.push(self.statuses.len() as u32);
            let n = &world.nodes[id];
            self.statuses.push(NodeStatus {
                id: id as i64,
                zone: zones[n.zone as usize].clone(),
                tier: NodeTier::Low,
                online: false,
                offline_secs: 0,
                free: 0,
                capacity: n.capacity,
                load: 0,
                backing_off: false,
                poor_hours: 0,
            });
        }
        let mut forget = Vec::new();
        for s in &mut self.statuses {
            let n = &world.nodes[s.id as usize];
            s.online = n.online;
            s.offline_secs = if n.online {
                0
            } else {
                now.saturating_sub(n.offline_since)
            };
            s.free = n.free;
            s.load = n.load;
            s.backing_off = n.backoff_until > now;
            if !n.alive && s.offline_secs > self.forget_secs {
                forget.push(s.id as u32);
            }
        }
        for &id in &forget {
            self.unlist(id);
        }
        forget
    }

    fn unlist(&mut self, id: u32) {
        let at = self.pos[id as usize];
        if at == UNLISTED {
            return;
        }
        self.statuses.swap_remove(at as usize);
        if let Some(moved) = self.statuses.get(at as usize) {
            self.pos[moved.id as usize] = at;
        }
        self.pos[id as usize] = UNLISTED;
    }

    /// The node's status as of the last refresh, if the gateway still lists it.
    pub fn status(&self, id: u32) -> Option<&NodeStatus> {
        match self.pos.get(id as usize) {
            Some(&at) if at != UNLISTED => self.statuses.get(at as usize),
            _ => None,
        }
    }
}
