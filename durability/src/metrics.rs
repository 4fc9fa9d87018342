//! What one run measures.

use crate::config::PolicyConfig;
use crate::dist::{DAY, YEAR};
use crate::tally::Tally;
use crate::tasks::Tasks;

/// One daily row of the time series.
#[derive(Debug, Clone)]
pub struct Row {
    pub day: f64,
    pub alive: u64,
    pub online: usize,
    pub lost: u64,
    pub dirty: usize,
    pub tasks_in_flight: usize,
    pub repair_bytes: u64,
    pub reads: u64,
    pub reads_ok: u64,
}

/// Counters of one run, and the figures derived from them at the end.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    pub policy: PolicyConfig,
    pub seed: u64,
    pub objects: usize,
    pub shard_len: u64,
    pub alive: u64,
    pub deaths: u64,
    pub zone_outages: u64,
    pub corruptions: u64,
    pub audit_failures: u64,
    pub lost: u64,
    pub lost_bytes: u64,
    pub reads: u64,
    pub reads_ok: u64,
    pub repair_bytes: u64,
    pub tasks: u64,
    pub tasks_failed: u64,
    pub passes: u64,
    pub planned: u64,
    pub peak_dirty: usize,
    pub peak_tasks: usize,
    pub peak_task_bytes: u64,
    pub fill_shortfall: u64,
    pub fill_failed: u64,
    pub node_secs: f64,
    pub years: f64,
    pub wall_secs: f64,
    pub rows: Vec<Row>,
    /// How long copies and shards stayed missing (see [`Tally`]).
    pub tally: Tally,
    day_reads: (u64, u64),
    day_bytes: u64,
}

impl RunMetrics {
    pub fn new(policy: PolicyConfig, seed: u64, objects: usize, shard_len: u64) -> Self {
        RunMetrics {
            policy,
            seed,
            objects,
            shard_len,
            alive: 0,
            deaths: 0,
            zone_outages: 0,
            corruptions: 0,
            audit_failures: 0,
            lost: 0,
            lost_bytes: 0,
            reads: 0,
            reads_ok: 0,
            repair_bytes: 0,
            tasks: 0,
            tasks_failed: 0,
            passes: 0,
            planned: 0,
            peak_dirty: 0,
            peak_tasks: 0,
            peak_task_bytes: 0,
            fill_shortfall: 0,
            fill_failed: 0,
            node_secs: 0.0,
            years: 0.0,
            wall_secs: 0.0,
            rows: Vec::new(),
            tally: Tally::default(),
            day_reads: (0, 0),
            day_bytes: 0,
        }
    }

    pub fn lose(&mut self, bytes: u64, _now: u64) {
        self.lost += 1;
        self.lost_bytes += bytes;
    }

    pub fn read(&mut self, ok: bool) {
        self.reads += 1;
        self.reads_ok += u64::from(ok);
        self.day_reads.0 += 1;
        self.day_reads.1 += u64::from(ok);
    }

    pub fn task_started(&mut self, bytes: u64, in_flight: usize, in_flight_bytes: u64) {
        self.tasks += 1;
        self.repair_bytes += bytes;
        self.day_bytes += bytes;
        self.peak_tasks = self.peak_tasks.max(in_flight);
        self.peak_task_bytes = self.peak_task_bytes.max(in_flight_bytes);
    }

    pub fn row(&mut self, now: u64, online: usize, tasks: &Tasks, dirty: usize) {
        let (reads, reads_ok) = std::mem::take(&mut self.day_reads);
        self.rows.push(Row {
            day: now as f64 / DAY,
            alive: self.alive,
            online,
            lost: self.lost,
            dirty,
            tasks_in_flight: tasks.in_flight,
            repair_bytes: std::mem::take(&mut self.day_bytes),
            reads,
            reads_ok,
        });
    }

    pub fn finish(&mut self, horizon: u64, wall_secs: f64) {
        self.years = horizon as f64 / YEAR;
        self.wall_secs = wall_secs;
    }

    /// Share of the objects lost per year.
    pub fn annual_loss(&self) -> f64 {
        self.lost as f64 / self.objects as f64 / self.years
    }

    pub fn availability(&self) -> f64 {
        if self.reads == 0 {
            return f64::NAN;
        }
        self.reads_ok as f64 / self.reads as f64
    }

    /// Bytes stored on disks (every copy of every shard).
    pub fn stored_bytes(&self) -> f64 {
        let p = self.policy;
        self.objects as f64 * ((p.k + p.m) * p.copies) as f64 * self.shard_len as f64
    }

    /// Repair bytes moved per stored byte per month (30 days).
    pub fn repair_per_month(&self) -> f64 {
        let months = self.years * 365.0 / 30.0;
        self.repair_bytes as f64 / self.stored_bytes() / months
    }

    pub fn node_days(&self) -> f64 {
        self.node_secs / DAY
    }
}
