//! The simulator against the birth-death Markov chain, on the case the chain describes
//! (`presets/calibration.toml`: exponential lifetimes, always online, one copy, exponential
//! repair times).

use raidtorrent_durability::config::SimConfig;
use raidtorrent_durability::{report, runner};

fn preset() -> SimConfig {
    SimConfig::parse(include_str!("../presets/calibration.toml")).expect("preset parses")
}

#[test]
fn losses_agree_with_the_markov_chain() {
    // The preset as it is: one year, four seeds (deterministic; about 15 s in the dev profile).
    let cfg = preset();
    let runs = runner::run_all(&cfg, false);
    let s = &report::summarize(&cfg, &runs)[0];
    let markov = s.markov.expect("the preset suits the chain");
    assert!(s.lost > 100, "too few losses to compare: {}", s.lost);
    assert!(
        (s.pooled_lo..=s.pooled_hi).contains(&markov),
        "Markov {markov:.4e} outside the simulated 95% interval {:.4e}..{:.4e}",
        s.pooled_lo,
        s.pooled_hi
    );
    let ratio = s.pooled / markov;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "simulated/Markov = {ratio:.3}"
    );
    // The model the frontier extrapolates with: the same chain, fed the run's own measured
    // loss rate and repair waits instead of the preset's.
    let model = s.model.as_ref().expect("repairs were seen");
    assert_eq!(model.measured_up_to, 2, "every state measured");
    assert!(
        (s.pooled_lo..=s.pooled_hi).contains(&model.annual_loss),
        "model {:.4e} outside the simulated 95% interval {:.4e}..{:.4e}",
        model.annual_loss,
        s.pooled_lo,
        s.pooled_hi
    );
}

#[test]
fn nodes_that_never_leave_lose_nothing() {
    let mut cfg = preset();
    cfg.run.years = 0.2;
    cfg.run.seeds = 1;
    cfg.fleet.lifetime = raidtorrent_durability::dist::Lifetime::Exponential { mean_days: 1e9 };
    let runs = runner::run_all(&cfg, false);
    assert_eq!(runs[0].lost, 0);
    assert_eq!(runs[0].tasks, 0, "nothing to repair");
    assert_eq!(runs[0].availability(), 1.0);
}
