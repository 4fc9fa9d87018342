//! The `[scoring]` section of the tracker configuration: windows, the audit reputation's
//! parameters, vetting, tier thresholds and the weights of the score.

use serde::{Deserialize, Serialize};

/// How node scores, tiers and reasons are computed (BEP RT-0003, "Scoring and tiers").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Seconds of history behind the uptime figure (extended back to the UTC midnight before,
    /// and clipped to the node's age).
    pub window_secs: i64,
    /// Seconds after a node was last seen that still count as online: the records credit a
    /// silence at the announce that ends it, up to the node's re-announce interval plus grace;
    /// set this to `announce.node_interval_secs + announce.grace_secs`.
    pub online_allowance_secs: i64,
    /// Seconds counted as "recent" for failed and timed-out audits in the reasons.
    pub recent_secs: i64,
    /// Seconds of audit, transfer and per-day uptime history kept; older rows are pruned.
    pub history_secs: i64,
    /// Forgetting factor λ of the audit reputation, in (0, 1]: each audit first multiplies α and
    /// β by λ, so an audit `n` audits ago weighs λ^n.
    pub audit_lambda: f64,
    /// Weight of a passed or failed audit.
    pub audit_weight: f64,
    /// Weight of a timed-out audit, added to β only (a timeout is a milder failure).
    pub timeout_weight: f64,
    /// α before any audit.
    pub initial_alpha: f64,
    /// β before any audit.
    pub initial_beta: f64,
    /// Audits (of any outcome) needed before the reputation can suspend or disqualify a node.
    pub min_audits: u32,
    /// A node is disqualified (for good, until an operator requalifies it) when its audit
    /// integrity (the reputation counting failed audits only, not timeouts) falls below this.
    pub disqualify_below: f64,
    /// A node is suspended while its audit reputation is below this.
    pub suspend_reputation_below: f64,
    /// A vetted node (or one older than the vetting period) is suspended while its uptime over
    /// the window is below this.
    pub suspend_uptime_below: f64,
    /// A node is suspended while its transfer success (EWMA) is below this.
    pub suspend_transfers_below: f64,
    /// Transfers needed before the transfer success can suspend a node.
    pub min_transfers: u32,
    /// Smoothing factor of the transfer success and speed EWMAs, in (0, 1]: the newest transfer
    /// weighs this much.
    pub transfer_alpha: f64,
    /// Seconds since a node was first seen before it can be vetted.
    pub vetting_secs: i64,
    /// Passed audits needed before a node can be vetted.
    pub vetting_audits: u32,
    /// Vetted nodes that are neither suspended nor disqualified are tier high at or above this
    /// score, tier low below it.
    pub high_at_least: f64,
    /// Transfer speed (bytes/s) that earns the full speed component.
    pub good_speed_bps: f64,
    /// Hours of the day whose availability is below this are named in the reasons.
    pub poor_hour_below: f64,
    /// Weights of the score's components (uptime, audits, transfers, speed).
    pub weights: ScoreWeights,
}

/// Weights of the score's components; they need not sum to 1 (the score divides by their sum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreWeights {
    /// Uptime over the window.
    pub uptime: f64,
    /// Audit reputation.
    pub audits: f64,
    /// Transfer success EWMA.
    pub transfers: f64,
    /// Transfer speed EWMA relative to `good_speed_bps` (left out while there is no speed).
    pub speed: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            uptime: 0.4,
            audits: 0.35,
            transfers: 0.15,
            speed: 0.1,
        }
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            window_secs: 7 * 86_400,
            online_allowance_secs: 7200 + 300,
            recent_secs: 86_400,
            history_secs: 30 * 86_400,
            audit_lambda: 0.98,
            audit_weight: 1.0,
            timeout_weight: 0.5,
            initial_alpha: 1.0,
            initial_beta: 0.0,
            min_audits: 20,
            disqualify_below: 0.75,
            suspend_reputation_below: 0.9,
            suspend_uptime_below: 0.6,
            suspend_transfers_below: 0.5,
            min_transfers: 5,
            transfer_alpha: 0.1,
            vetting_secs: 3 * 86_400,
            vetting_audits: 10,
            high_at_least: 0.9,
            good_speed_bps: 1_048_576.0,
            poor_hour_below: 0.5,
            weights: ScoreWeights::default(),
        }
    }
}

impl ScoringConfig {
    /// Checks every field; the message names the field (as `scoring.<field>`) and the rule.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("window_secs", self.window_secs),
            ("recent_secs", self.recent_secs),
            ("history_secs", self.history_secs),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(format!("scoring.{name} must be at least 1"));
            }
        }
        if self.history_secs < self.window_secs || self.history_secs < self.recent_secs {
            return Err(format!(
                "scoring.history_secs ({}) must cover scoring.window_secs ({}) and scoring.recent_secs ({})",
                self.history_secs, self.window_secs, self.recent_secs
            ));
        }
        if self.vetting_secs < 0 || self.online_allowance_secs < 0 {
            return Err(
                "scoring.vetting_secs and scoring.online_allowance_secs must not be negative"
                    .into(),
            );
        }
        let unit_open = [
            ("audit_lambda", self.audit_lambda),
            ("transfer_alpha", self.transfer_alpha),
        ];
        for (name, v) in unit_open {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("scoring.{name} must be in (0, 1], not {v}"));
            }
        }
        let ratios = [
            ("disqualify_below", self.disqualify_below),
            ("suspend_reputation_below", self.suspend_reputation_below),
            ("suspend_uptime_below", self.suspend_uptime_below),
            ("suspend_transfers_below", self.suspend_transfers_below),
            ("high_at_least", self.high_at_least),
            ("poor_hour_below", self.poor_hour_below),
        ];
        for (name, v) in ratios {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("scoring.{name} must be in [0, 1], not {v}"));
            }
        }
        if self.disqualify_below > self.suspend_reputation_below {
            return Err(format!(
                "scoring.disqualify_below ({}) must not exceed scoring.suspend_reputation_below ({})",
                self.disqualify_below, self.suspend_reputation_below
            ));
        }
        let non_negative = [
            ("audit_weight", self.audit_weight),
            ("timeout_weight", self.timeout_weight),
            ("initial_alpha", self.initial_alpha),
            ("initial_beta", self.initial_beta),
            ("weights.uptime", self.weights.uptime),
            ("weights.audits", self.weights.audits),
            ("weights.transfers", self.weights.transfers),
            ("weights.speed", self.weights.speed),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("scoring.{name} must be a number >= 0, not {v}"));
            }
        }
        if self.audit_weight == 0.0 {
            return Err("scoring.audit_weight must be above 0".into());
        }
        if self.initial_alpha + self.initial_beta == 0.0 {
            return Err("scoring.initial_alpha + scoring.initial_beta must be above 0".into());
        }
        let w = &self.weights;
        if w.uptime + w.audits + w.transfers == 0.0 {
            return Err("scoring.weights: uptime, audits and transfers must not all be 0".into());
        }
        if !(self.good_speed_bps.is_finite() && self.good_speed_bps > 0.0) {
            return Err("scoring.good_speed_bps must be above 0".into());
        }
        Ok(())
    }
}
