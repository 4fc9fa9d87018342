//! The truth: which nodes live, which are online, and which copies sit intact on which disks.
//! The gateway's view (`view.rs`) sees only what it would see in production.
//!
//! Copies live in one arena of `copies + 2` slots per shard (a u32 each: node id in 30 bits, a
//! corrupt bit and a failed-audit bit), so memory stays near 12 bytes per copy plus 4 for the
//! node's list of what it holds.

use crate::tally::{Missing, Tally};

/// A slot that holds no copy.
pub const EMPTY: u32 = NODE_MASK;
const NODE_MASK: u32 = (1 << 30) - 1;
/// The copy's bytes no longer match (the node does not know; an audit finds out).
pub const CORRUPT: u32 = 1 << 30;
/// The gateway recorded a failed audit for the copy.
pub const FAILED: u32 = 1 << 31;

pub fn node_of(slot: u32) -> u32 {
    slot & NODE_MASK
}

/// One volunteer node.
#[derive(Debug, Clone)]
pub struct Node {
    pub zone: u16,
    pub alive: bool,
    /// Within its own daily online window.
    pub up: bool,
    /// Reachable now: alive, up, and its zone not dark.
    pub online: bool,
    /// Seconds a day it is offline on its own.
    pub offline_len: u32,
    /// When it was last seen going offline.
    pub offline_since: u64,
    pub capacity: u64,
    pub free: u64,
    /// Tasks in flight to or from it.
    pub load: u32,
    pub backoff_until: u64,
    /// Shards it holds a copy of.
    pub held: Vec<u32>,
}

/// The objects of one policy and their copies.
pub struct Store {
    pub k: usize,
    pub n: usize,
    pub stride: usize,
    /// Copies each shard should have.
    pub copies: usize,
    pub shard_len: u64,
    pub slots: Vec<u32>,
    /// Per object: shards with an intact copy somewhere.
    pub intact: Vec<u8>,
    pub lost: Vec<bool>,
    /// Per object: tasks in flight.
    pub busy: Vec<u8>,
}

/// What a change to the truth did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The object just fell below `k` intact shards.
    Lost,
}

pub struct World {
    pub nodes: Vec<Node>,
    pub zone_down: Vec<bool>,
    pub store: Store,
    /// The simulated second changes happen at (the event loop keeps it current).
    pub clock: u64,
    pub tally: Tally,
}

impl Store {
    pub fn new(objects: usize, k: usize, m: usize, copies: usize, shard_len: u64) -> Self {
        let n = k + m;
        let stride = copies + 2;
        Store {
            k,
            n,
            stride,
            copies,
            shard_len,
            slots: vec![EMPTY; objects * n * stride],
            intact: vec![0; objects],
            lost: vec![false; objects],
            busy: vec![0; objects],
        }
    }

    pub fn objects(&self) -> usize {
        self.intact.len()
    }

    pub fn shards(&self) -> usize {
        self.objects() * self.n
    }

    pub fn object_of(&self, shard: u32) -> usize {
        shard as usize / self.n
    }

    pub fn slots_of(&self, shard: u32) -> &[u32] {
        let at = shard as usize * self.stride;
        &self.slots[at..at + self.stride]
    }

    fn slots_mut(&mut self, shard: u32) -> &mut [u32] {
        let at = shard as usize * self.stride;
        &mut self.slots[at..at + self.stride]
    }
}

impl World {
    pub fn new(zones: usize, store: Store) -> World {
        World {
            nodes: Vec::new(),
            zone_down: vec![false; zones],
            store,
            clock: 0,
            tally: Tally::default(),
        }
    }

    fn copy_intact(&self, slot: u32) -> bool {
        slot != EMPTY && slot & CORRUPT == 0 && self.nodes[node_of(slot) as usize].alive
    }

    /// Some copy of the shard is intact on a live disk.
    pub fn shard_intact(&self, shard: u32) -> bool {
        self.store
            .slots_of(shard)
            .iter()
            .any(|&s| self.copy_intact(s))
    }

    /// Some intact copy of the shard is on a node that is online now.
    pub fn shard_readable(&self, shard: u32) -> bool {
        let s = self.store.slots_of(shard);
        s.iter()
            .any(|&s| self.copy_intact(s) && self.nodes[node_of(s) as usize].online)
    }

    /// The node is online and holds an intact copy of the shard (it can serve as a source).
    pub fn serves(&self, shard: u32, node: u32) -> bool {
        let s = self.store.slots_of(shard);
        s.iter().any(|&s| {
            s != EMPTY
                && node_of(s) == node
                && self.copy_intact(s)
                && self.nodes[node as usize].online
        })
    }

