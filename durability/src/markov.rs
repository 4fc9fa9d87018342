//! Birth-death Markov chain for the mean time to data loss (MTTDL), to check the simulator on
//! the cases it covers: independent exponential failures and exponential repairs.
//!
//! State `i` counts missing shards of an object (`n = k + m` shards); from `i` a shard fails at
//! rate `(n - i) λ`, one is repaired at rate `μ` (one repair at a time per object, as the
//! planner emits one task per shard to rebuild and the pass plans an object again only when its
//! tasks are done) or `i μ` (every missing shard repaired in parallel); `m + 1` loses the object.

/// How repairs of one object's missing shards proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repairs {
    /// One at a time: rate `μ` in every state.
    Serial,
    /// All at once: rate `i μ` in state `i`.
    Parallel,
}

/// Mean time from no missing shard to loss, in the unit of `1 / lambda`.
///
/// With `T_i` the mean time to loss from state `i` and `D_i = T_i - T_{i+1}`:
/// `D_0 = 1 / a_0`, `D_i = (1 + b_i D_{i-1}) / a_i`, `T_0 = Σ D_i`, where `a_i = (n - i) λ` and
/// `b_i` the repair rate in state `i`.
pub fn mttdl(n: usize, m: usize, lambda: f64, mu: f64, repairs: Repairs) -> f64 {
    let up: Vec<f64> = (0..=m).map(|i| (n - i) as f64 * lambda).collect();
    let down: Vec<f64> = (0..=m)
        .map(|i| match repairs {
            Repairs::Serial if i > 0 => mu,
            Repairs::Parallel => i as f64 * mu,
            _ => 0.0,
        })
        .collect();
    mttdl_rates(&up, &down)
}

/// Mean time from state 0 to state `up.len()` of a birth-death chain that leaves state `i` up
/// at rate `up[i]` and down at `down[i]` (`down[0]` unused), in the unit of the rates'
/// inverse. The recurrence of [`mttdl`].
pub fn mttdl_rates(up: &[f64], down: &[f64]) -> f64 {
    let mut d_prev = 0.0;
    let mut total = 0.0;
    for (i, (&a, &b)) in up.iter().zip(down).enumerate() {
        let b = if i == 0 { 0.0 } else { b };
        let d = (1.0 + b * d_prev) / a;
        total += d;
        d_prev = d;
    }
    total
}

/// Expected objects lost out of `objects` over `t`, losses being (nearly) exponential with
/// mean `mttdl`.
pub fn expected_losses(objects: f64, t: f64, mttdl: f64) -> f64 {
    // exp_m1 keeps the digits of shares far below 1e-16.
    objects * -(-t / mttdl).exp_m1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_shard_is_its_lifetime() {
        assert!((mttdl(1, 0, 0.5, 10.0, Repairs::Serial) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn mirror_matches_the_textbook_formula() {
        // Two copies: MTTDL = (3λ + μ) / (2λ²).
        let (l, mu) = (0.01, 1.0);
        let want = (3.0 * l + mu) / (2.0 * l * l);
        assert!((mttdl(2, 1, l, mu, Repairs::Serial) / want - 1.0).abs() < 1e-12);
        assert!((mttdl(2, 1, l, mu, Repairs::Parallel) / want - 1.0).abs() < 1e-12);
    }

    #[test]
    fn parallel_repair_lasts_longer() {
        let s = mttdl(6, 2, 0.01, 1.0, Repairs::Serial);
        let p = mttdl(6, 2, 0.01, 1.0, Repairs::Parallel);
        assert!(p > s);
    }
}
