//! What goes missing and how long it stays missing, measured exactly over a run, for the
//! durability model ([`crate::model`]):
//!
//! - per object state `i` (shards with no intact copy left): the time objects spent in it and
//!   how often they left it up (one more shard gone) or down (one repaired) — the birth-death
//!   chain's rates as the gateway's planner really achieved them;
//! - the time integral of missing copies (a shard below its `copies` intact copies on live
//!   disks) and how many went missing: by Little's law, the mean wait of a lost copy.
//!
//! Only objects not lost count: an object that falls below `k` leaves the tally.

/// What one shard lacks: copies below policy, and whether it has no intact copy at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    pub copies: u64,
    pub shard: u64,
}

/// Running integrals over simulated time.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    on: bool,
    at: u64,
    copies_now: u64,
    /// Objects in each state now.
    in_state: Vec<u64>,
    /// Object-seconds spent in each state.
    pub state_secs: Vec<f64>,
    /// Moves out of each state to the next one up (a shard lost its last copy) ...
    pub ups: Vec<u64>,
    /// ... and down (a shard got an intact copy back).
    pub downs: Vec<u64>,
    /// Missing copies times seconds.
    pub copy_secs: f64,
    /// Copies that went missing.
    pub copy_events: u64,
}

impl Tally {
    /// Starts counting at `now`, with `states[o]` the state of each object not lost and
    /// `copies` missing over them (changes before are not counted).
    pub fn start(&mut self, now: u64, shards: usize, states: &[usize], copies: u64) {
        let mut in_state = vec![0; shards + 1];
        for &s in states {
            in_state[s] += 1;
        }
        *self = Tally {
            on: true,
            at: now,
            copies_now: copies,
            in_state,
            state_secs: vec![0.0; shards + 1],
            ups: vec![0; shards + 1],
            downs: vec![0; shards + 1],
            ..Tally::default()
        };
    }

    fn advance(&mut self, now: u64) {
        let dt = now.saturating_sub(self.at) as f64;
        self.copy_secs += self.copies_now as f64 * dt;
        for (secs, &n) in self.state_secs.iter_mut().zip(&self.in_state) {
            *secs += n as f64 * dt;
        }
        self.at = self.at.max(now);
    }

    /// One shard of an object not lost went from `before` to `after` at `now`.
    pub fn change(&mut self, now: u64, before: Missing, after: Missing) {
        if !self.on || before.copies == after.copies {
            return;
        }
        self.advance(now);
        self.copy_events += after.copies.saturating_sub(before.copies);
        self.copies_now = (self.copies_now + after.copies).saturating_sub(before.copies);
    }

    /// An object not lost moved from state `from` to `from ± 1` at `now`.
    pub fn moved(&mut self, now: u64, from: usize, to: usize) {
        if !self.on || from == to {
            return;
        }
        self.advance(now);
        self.in_state[from] -= 1;
        self.in_state[to] += 1;
        if to > from {
            self.ups[from] += 1;
        } else {
            self.downs[from] += 1;
        }
    }

    /// An object in `state` was lost at `now` with `copies` missing: it no longer counts.
    pub fn leave(&mut self, now: u64, state: usize, copies: u64) {
        if !self.on {
            return;
        }
        self.advance(now);
        self.in_state[state] -= 1;
        self.copies_now -= copies.min(self.copies_now);
    }

    /// Closes the integrals at `now`.
    pub fn finish(&mut self, now: u64) {
        if self.on {
            self.advance(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(copies: u64) -> Missing {
        Missing { copies, shard: 0 }
    }

    #[test]
    fn a_copy_missing_for_an_hour_counts_an_hour() {
        let mut t = Tally::default();
        t.change(5, m(0), m(1)); // before the start: ignored
        t.start(10, 3, &[0], 0);
        t.change(100, m(0), m(1));
        t.change(3_700, m(1), m(0));
        t.finish(10_000);
        assert_eq!((t.copy_events, t.copy_secs), (1, 3_600.0));
        assert_eq!(t.state_secs[0], 9_990.0);
    }

    #[test]
    fn states_count_time_and_moves_and_a_lost_object_leaves() {
        let mut t = Tally::default();
        t.start(0, 3, &[0, 1], 2);
        t.moved(10, 0, 1);
        t.moved(15, 1, 0);
        t.moved(20, 1, 2);
        t.leave(20, 2, 3);
        t.finish(30);
        assert_eq!(t.state_secs, vec![10.0 + 15.0, 20.0 + 5.0, 0.0, 0.0]);
        assert_eq!(t.ups, vec![1, 1, 0, 0]);
        assert_eq!(t.downs, vec![0, 1, 0, 0]);
        assert_eq!(t.copy_secs, 2.0 * 20.0);
    }
}