    /// Shards of the object readable now.
    pub fn readable_shards(&self, object: usize) -> usize {
        let st = &self.store;
        let first = (object * st.n) as u32;
        (first..first + st.n as u32)
            .filter(|&s| self.shard_readable(s))
            .count()
    }

    /// Enough shards of the object are readable now.
    pub fn object_readable(&self, object: usize) -> bool {
        !self.store.lost[object] && self.readable_shards(object) >= self.store.k
    }

    /// What `shard` lacks now.
    pub fn missing(&self, shard: u32) -> Missing {
        let slots = self.store.slots_of(shard);
        let intact = slots.iter().filter(|&&s| self.copy_intact(s)).count();
        Missing {
            copies: self.store.copies.saturating_sub(intact) as u64,
            shard: u64::from(intact == 0),
        }
    }

    /// Copies the object's shards lack together.
    fn missing_copies(&self, object: usize) -> u64 {
        let first = (object * self.store.n) as u32;
        (first..first + self.store.n as u32)
            .map(|s| self.missing(s).copies)
            .sum()
    }

    /// Starts the tally of missing copies and shards from the state now.
    pub fn start_tally(&mut self) {
        let live: Vec<usize> = (0..self.store.objects())
            .filter(|&o| !self.store.lost[o])
            .collect();
        let states: Vec<usize> = live.iter().map(|&o| self.state(o)).collect();
        let copies = live.iter().map(|&o| self.missing_copies(o)).sum();
        self.tally.start(self.clock, self.store.n, &states, copies);
    }

    /// The object's shards with no intact copy left.
    fn state(&self, object: usize) -> usize {
        self.store.n - self.store.intact[object] as usize
    }

    /// Counts one shard of a live object gaining (`gained`) or losing its last intact copy.
    fn shift(&mut self, object: usize, gained: bool) {
        let from = self.state(object);
        if gained {
            self.store.intact[object] += 1;
        } else {
            self.store.intact[object] -= 1;
        }
        if !self.store.lost[object] {
            let to = self.state(object);
            self.tally.moved(self.clock, from, to);
        }
    }

    /// Runs `change` on the truth and updates the object's intact count for `shard`.
    fn on_shard(&mut self, shard: u32, change: impl FnOnce(&mut World)) -> Effect {
        let o = self.store.object_of(shard);
        let before = self.missing(shard);
        change(self);
        let after = self.missing(shard);
        if !self.store.lost[o] {
            self.tally.change(self.clock, before, after);
        }
        match (before.shard, after.shard) {
            (0, 1) => self.shift(o, false),
            (1, 0) => self.shift(o, true),
            _ => return Effect::None,
        }
        // Only a shard going away can lose an object (while filling, counts rise from zero).
        if before.shard == 0
            && !self.store.lost[o]
            && (self.store.intact[o] as usize) < self.store.k
        {
            self.lose(o);
            return Effect::Lost;
        }
        Effect::None
    }

    fn lose(&mut self, object: usize) {
        self.store.lost[object] = true;
        let copies = self.missing_copies(object);
        self.tally.leave(self.clock, self.state(object), copies);
    }

    /// Puts an intact copy of `shard` on `node`. When every slot is taken, forgets a recorded
    /// copy the gateway counts as lost (its node offline longer than `grace` at `now`) to make
    /// room. False when the node already has a copy or there is no room.
    pub fn add_copy(&mut self, shard: u32, node: u32, now: u64, grace: u64) -> bool {
        let slots = self.store.slots_of(shard);
        if slots.iter().any(|&s| s != EMPTY && node_of(s) == node) {
            return false;
        }
        let lost = |s: u32| {
            let n = &self.nodes[node_of(s) as usize];
            !n.online && now.saturating_sub(n.offline_since) > grace
        };
        let at = match slots.iter().position(|&s| s == EMPTY) {
            Some(at) => at,
            None => match slots.iter().position(|&s| lost(s)) {
                Some(at) => at,
                None => return false,
            },
        };
        let len = self.store.shard_len;
        self.on_shard(shard, |w| {
            let old = w.store.slots_of(shard)[at];
            if old != EMPTY {
                w.detach(shard, node_of(old));
            }
            w.store.slots_mut(shard)[at] = node;
            let n = &mut w.nodes[node as usize];
            n.held.push(shard);
            n.free = n.free.saturating_sub(len);
        });
        true
    }

