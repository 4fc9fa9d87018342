//! Rebalance moves and trimming: the parts of a plan that change where healthy shards live.

use std::collections::HashSet;

use super::{
    Action, NodeId, NodeStatus, ObjectState, ObjectView, Planner, Risk, ShardNeed, ShardView, Task,
    Why,
};
use crate::placement;
use crate::scoring::NodeTier;

impl Planner<'_> {
    /// At most one move per object per plan, only for objects with nothing to repair.
    pub(super) fn rebalance(&mut self, v: &ObjectView) {
        let o = v.object;
        if !self.settled(v) {
            return;
        }
        for (i, s) in v.shards.iter().enumerate() {
            let Some(why) = self.move_reason(o, s) else {
                continue;
            };
            self.attempts += 1;
            let mut needs: Vec<ShardNeed> = v
                .shards
                .iter()
                .map(|s| ShardNeed {
                    holders: s.live.clone(),
                    want: 0,
                })
                .collect();
            needs[i].want = 1;
            let read_hours = o.read_hours;
            let snapshot = if why == Why::ReadHours {
                self.snapshot_where(v, |n| n.poor_hours & read_hours == 0)
            } else {
                self.snapshot(v)
            };
            let placed = placement::place(&snapshot, &o.policy, o.shards[i].length, &needs);
            // A move made to improve placement must not give up a placement rule; one made to
            // leave a suspended or full node may, as placing a new copy may.
            let may_relax = matches!(why, Why::Drain | Why::Quota);
            let Some(&target) = placed.targets[i]
                .first()
                .filter(|_| may_relax || placed.relaxed.is_empty())
            else {
                continue;
            };
            if !self.improves(why, s, target, o.read_hours) {
                continue;
            }
            self.take(target, o.shards[i].length);
            self.moves += 1;
            self.push(Task {
                object: o.id,
                why,
                risk: Risk {
                    margin: v.margin,
                    copies: s.live.len(),
                },
                action: Action::Copy {
                    shard: Self::shard_ref(&o.shards[i]),
                    sources: s.live.clone(),
                    targets: vec![target],
                },
            });
            return;
        }
    }

    fn node(&self, id: NodeId) -> &NodeStatus {
        self.by_id[&id]
    }

    fn over_quota(&self, id: NodeId) -> bool {
        let n = self.node(id);
        n.capacity == 0
            || (n.capacity.saturating_sub(n.free) as f64)
                > self.cfg.quota_high_water * n.capacity as f64
    }

    fn zone_doubled(&self, s: &ShardView, id: NodeId) -> bool {
        let zone = &self.node(id).zone;
        s.live
            .iter()
            .filter(|&&c| self.node(c).zone == *zone)
            .count()
            > 1
    }

    fn high_count(&self, s: &ShardView) -> usize {
        s.live
            .iter()
            .filter(|&&c| self.node(c).tier == NodeTier::High)
            .count()
    }

    /// Whether [`Planner::rebalance`] would look for a move for the object.
    pub(super) fn wants_move(&self, v: &ObjectView) -> bool {
        self.settled(v)
            && v.shards
                .iter()
                .any(|s| self.move_reason(v.object, s).is_some())
    }

    /// Every shard has exactly its copies, all live, and no bad copy a trim could drop now:
    /// only then do copies move. (A bad copy on a node that is not online cannot be dropped
    /// and must not hold moves up for ever: its node may never come back.)
    fn settled(&self, v: &ObjectView) -> bool {
        let r = v.object.policy.copies;
        v.shards.iter().all(|s| {
            s.away.is_empty() && s.live.len() == r && !s.bad.iter().any(|&n| self.node_online(n))
        })
    }

    /// Why one of the shard's copies should move, if any (first reason wins).
    fn move_reason(&self, o: &ObjectState, s: &ShardView) -> Option<Why> {
        if s.live
            .iter()
            .any(|&c| self.node(c).tier == NodeTier::Suspended)
        {
            return Some(Why::Drain);
        }
        if s.live.iter().any(|&c| self.over_quota(c)) {
            return Some(Why::Quota);
        }
        let zones: HashSet<&str> = s.live.iter().map(|&c| self.node(c).zone.as_str()).collect();
        if zones.len() < s.live.len()
            && self
                .eligible_zones
                .iter()
                .any(|z| !zones.contains(z.as_str()))
        {
            return Some(Why::ZoneSpread);
        }
        if self.high_count(s) < o.policy.high_copies() && self.eligible_high {
            return Some(Why::TierShare);
        }
        if o.read_hours != 0
            && s.live
                .iter()
                .all(|&c| self.node(c).poor_hours & o.read_hours != 0)
            && self.eligible_hours.iter().any(|h| h & o.read_hours == 0)
        {
            return Some(Why::ReadHours);
        }
        None
    }

    /// Whether a new copy on `target` fixes what `why` complains about, so the trim that follows
    /// removes the complained-about copy and not the new one.
    fn improves(&self, why: Why, s: &ShardView, target: NodeId, read_hours: u32) -> bool {
        let t = self.node(target);
        match why {
            Why::Drain => true,
            Why::Quota => {
                let after = t.capacity.saturating_sub(self.free[&target]) as f64;
                after < self.cfg.quota_high_water * t.capacity as f64
            }
            Why::ZoneSpread => s.live.iter().all(|&c| self.node(c).zone != t.zone),
            Why::TierShare => t.tier == NodeTier::High,
            Why::ReadHours => t.poor_hours & read_hours == 0,
            _ => false,
        }
    }

    /// Drops of bad copies (once the shard has its counted copies without them) and of surplus
    /// live copies (the worst first).
    pub(super) fn trim(&mut self, v: &ObjectView) {
        let o = v.object;
        let r = o.policy.copies;
        for (i, s) in v.shards.iter().enumerate() {
            let shard = &o.shards[i];
            if s.counted() >= r {
                for &node in &s.bad {
                    if self.node_online(node) {
                        self.push(Task {
                            object: o.id,
                            why: Why::BadCopy,
                            risk: Risk {
                                margin: v.margin,
                                copies: s.counted(),
                            },
                            action: Action::Drop {
                                shard: Self::shard_ref(shard),
                                node,
                            },
                        });
                    }
                }
            }
            // One surplus drop per shard per plan: drops run concurrently, and two drops of one
            // shard each checking that the other copy remains could together leave too few.
            let surplus = s.live.len().saturating_sub(r).min(1);
            if surplus == 0 {
                continue;
            }
            let mut keep = s.live.clone();
            for _ in 0..surplus {
                let worst = *keep
                    .iter()
                    .max_by_key(|&&c| self.drop_order(o.read_hours, &keep, c))
                    .expect("surplus implies copies");
                keep.retain(|&c| c != worst);
                self.push(Task {
                    object: o.id,
                    why: Why::Surplus,
                    risk: Risk {
                        margin: v.margin,
                        copies: s.live.len(),
                    },
                    action: Action::Drop {
                        shard: Self::shard_ref(shard),
                        node: worst,
                    },
                });
            }
        }
    }

    fn node_online(&self, id: NodeId) -> bool {
        self.by_id.get(&id).is_some_and(|n| n.online)
    }

    /// Larger is dropped first: suspended, then over quota, then any copy but the only one on a
    /// node that is online at the hours the object is read, then sharing a zone with another copy,
    /// then low-tier, then fuller; node id breaks ties.
    #[allow(clippy::type_complexity)]
    fn drop_order(
        &self,
        read_hours: u32,
        keep: &[NodeId],
        c: NodeId,
    ) -> (bool, bool, bool, bool, bool, u64, NodeId) {
        let n = self.node(c);
        let view = ShardView {
            live: keep.to_vec(),
            away: Vec::new(),
            bad: Vec::new(),
        };
        let good = |id: NodeId| self.node(id).poor_hours & read_hours == 0;
        let sole_reader =
            read_hours != 0 && good(c) && keep.iter().filter(|&&k| good(k)).count() == 1;
        let used = if n.capacity == 0 {
            u64::MAX
        } else {
            (n.capacity.saturating_sub(n.free) as u128 * 1_000_000 / n.capacity as u128) as u64
        };
        (
            n.tier == NodeTier::Suspended,
            self.over_quota(c),
            !sole_reader,
            self.zone_doubled(&view, c),
            n.tier != NodeTier::High,
            used,
            c,
        )
    }
}
