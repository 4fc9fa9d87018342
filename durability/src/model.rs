//! Annual loss below what a run can observe, from what the run measured.
//!
//! A year over 10^5 objects sees losses down to about 10^-5 per object-year; eleven nines is
//! 10^-11. Below what it sees, the loss rate follows from a birth-death chain over an object's
//! state `i` (shards with no intact copy left; `m + 1` loses it), with the rates the run
//! measured ([`Tally`](crate::tally::Tally)) rather than assumed ones:
//!
//! - up from `i` at `(n - i) λ_s`, with `λ_s` the rate at which a shard lost its last copy, per
//!   shard per second over the whole run (node departures and rot; with several copies, both
//!   copies' losses and the repairs between them are inside it);
//! - down from `i` at the rate the run saw objects in state `i` get a shard back: the gateway's
//!   grace period, its passes, its queue, the bandwidth model, tasks failed because a source or
//!   target went offline, and rebuilds waiting for `k` shards online — all as they happened.
//!
//! States the run visited too rarely to measure (fewer than [`MIN_REPAIRS`] repairs seen) take
//! the rate of the highest state measured, scaled by how much less often `k` of the remaining
//! shards are online together (a rebuild needs `k`): `P(Bin(n - i, u) >= k)` against the same
//! at the measured state, `u` the chance a shard has a copy online. That is an extrapolation
//! and the figures say so ([`Model::measured_up_to`]).
//!
//! What the chain assumes and the fleet may not: losses independent of each other (a zone
//! outage takes nodes offline, not their disks; see `outages.disaster_p`), and memoryless waits.

use crate::config::PolicyConfig;
use crate::dist::{HOUR, YEAR};
use crate::markov;
use crate::metrics::RunMetrics;

/// Repairs out of a state below which its rate counts as not measured.
pub const MIN_REPAIRS: u64 = 20;

/// Pooled measurements of one policy's runs, and the loss they imply.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Copies that went missing, per stored copy per year.
    pub copy_loss: f64,
    /// Mean hours a missing copy stayed missing.
    pub copy_wait_hours: f64,
    /// Shards that lost their last copy, per shard per year.
    pub shard_loss: f64,
    /// Mean hours before a repair, in each state `1..=m` (index 0 unused), measured or
    /// extrapolated.
    pub repair_hours: Vec<f64>,
    /// The highest state whose repair rate was measured; above it, extrapolated.
    pub measured_up_to: usize,
    /// Expected share of objects lost per year.
    pub annual_loss: f64,
}

impl Model {
    /// The model of `p` from its runs, in a fleet whose nodes are online a share `uptime` of
    /// the time; `None` when state 1 saw fewer than [`MIN_REPAIRS`] repairs or no shard was
    /// lost (no rate to measure).
    pub fn of(p: PolicyConfig, uptime: f64, runs: &[&RunMetrics]) -> Option<Model> {
        let n = p.k + p.m;
        let states = |i: usize| -> (f64, u64, u64) {
            runs.iter()
                .map(|r| {
                    let t = &r.tally;
                    let get = |v: &[u64]| v.get(i).copied().unwrap_or(0);
                    (
                        t.state_secs.get(i).copied().unwrap_or(0.0),
                        get(&t.ups),
                        get(&t.downs),
                    )
                })
                .fold((0.0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
        };
        let pooled: Vec<(f64, u64, u64)> = (0..=n).map(states).collect();
        let exposure: f64 = pooled
            .iter()
            .enumerate()
            .map(|(i, s)| (n - i) as f64 * s.0)
            .sum();
        let ups: u64 = pooled.iter().map(|s| s.1).sum();
        let measured_up_to = (1..=p.m)
            .take_while(|&i| pooled[i].2 >= MIN_REPAIRS)
            .last()?;
        if exposure == 0.0 || ups == 0 {
            return None;
        }
        let lambda = ups as f64 / exposure;
        let online = 1.0 - (1.0 - uptime).powi(p.copies as i32);
        let measured = |i: usize| pooled[i].2 as f64 / pooled[i].0;
        let j = measured_up_to;
        let down: Vec<f64> = (0..=p.m)
            .map(|i| match i {
                0 => 0.0,
                i if i <= j => measured(i),
                i => measured(j) * at_least(n - i, p.k, online) / at_least(n - j, p.k, online),
            })
            .collect();
        let up: Vec<f64> = (0..=p.m).map(|i| (n - i) as f64 * lambda).collect();
        let mttdl = markov::mttdl_rates(&up, &down);
        let copy_events: u64 = runs.iter().map(|r| r.tally.copy_events).sum();
        let copy_secs: f64 = runs.iter().map(|r| r.tally.copy_secs).sum();
        let shard_secs = n as f64 * pooled.iter().map(|s| s.0).sum::<f64>();
        Some(Model {
            copy_loss: copy_events as f64 / (shard_secs * p.copies as f64) * YEAR,
            copy_wait_hours: if copy_events > 0 {
                copy_secs / copy_events as f64 / HOUR
            } else {
                0.0
            },
            shard_loss: lambda * YEAR,
            repair_hours: down
                .iter()
                .map(|&b| if b > 0.0 { 1.0 / b / HOUR } else { 0.0 })
                .collect(),
            measured_up_to,
            annual_loss: markov::expected_losses(1.0, YEAR, mttdl),
        })
    }

    /// Nines of annual durability the model gives.
    pub fn nines(&self) -> f64 {
        -self.annual_loss.log10()
    }
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`.
pub fn at_least(n: usize, k: usize, p: f64) -> f64 {
    if k > n {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // Summing the upper tail itself keeps the digits of tails far below 1.
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut tail = 0.0;
    for j in 0..=n {
        if j >= k {
            tail += pmf;
        }
        pmf *= (n - j) as f64 / (j + 1) as f64 * p / (1.0 - p);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail() {
        assert!((at_least(2, 1, 0.5) - 0.75).abs() < 1e-12);
        assert!((at_least(3, 3, 0.5) - 0.125).abs() < 1e-12);
        assert_eq!(at_least(2, 3, 0.9), 0.0);
        assert_eq!(at_least(4, 2, 1.0), 1.0);
    }
}
