//! Runs every (policy, seed) pair, in parallel, with a progress line on stderr.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rayon::prelude::*;

use crate::config::SimConfig;
use crate::dist::{DAY, YEAR};
use crate::metrics::RunMetrics;
use crate::sim::Sim;

/// Runs every policy `run.seeds` times. Run `i` of each policy uses seed `run.seed + i`, so a
/// policy's runs see the same seeds whatever else is configured.
pub fn run_all(cfg: &SimConfig, progress: bool) -> Vec<RunMetrics> {
    let jobs: Vec<_> = cfg
        .policies
        .iter()
        .flat_map(|&p| (0..cfg.run.seeds).map(move |i| (p, cfg.run.seed + u64::from(i))))
        .collect();
    let horizon = cfg.run.years * YEAR;
    let total = horizon * jobs.len() as f64;
    let simulated = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.run.threads)
        .build()
        .ok();
    std::thread::scope(|scope| {
        if progress {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let done = simulated.load(Ordering::Relaxed) as f64;
                    let runs = finished.load(Ordering::Relaxed);
                    eprint!(
                        "\r{:5.1}%  runs {runs}/{}  simulated {:.0} of {:.0} run-days   ",
                        100.0 * done / total,
                        jobs.len(),
                        done / DAY,
                        total / DAY
                    );
                    let _ = std::io::stderr().flush();
                    std::thread::sleep(Duration::from_millis(500));
                }
                eprintln!();
            });
        }
        let one = |&(p, seed): &(crate::config::PolicyConfig, u64)| {
            let mut sim = Sim::new(cfg, p, seed);
            let mut last = 0;
            sim.run(|now| {
                simulated.fetch_add(now - last, Ordering::Relaxed);
                last = now;
            });
            finished.fetch_add(1, Ordering::Relaxed);
            sim.metrics
        };
        let out = match &pool {
            Some(pool) => pool.install(|| jobs.par_iter().map(one).collect()),
            None => jobs.iter().map(one).collect(),
        };
        stop.store(true, Ordering::Relaxed);
        out
    })
}
