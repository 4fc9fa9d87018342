//! CSV output: one row per run, one per policy, and the daily time series.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{PolicyConfig, SimConfig};
use crate::dist::{Lifetime, HOUR, YEAR};
use crate::markov::{self, Repairs};
use crate::metrics::RunMetrics;
use crate::model::Model;
use crate::stats::{mean_ci, poisson_ci};

/// Why results could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    path: String,
    source: std::io::Error,
}

/// One policy's figures over its runs.
#[derive(Debug, Clone)]
pub struct Summary {
    pub policy: PolicyConfig,
    pub runs: usize,
    pub lost: u64,
    pub object_years: f64,
    pub loss_mean: f64,
    pub loss_ci: f64,
    /// Pooled annual loss rate and its Garwood 95% interval.
    pub pooled: f64,
    pub pooled_lo: f64,
    pub pooled_hi: f64,
    pub availability: f64,
    pub availability_ci: f64,
    pub repair_per_month: f64,
    pub peak_dirty: usize,
    pub peak_tasks: usize,
    pub peak_task_bytes: u64,
    pub markov: Option<f64>,
    /// The durability model fed with these runs' measurements.
    pub model: Option<Model>,
    pub node_days_per_sec: f64,
}

impl Summary {
    /// Nines of annual durability from the pooled rate; with no loss, from the interval's
    /// upper bound (a lower bound on the nines).
    pub fn nines(&self) -> f64 {
        let rate = if self.lost == 0 {
            self.pooled_hi
        } else {
            self.pooled
        };
        -rate.log10()
    }
}

/// The Markov chain's annual loss share, for configurations it describes: exponential
/// lifetimes, nodes always online, no outages or corruption, exponential task times, one copy.
pub fn markov_prediction(cfg: &SimConfig, p: PolicyConfig) -> Option<f64> {
    let Lifetime::Exponential { .. } = cfg.fleet.lifetime else {
        return None;
    };
    let plain = cfg.fleet.uptime_min >= 1.0
        && cfg.outages.per_zone_year == 0.0
        && cfg.corruption.per_copy_year == 0.0
        && p.copies == 1;
    let task = cfg.repair.task_hours?;
    if !plain {
        return None;
    }
    let lambda = 1.0 / cfg.fleet.lifetime.mean_secs();
    // A lost shard waits out the grace period, then on average half a pass, then its task.
    let repair = task * HOUR + cfg.repair.grace_hours * HOUR + cfg.repair.pass_minutes * 30.0;
    let t = markov::mttdl(p.k + p.m, p.m, lambda, 1.0 / repair, Repairs::Serial);
    let years = cfg.run.years;
    Some(markov::expected_losses(1.0, years * YEAR, t) / years)
}

/// Groups runs by policy, in the configuration's order.
pub fn summarize(cfg: &SimConfig, runs: &[RunMetrics]) -> Vec<Summary> {
    cfg.policies
        .iter()
        .map(|&p| {
            let rs: Vec<&RunMetrics> = runs.iter().filter(|r| r.policy == p).collect();
            summary_of(cfg, p, &rs)
        })
        .collect()
}

fn summary_of(cfg: &SimConfig, p: PolicyConfig, rs: &[&RunMetrics]) -> Summary {
    let losses: Vec<f64> = rs.iter().map(|r| r.annual_loss()).collect();
    let avail: Vec<f64> = rs.iter().map(|r| r.availability()).collect();
    let (loss_mean, loss_ci) = mean_ci(&losses);
    let (availability, availability_ci) = mean_ci(&avail);
    let lost: u64 = rs.iter().map(|r| r.lost).sum();
    let object_years: f64 = rs.iter().map(|r| r.objects as f64 * r.years).sum();
    let (lo, hi) = poisson_ci(lost);
    let wall: f64 = rs.iter().map(|r| r.wall_secs).sum();
    let node_days: f64 = rs.iter().map(|r| r.node_days()).sum();
    Summary {
        policy: p,
        runs: rs.len(),
        lost,
        object_years,
        loss_mean,
        loss_ci,
        pooled: lost as f64 / object_years,
        pooled_lo: lo / object_years,
        pooled_hi: hi / object_years,
        availability,
        availability_ci,
        repair_per_month: rs.iter().map(|r| r.repair_per_month()).sum::<f64>() / rs.len() as f64,
        peak_dirty: rs.iter().map(|r| r.peak_dirty).max().unwrap_or(0),
        peak_tasks: rs.iter().map(|r| r.peak_tasks).max().unwrap_or(0),
        peak_task_bytes: rs.iter().map(|r| r.peak_task_bytes).max().unwrap_or(0),
        markov: markov_prediction(cfg, p),
        model: Model::of(p, (cfg.fleet.uptime_min + cfg.fleet.uptime_max) / 2.0, rs),
        node_days_per_sec: if wall > 0.0 { node_days / wall } else { 0.0 },
    }
}

