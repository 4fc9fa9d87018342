//! A small world end to end: the fill places every object, churn causes repairs, and runs are
//! deterministic from their seed.

use raidtorrent_durability::config::SimConfig;
use raidtorrent_durability::sim::Sim;

fn small() -> SimConfig {
    let text = include_str!("../presets/calibration.toml");
    let mut cfg = SimConfig::parse(text).expect("preset parses");
    cfg.run.years = 0.1;
    cfg
}

#[test]
fn fill_places_every_copy() {
    let cfg = small();
    let sim = Sim::new(&cfg, cfg.policies[0], 7);
    let st = &sim.world.store;
    assert_eq!(sim.metrics.fill_shortfall, 0);
    assert!(
        st.intact.iter().all(|&i| i as usize == st.n),
        "{:?}",
        &st.intact[..10]
    );
    assert!(st.lost.iter().all(|l| !l));
}

#[test]
fn a_run_is_deterministic_from_its_seed() {
    let mut cfg = small();
    cfg.run.years = 0.05;
    let run = |seed| {
        let mut sim = Sim::new(&cfg, cfg.policies[0], seed);
        sim.run(|_| {});
        let m = sim.metrics;
        (m.lost, m.tasks, m.repair_bytes, m.reads_ok, m.deaths)
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    assert!(run(3).1 > 0, "churn causes repairs");
}

#[test]
fn quick_and_default_presets_are_valid() {
    for text in [
        include_str!("../presets/quick.toml"),
        include_str!("../presets/default.toml"),
    ] {
        SimConfig::parse(text).expect("preset is valid");
    }
}

#[test]
fn bad_configurations_are_refused() {
    let text = include_str!("../presets/calibration.toml");
    let bad = text.replace("uptime_min = 1.0", "uptime_min = 0.0");
    assert!(SimConfig::parse(&bad).is_err());
    let unknown = format!("{text}\n[extra]\nx = 1\n");
    assert!(SimConfig::parse(&unknown).is_err());
}