    /// Removes the copy of `shard` on `node` from the disk and the record.
    pub fn remove_copy(&mut self, shard: u32, node: u32) -> Effect {
        self.on_shard(shard, |w| w.detach(shard, node))
    }

    fn detach(&mut self, shard: u32, node: u32) {
        let len = self.store.shard_len;
        if let Some(s) = self
            .store
            .slots_mut(shard)
            .iter_mut()
            .find(|s| **s != EMPTY && node_of(**s) == node)
        {
            *s = EMPTY;
        }
        let n = &mut self.nodes[node as usize];
        if let Some(i) = n.held.iter().position(|&h| h == shard) {
            n.held.swap_remove(i);
        }
        n.free = (n.free + len).min(n.capacity);
    }

    /// Flags the copy of `shard` in slot `at` as corrupt.
    pub fn corrupt(&mut self, shard: u32, at: usize) -> Effect {
        self.on_shard(shard, |w| w.store.slots_mut(shard)[at] |= CORRUPT)
    }

    /// Records a failed audit of the copy in slot `at`.
    pub fn fail_audit(&mut self, shard: u32, at: usize) {
        self.store.slots_mut(shard)[at] |= FAILED;
    }

    /// The node leaves for good. Returns the objects it took below `k`.
    pub fn kill(&mut self, node: u32, now: u64) -> Vec<usize> {
        let held = self.nodes[node as usize].held.clone();
        let before: Vec<Missing> = held.iter().map(|&s| self.missing(s)).collect();
        self.nodes[node as usize].alive = false;
        let mut lost = Vec::new();
        for (shard, was) in held.into_iter().zip(before) {
            let after = self.missing(shard);
            let o = self.store.object_of(shard);
            if !self.store.lost[o] {
                self.tally.change(self.clock, was, after);
            }
            if was.shard == 1 || after.shard == 0 {
                continue;
            }
            self.shift(o, false);
            if !self.store.lost[o] && (self.store.intact[o] as usize) < self.store.k {
                self.lose(o);
                lost.push(o);
            }
        }
        self.set_online(node, now);
        lost
    }

    /// Recomputes whether the node is reachable; returns whether that changed.
    pub fn set_online(&mut self, node: u32, now: u64) -> bool {
        let n = &self.nodes[node as usize];
        let online = n.alive && n.up && !self.zone_down[n.zone as usize];
        let n = &mut self.nodes[node as usize];
        if online == n.online {
            return false;
        }
        n.online = online;
        if !online {
            n.offline_since = now;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(nodes: usize) -> World {
        let node = Node {
            zone: 0,
            alive: true,
            up: true,
            online: true,
            offline_len: 0,
            offline_since: 0,
            capacity: 1 << 30,
            free: 1 << 30,
            load: 0,
            backoff_until: 0,
            held: Vec::new(),
        };
        World {
            nodes: vec![node; nodes],
            ..World::new(1, Store::new(1, 2, 1, 1, 100))
        }
    }

    #[test]
    fn losing_shards_below_k_loses_the_object_once() {
        let mut w = world(3);
        for s in 0..3 {
            assert!(w.add_copy(s, s, 0, 10));
        }
        assert_eq!(w.store.intact[0], 3);
        assert!(w.kill(0, 5).is_empty());
        assert_eq!(w.store.intact[0], 2);
        assert_eq!(w.corrupt(1, 0), Effect::Lost);
        assert!(w.kill(2, 6).is_empty(), "already lost");
        assert!(!w.object_readable(0));
    }

    #[test]
    fn a_death_counts_every_shard_it_held() {
        let mut w = world(3);
        w.store = Store::new(2, 1, 1, 1, 100);
        for s in 0..4 {
            assert!(w.add_copy(s, s % 2, 0, 10));
        }
        assert_eq!(w.kill(0, 1), Vec::<usize>::new());
        assert_eq!(w.store.intact, vec![1, 1]);
        assert_eq!(w.kill(1, 2), vec![0, 1]);
    }

    #[test]
    fn a_full_shard_evicts_only_what_the_gateway_forgets() {
        let mut w = world(5);
        for n in 0..3 {
            assert!(w.add_copy(0, n, 0, 10));
        }
        assert!(!w.add_copy(0, 3, 0, 10));
        w.nodes[1].up = false;
        w.set_online(1, 100);
        assert!(!w.add_copy(0, 3, 105, 10), "within grace");
        assert!(w.add_copy(0, 3, 111, 10));
        assert!(w.nodes[1].held.is_empty());
        assert_eq!(w.nodes[3].held, vec![0]);
    }
}
