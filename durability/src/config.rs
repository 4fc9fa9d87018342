//! The simulator's configuration: one TOML file per study (see `presets/`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dist::Lifetime;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse the configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A whole study: the world, the gateway's repair settings and the policies compared.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    pub run: RunConfig,
    pub fleet: FleetConfig,
    #[serde(default)]
    pub outages: OutageConfig,
    #[serde(default)]
    pub corruption: CorruptionConfig,
    pub data: DataConfig,
    pub repair: RepairConfig,
    /// The redundancy policies compared; each runs `run.seeds` times.
    pub policies: Vec<PolicyConfig>,
}

/// How long and how often.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Runs per policy (different seeds).
    pub seeds: u32,
    /// First seed; run `i` uses `seed + i`.
    #[serde(default)]
    pub seed: u64,
    /// Simulated years per run.
    pub years: f64,
    /// Reads sampled each simulated hour for availability.
    #[serde(default = "default_reads")]
    pub reads_per_hour: u32,
    /// Worker threads for runs in parallel (0: one per core).
    #[serde(default)]
    pub threads: usize,
}

fn default_reads() -> u32 {
    2000
}

/// The volunteer nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Nodes at the start; arrivals keep the fleet near this size.
    pub nodes: u32,
    pub zones: u16,
    /// How long a node stays before it leaves for good, taking its disk with it.
    pub lifetime: Lifetime,
    /// Share of each day a node is online, drawn per node uniformly in `[min, max]`.
    pub uptime_min: f64,
    pub uptime_max: f64,
    /// Disk each node donates, GiB.
    pub capacity_gib: f64,
    /// Each node's upload and download rate for repair, Mbit/s.
    pub node_mbps: f64,
}

/// Whole-zone outages.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    /// Outages per zone per year.
    #[serde(default)]
    pub per_zone_year: f64,
    /// Mean length of an outage, hours (exponential).
    #[serde(default)]
    pub mean_hours: f64,
    /// Chance that an outage destroys every node of the zone instead of returning it.
    #[serde(default)]
    pub disaster_p: f64,
}

/// Silent disk corruption, found by audits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptionConfig {
    /// Corruptions per stored copy per year.
    #[serde(default)]
    pub per_copy_year: f64,
    /// Mean days between two audits of one copy (exponential).
    #[serde(default = "default_audit_days")]
    pub audit_days: f64,
}

fn default_audit_days() -> f64 {
    30.0
}

impl Default for CorruptionConfig {
    fn default() -> Self {
        CorruptionConfig {
            per_copy_year: 0.0,
            audit_days: default_audit_days(),
        }
    }
}

/// What is stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Shard copies to store per policy; objects = this / ((k + m) * copies).
    pub shard_copies: u64,
    /// Object size, MiB.
    pub object_mib: f64,
    /// Candidate nodes sampled for each placement (initial fill and the repair planner's pool).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
}

fn default_candidates() -> usize {
    256
}

/// The gateway's health worker, as the simulator runs it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepairConfig {
    /// Hours an offline node's copies still count.
    pub grace_hours: f64,
    /// Minutes between health passes.
    pub pass_minutes: f64,
    /// Whether a pass waits for its tasks before the next one starts (as the gateway does).
    #[serde(default = "yes")]
    pub wait_for_tasks: bool,
    /// Most tasks per pass.
    pub max_tasks: usize,
    /// Most rebalance moves per pass.
    #[serde(default)]
    pub max_moves: usize,
    /// Most dirty objects one pass looks at.
    pub dirty_max: usize,
    /// Days for the background sweep to go over every object.
    pub sweep_days: f64,
    /// Tasks run at once.
    pub concurrency: usize,
    /// The gateway's bandwidth for rebuilds (download of k shards, upload of the new ones), Mbit/s.
    pub gateway_mbps: f64,
    /// When set, every task takes an exponential time of this mean (hours) instead of the
    /// bandwidth model: the calibration case.
    #[serde(default)]
    pub task_hours: Option<f64>,
    /// Days after which the gateway forgets a node that has not come back, and its copies.
    #[serde(default = "default_forget")]
    pub forget_days: f64,
    /// Hours a node that failed a task gets no new copies.
    #[serde(default = "default_backoff")]
    pub backoff_hours: f64,
    /// Whether a node going offline within the grace period (and back) marks its objects, as
    /// the gateway's `objects.health.away_marks`.
    #[serde(default = "yes")]
    pub away_marks: bool,
}

