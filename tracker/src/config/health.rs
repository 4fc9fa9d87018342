//! The `[objects.health]` section: how the gateway audits copies and repairs, rebalances and trims
//! them (see `crate::repair` and the health and audit workers in `crate::gateway`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gateway::HealthConfig;
use crate::repair::PlanConfig;
use crate::scoring::ScoringConfig;

/// Settings of the health and audit workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Milliseconds between passes of the health worker (scores, plan, repair).
    pub interval_ms: u64,
    /// Seconds a disconnected node's copies still count; past it they are re-replicated.
    pub grace_secs: u64,
    /// Repair tasks running at once.
    pub concurrency: usize,
    /// Repair traffic budget in bytes per second; 0 for no limit.
    pub bandwidth_bytes_per_sec: u64,
    /// Most tasks (copies, rebuilds, drops) planned per pass.
    pub max_tasks: usize,
    /// Most rebalance moves planned per pass.
    pub max_moves: usize,
    /// Share of a node's capacity above which copies move off it (0.5 to 1).
    pub quota_high_water: f64,
    /// Nodes drawn as candidates when placing a repaired or moved copy (0: every node).
    pub placement_candidates: usize,
    /// Seconds a node is left out of plans after a failed directive; doubles per failure.
    pub backoff_base_secs: u64,
    /// Longest back-off, in seconds.
    pub backoff_max_secs: u64,
    /// Milliseconds between audit rounds.
    pub audit_interval_ms: u64,
    /// Copies audited per round.
    pub audits_per_round: usize,
    /// Random pieces asked for per audit.
    pub audit_pieces: usize,
    /// Seconds an audit may take.
    pub audit_timeout_secs: u64,
    /// Seconds a node must have been connected before a shard it says it lacks fails its audit.
    pub audit_settle_secs: u64,
    /// Seconds between computations of every node's score (0: every pass); a node registered,
    /// revoked or requalified, or an audit not passed, has them computed at the next pass.
    pub scores_secs: u64,
    /// Most objects marked by changes that one pass looks at.
    pub dirty_max: usize,
    /// Seconds in which the background sweep looks at every stored object once.
    pub sweep_secs: u64,
    /// Fewest objects the sweep looks at per pass (a cloud this small is swept every pass).
    pub sweep_min_objects: usize,
    /// Whether a node going offline within `grace_secs` (and coming back) has its objects looked
    /// at: exact health figures for away copies. A large fleet of volunteers who go offline
    /// daily sets false, so that only crossing the grace period costs a look.
    pub away_marks: bool,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection::from(&HealthConfig::default())
    }
}

impl From<&HealthConfig> for HealthSection {
    fn from(c: &HealthConfig) -> Self {
        HealthSection {
            interval_ms: c.interval.as_millis() as u64,
            grace_secs: c.plan.grace_secs,
            concurrency: c.concurrency,
            bandwidth_bytes_per_sec: c.bandwidth,
            max_tasks: c.plan.max_tasks,
            max_moves: c.plan.max_moves,
            quota_high_water: c.plan.quota_high_water,
            placement_candidates: c.plan.candidates,
            backoff_base_secs: c.backoff_base.as_secs(),
            backoff_max_secs: c.backoff_max.as_secs(),
            audit_interval_ms: c.audit_interval.as_millis() as u64,
            audits_per_round: c.audits_per_round,
            audit_pieces: c.audit_pieces,
            audit_timeout_secs: c.audit_timeout.as_secs(),
            audit_settle_secs: c.audit_settle.as_secs(),
            scores_secs: c.scores_every.as_secs(),
            dirty_max: c.dirty_max,
            sweep_secs: c.sweep_period.as_secs(),
            sweep_min_objects: c.sweep_min,
            away_marks: c.away_marks,
        }
    }
}

impl HealthSection {
    /// Checks every field; the message names it.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_one = [
            ("interval_ms", self.interval_ms),
            ("concurrency", self.concurrency as u64),
            ("max_tasks", self.max_tasks as u64),
            ("audit_interval_ms", self.audit_interval_ms),
            ("audit_pieces", self.audit_pieces as u64),
            ("audit_timeout_secs", self.audit_timeout_secs),
            ("backoff_base_secs", self.backoff_base_secs),
            ("dirty_max", self.dirty_max as u64),
            ("sweep_secs", self.sweep_secs),
        ];
        for (name, v) in at_least_one {
            if v == 0 {
                return Err(format!("objects.health.{name} must be at least 1"));
            }
        }
        if !(0.5..=1.0).contains(&self.quota_high_water) {
            return Err("objects.health.quota_high_water must be between 0.5 and 1".into());
        }
        if self.backoff_max_secs < self.backoff_base_secs {
            return Err(
                "objects.health.backoff_max_secs must be at least backoff_base_secs".into(),
            );
        }
        Ok(())
    }

    /// The workers' settings, with the node scoring of the `[scoring]` section.
    pub fn to_config(&self, scoring: &ScoringConfig) -> HealthConfig {
        HealthConfig {
            interval: Duration::from_millis(self.interval_ms),
            plan: PlanConfig {
                grace_secs: self.grace_secs,
                quota_high_water: self.quota_high_water,
                max_tasks: self.max_tasks,
                max_moves: self.max_moves,
                candidates: self.placement_candidates,
            },
            concurrency: self.concurrency,
            bandwidth: self.bandwidth_bytes_per_sec,
            backoff_base: Duration::from_secs(self.backoff_base_secs),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            audit_interval: Duration::from_millis(self.audit_interval_ms),
            audits_per_round: self.audits_per_round,
            audit_pieces: self.audit_pieces,
            audit_timeout: Duration::from_secs(self.audit_timeout_secs),
            audit_settle: Duration::from_secs(self.audit_settle_secs),
            scoring: scoring.clone(),
            scores_every: Duration::from_secs(self.scores_secs),
            dirty_max: self.dirty_max,
            sweep_period: Duration::from_secs(self.sweep_secs),
            sweep_min: self.sweep_min_objects,
            away_marks: self.away_marks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips() {
        let d = HealthSection::default();
        d.validate().unwrap();
        let text = toml::to_string(&d).unwrap();
        assert_eq!(toml::from_str::<HealthSection>(&text).unwrap(), d);
        let c = d.to_config(&ScoringConfig::default());
        assert_eq!(c, HealthConfig::default());
        assert_eq!(HealthSection::from(&c), d);
    }

    #[test]
    fn validate_names_the_field() {
        let check = |edit: fn(&mut HealthSection), needle: &str| {
            let mut c = HealthSection::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(needle), "{e} should mention {needle}");
        };
        check(|c| c.concurrency = 0, "objects.health.concurrency");
        check(|c| c.quota_high_water = 1.5, "quota_high_water");
        check(|c| c.backoff_max_secs = 1, "backoff_max_secs");
        check(|c| c.audit_interval_ms = 0, "audit_interval_ms");
        assert!(toml::from_str::<HealthSection>("grace = 3").is_err());
    }
}