pub fn runs_csv(runs: &[RunMetrics]) -> String {
    let mut s = String::from(
        "policy,k,m,copies,expansion,seed,years,objects,lost_objects,lost_bytes,annual_loss,\
         availability,repair_bytes,repair_per_stored_byte_month,tasks,tasks_failed,passes,\
         objects_planned,peak_dirty,peak_tasks,peak_task_bytes,deaths,zone_outages,corruptions,\
         audit_failures,fill_shortfall,node_days,wall_secs\n",
    );
    for r in runs {
        let p = r.policy;
        let _ = writeln!(
            s,
            "{},{},{},{},{:.3},{},{:.4},{},{},{},{:.6e},{:.8},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.2}",
            p.name(), p.k, p.m, p.copies, p.expansion(), r.seed, r.years, r.objects, r.lost,
            r.lost_bytes, r.annual_loss(), r.availability(), r.repair_bytes, r.repair_per_month(),
            r.tasks, r.tasks_failed, r.passes, r.planned, r.peak_dirty, r.peak_tasks,
            r.peak_task_bytes, r.deaths, r.zone_outages, r.corruptions, r.audit_failures,
            r.fill_shortfall, r.node_days(), r.wall_secs
        );
    }
    s
}

pub fn summary_csv(sums: &[Summary]) -> String {
    let mut s = String::from(
        "policy,k,m,copies,expansion,runs,object_years,lost_objects,annual_loss_mean,\
         annual_loss_ci95,annual_loss_pooled,annual_loss_lo95,annual_loss_hi95,nines,\
         availability,availability_ci95,repair_per_stored_byte_month,peak_dirty,peak_tasks,\
         peak_task_bytes,markov_annual_loss,node_days_per_sec,copy_loss_per_year,\
         copy_wait_hours,shard_loss_per_year,repair_hours_by_state,measured_up_to,\
         model_annual_loss,model_nines\n",
    );
    for m in sums {
        let p = m.policy;
        let markov = m.markov.map(|v| format!("{v:.6e}")).unwrap_or_default();
        let model = m
            .model
            .as_ref()
            .map(model_columns)
            .unwrap_or_else(|| ",,,,,,".into());
        let _ = writeln!(
            s,
            "{},{},{},{},{:.3},{},{:.1},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.2},{:.8},{:.8},{:.6},{},{},{},{},{:.0},{}",
            p.name(), p.k, p.m, p.copies, p.expansion(), m.runs, m.object_years, m.lost,
            m.loss_mean, m.loss_ci, m.pooled, m.pooled_lo, m.pooled_hi, m.nines(),
            m.availability, m.availability_ci, m.repair_per_month, m.peak_dirty, m.peak_tasks,
            m.peak_task_bytes, markov, m.node_days_per_sec, model
        );
    }
    s
}

fn model_columns(m: &Model) -> String {
    let hours: Vec<String> = m.repair_hours[1..]
        .iter()
        .map(|h| format!("{h:.2}"))
        .collect();
    format!(
        "{:.6e},{:.3},{:.6e},{},{},{:.6e},{:.2}",
        m.copy_loss,
        m.copy_wait_hours,
        m.shard_loss,
        hours.join(";"),
        m.measured_up_to,
        m.annual_loss,
        m.nines()
    )
}

pub fn timeseries_csv(runs: &[RunMetrics]) -> String {
    let mut s = String::from(
        "policy,seed,day,alive_nodes,online_nodes,lost_objects,dirty,tasks_in_flight,\
         repair_bytes_day,repair_per_stored_byte_day,reads,reads_ok\n",
    );
    for r in runs {
        let stored = r.stored_bytes();
        for row in &r.rows {
            let _ = writeln!(
                s,
                "{},{},{:.3},{},{},{},{},{},{},{:.6e},{},{}",
                r.policy.name(),
                r.seed,
                row.day,
                row.alive,
                row.online,
                row.lost,
                row.dirty,
                row.tasks_in_flight,
                row.repair_bytes,
                row.repair_bytes as f64 / stored,
                row.reads,
                row.reads_ok
            );
        }
    }
    s
}

/// Writes `runs.csv`, `summary.csv` and `timeseries.csv` into `dir`.
pub fn write_all(dir: &Path, runs: &[RunMetrics], sums: &[Summary]) -> Result<(), WriteError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| WriteError {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(dir).map_err(|source| WriteError {
        path: dir.display().to_string(),
        source,
    })?;
    write("runs.csv", runs_csv(runs))?;
    write("summary.csv", summary_csv(sums))?;
    write("timeseries.csv", timeseries_csv(runs))
}