/// Greater than zero (false for NaN).
fn positive(x: f64) -> bool {
    x > 0.0
}

fn yes() -> bool {
    true
}

fn default_forget() -> f64 {
    14.0
}

fn default_backoff() -> f64 {
    1.0
}

/// One redundancy policy.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub k: usize,
    pub m: usize,
    pub copies: usize,
}

impl PolicyConfig {
    /// Stored bytes per user byte.
    pub fn expansion(&self) -> f64 {
        (self.k + self.m) as f64 * self.copies as f64 / self.k as f64
    }

    pub fn name(&self) -> String {
        format!("{}+{}x{}", self.k, self.m, self.copies)
    }
}

impl SimConfig {
    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: SimConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field a run relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        let f = &self.fleet;
        if self.run.seeds == 0 || !positive(self.run.years) {
            return bad("run.seeds and run.years must be positive");
        }
        if f.nodes < 2 || f.nodes > (1 << 28) || f.zones == 0 {
            return bad("fleet.nodes must be in 2..=2^28 and fleet.zones positive");
        }
        if !(0.0 < f.uptime_min && f.uptime_min <= f.uptime_max && f.uptime_max <= 1.0) {
            return bad("fleet.uptime_min and uptime_max must satisfy 0 < min <= max <= 1");
        }
        if !(f.capacity_gib > 0.0 && f.node_mbps > 0.0) {
            return bad("fleet.capacity_gib and fleet.node_mbps must be positive");
        }
        self.fleet
            .lifetime
            .validate()
            .map_err(ConfigError::Invalid)?;
        if self.outages.per_zone_year < 0.0
            || self.outages.mean_hours < 0.0
            || !(0.0..=1.0).contains(&self.outages.disaster_p)
        {
            return bad("outages: rates and hours must be >= 0, disaster_p in 0..=1");
        }
        if self.corruption.per_copy_year < 0.0 || !positive(self.corruption.audit_days) {
            return bad("corruption.per_copy_year must be >= 0 and audit_days positive");
        }
        if self.data.shard_copies == 0
            || !positive(self.data.object_mib)
            || self.data.candidates == 0
        {
            return bad("data.shard_copies, object_mib and candidates must be positive");
        }
        let r = &self.repair;
        if !(r.grace_hours >= 0.0 && r.pass_minutes > 0.0 && r.sweep_days > 0.0) {
            return bad("repair: grace_hours >= 0, pass_minutes and sweep_days > 0");
        }
        if r.max_tasks == 0 || r.dirty_max == 0 || r.concurrency == 0 || !positive(r.gateway_mbps) {
            return bad(
                "repair: max_tasks, dirty_max, concurrency and gateway_mbps must be positive",
            );
        }
        if r.task_hours.is_some_and(|h| !positive(h)) || !positive(r.forget_days) {
            return bad("repair: task_hours and forget_days must be positive");
        }
        if self.policies.is_empty() {
            return bad("at least one [[policies]] entry is needed");
        }
        for p in &self.policies {
            if p.k == 0 || p.copies == 0 || p.k + p.m > 64 || p.copies > 8 {
                return bad("policies: k >= 1, k + m <= 64, copies in 1..=8");
            }
            if (p.k + p.m) as u32 > f.nodes {
                return bad("policies: k + m must not exceed fleet.nodes");
            }
        }
        Ok(())
    }
}
