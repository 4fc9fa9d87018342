//! Node scoring: reliability score, tier and the reasons behind them, from what the gateway records of each node.
//!
//! Pure and synchronous: [`score`] takes a snapshot of one node's records ([`NodeFacts`]), the
//! time and the configuration, and returns a [`Score`]. The registry
//! (`crate::registry::events`) gathers the facts from SQLite and persists disqualifications; the
//! rules themselves are normative in `bep-spec/bep-rt-0003-node-reliability.md`, section
//! "Scoring and tiers".
//!
//! ```
//! use raidtorrent_tracker::scoring::{score, AuditEvent, AuditOutcome, NodeFacts, NodeTier, ScoringConfig};
//! let cfg = ScoringConfig::default();
//! let now = 30 * 86_400;
//! let facts = NodeFacts {
//!     first_seen: Some(0),
//!     online_days: (0..30).map(|d| (d, 86_400)).collect(),
//!     hours_online: [30 * 3600; 24],
//!     audits: (0..20).map(|i| AuditEvent { at: i * 3600, outcome: AuditOutcome::Pass }).collect(),
//!     audits_passed_total: 20,
//!     ..NodeFacts::default()
//! };
//! let s = score(&facts, now, &cfg);
//! assert_eq!(s.tier, NodeTier::High);
//! assert!(s.reasons.is_empty());
//! ```
//!
//! Invariants: `value`, `uptime`, `audit_reputation` and `transfer_success` are in `0..=1`; a
//! node that is not vetted is never `High`; a node whose facts say it was disqualified is
//! `Disqualified` whatever its other figures.

pub mod book;
mod config;
pub mod hours;
mod reasons;

pub use config::{ScoreWeights, ScoringConfig};

use hours::hour_exposure;
use reasons::{fmt_duration, fmt_speed, offline_hours, percent, Reasons};
use serde::Serialize;

/// A node's standing, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeTier {
    /// Vetted, reliable: may hold the copies a bucket asks to be on high-reliability nodes.
    High,
    /// New, or below the high threshold: holds ordinary copies.
    Low,
    /// Gets no new shards until its figures recover; its copies count as at risk.
    Suspended,
    /// Failed its audits: gets nothing, its copies are replaced. Sticky until an operator
    /// requalifies it.
    Disqualified,
}

/// What one audit found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Pass,
    Fail,
    Timeout,
}

impl AuditOutcome {
    /// The name stored in the database and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Pass => "pass",
            AuditOutcome::Fail => "fail",
            AuditOutcome::Timeout => "timeout",
        }
    }

    /// The inverse of [`AuditOutcome::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(AuditOutcome::Pass),
            "fail" => Some(AuditOutcome::Fail),
            "timeout" => Some(AuditOutcome::Timeout),
            _ => None,
        }
    }
}

/// Why a shard moved to or from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferKind {
    /// The node fetched a shard it was told to hold.
    Hold,
    /// The gateway fetched a shard from the node for a read.
    Fetch,
    /// The node fetched a shard for a repair.
    Repair,
}

impl TransferKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Hold => "hold",
            TransferKind::Fetch => "fetch",
            TransferKind::Repair => "repair",
        }
    }
}

/// One audit of the node, as scoring needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    pub outcome: AuditOutcome,
}

/// One transfer to or from the node, as scoring needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferEvent {
    /// Unix seconds.
    pub at: i64,
    pub ok: bool,
    pub bytes: u64,
    pub millis: u64,
}

/// A recorded disqualification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disqualification {
    /// Unix seconds.
    pub at: i64,
    pub reason: String,
}

/// Everything scoring looks at for one node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    /// Unix seconds of the node's first announce (its age starts here); `None` if never seen.
    pub first_seen: Option<i64>,
    /// Unix seconds of its latest announce or liveness report.
    pub last_seen: Option<i64>,
    /// Online seconds per UTC day (`unix / 86400`), any order; days outside the window are ignored.
    pub online_days: Vec<(i64, i64)>,
    /// Unix seconds when per-day records began (0 if always): the uptime window never starts
    /// before it.
    pub days_recorded_since: i64,
    /// Online seconds per UTC hour of day since first seen.
    pub hours_online: [i64; 24],
    /// Audits since the node was (re)qualified, oldest first.
    pub audits: Vec<AuditEvent>,
    /// Passed audits since the node was (re)qualified, including those pruned from `audits`.
    pub audits_passed_total: u64,
    /// Transfers, oldest first.
    pub transfers: Vec<TransferEvent>,
    /// Set when the node has been disqualified (sticky).
    pub disqualified: Option<Disqualification>,
}

/// A node's score, tier and the reasons for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    /// Weighted combination of the components, 0..=1 (0 when disqualified).
    #[serde(rename = "score")]
    pub value: f64,
    pub tier: NodeTier,
    pub vetted: bool,
    /// Online share over the window (clipped to the node's age).
    #[serde(rename = "uptime_window")]
    pub uptime: f64,
    /// α / (α + β) of the audit reputation (timeouts included).
    pub audit_reputation: f64,
    /// α / (α + β) counting failed audits only (what disqualification looks at).
    pub audit_integrity: f64,
    /// EWMA of transfer outcomes; 1.0 with no history.
    pub transfer_success: f64,
    /// EWMA of successful transfers' speed in bytes/s; `None` with no successful transfer.
    pub speed_bps: Option<f64>,
    /// Human sentences, worst first.
    pub reasons: Vec<String>,
    /// Audits the reputation is built from (since (re)qualification, within the history).
    pub audits: u32,
    /// Passed audits since (re)qualification.
    pub audits_passed: u64,
    /// Failed audits within `recent_secs`.
    pub recent_failed_audits: u32,
    /// Timed-out audits within `recent_secs`.
    pub recent_timed_out_audits: u32,
    /// Seconds since first seen (0 if never seen).
    pub age_secs: i64,
    /// When the node was disqualified, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disqualified_at: Option<i64>,
    /// UTC hours of the day (0-23) at which the node is online less than `poor_hour_below` of the
    /// time; empty until two days of history exist. Repair keeps an object's shards from relying
    /// only on nodes that are poor at the hours the object is read.
    pub poor_hours: Vec<u8>,
}

impl Score {
    /// [`Score::poor_hours`] as a bit set (bit `h` for hour `h`).
    pub fn poor_hours_mask(&self) -> u32 {
        self.poor_hours.iter().fold(0, |m, &h| m | 1 << h)
    }
}

/// Most weight [`Score::audit_weight`] gives a node.
pub const MAX_AUDIT_WEIGHT: f64 = 16.0;

impl Score {
    /// How much more often than a settled good node this node should be audited (>= 1.0): new
    /// (unvetted) and suspicious (recent failures, low reputation) nodes weigh more.
    ///
    /// `1 + 3·[unvetted] + 10·(1 − reputation) + 2·recent fails + 1·recent timeouts`, at most
    /// [`MAX_AUDIT_WEIGHT`]. A disqualified node weighs 1.0 (callers need not audit it at all).
    pub fn audit_weight(&self) -> f64 {
        if self.tier == NodeTier::Disqualified {
            return 1.0;
        }
        let mut w = 1.0;
        if !self.vetted {
            w += 3.0;
        }
        w += 10.0 * (1.0 - self.audit_reputation).clamp(0.0, 1.0);
        w += 2.0 * f64::from(self.recent_failed_audits);
        w += f64::from(self.recent_timed_out_audits);
        w.min(MAX_AUDIT_WEIGHT)
    }
}

/// The audit reputation of a sequence of audits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reputation {
    /// α / (α + β), timeouts included with their lighter weight: the reputation shown, scored
    /// and suspended on.
    pub value: f64,
    pub alpha: f64,
    pub beta: f64,
    /// α / (α + β_fail), β counting failed audits only: what disqualification looks at, so a node
    /// that is often unreachable is suspended, never disqualified, for it.
    pub integrity: f64,
}

/// The audit reputation over `audits` (oldest first).
pub fn audit_reputation(audits: &[AuditEvent], cfg: &ScoringConfig) -> Reputation {
    let (mut alpha, mut beta, mut beta_fail) =
        (cfg.initial_alpha, cfg.initial_beta, cfg.initial_beta);
    for a in audits {
        alpha *= cfg.audit_lambda;
        beta *= cfg.audit_lambda;
        beta_fail *= cfg.audit_lambda;
        match a.outcome {
            AuditOutcome::Pass => alpha += cfg.audit_weight,
            AuditOutcome::Fail => {
                beta += cfg.audit_weight;
                beta_fail += cfg.audit_weight;
            }
            AuditOutcome::Timeout => beta += cfg.timeout_weight,
        }
    }
    let ratio = |a: f64, b: f64| {
        if a + b > 0.0 {
            (a / (a + b)).clamp(0.0, 1.0)
        } else {
            1.0
        }
    };
    Reputation {
        value: ratio(alpha, beta),
        alpha,
        beta,
        integrity: ratio(alpha, beta_fail),
    }
}

/// Transfer success EWMA (1.0 with no history) and speed EWMA of successful transfers.
pub fn transfer_ewma(transfers: &[TransferEvent], cfg: &ScoringConfig) -> (f64, Option<f64>) {
    let a = cfg.transfer_alpha;
    let mut success = 1.0;
    let mut speed: Option<f64> = None;
    for t in transfers {
        success = (1.0 - a) * success + a * if t.ok { 1.0 } else { 0.0 };
        if t.ok && t.bytes > 0 {
            let bps = t.bytes as f64 * 1000.0 / t.millis.max(1) as f64;
            speed = Some(speed.map_or(bps, |s| (1.0 - a) * s + a * bps));
        }
    }
    (success, speed)
}

/// Start of the UTC day holding `unix`.
fn day_start(unix: i64) -> i64 {
    unix.div_euclid(86_400) * 86_400
}

/// Uptime over the window and the seconds it covers: the window starts at the UTC midnight at
/// or before `now - window_secs`, or at first seen (or when per-day records began) if later.
/// Online time is what the records credit in those days, plus the time since the node was last
/// seen up to `online_allowance_secs`.
pub fn window_uptime(facts: &NodeFacts, now: i64, cfg: &ScoringConfig) -> (f64, i64) {
    let Some(first) = facts.first_seen else {
        return (0.0, 0);
    };
    let start = first
        .max(facts.days_recorded_since)
        .max(day_start(now - cfg.window_secs));
    let span = now - start;
    if span <= 0 {
        return (1.0, 0);
    }
    let (from_day, to_day) = (start.div_euclid(86_400), now.div_euclid(86_400));
    let recorded: i64 = facts
        .online_days
        .iter()
        .filter(|(d, _)| (from_day..=to_day).contains(d))
        .map(|(_, s)| *s)
        .sum();
    // The records credit a gap at the announce that ends it; the stretch since the latest one
    // counts as online up to the allowance, as the next announce would credit it.
    let open = facts.last_seen.map_or(0, |last| {
        (now - last.max(start)).clamp(0, cfg.online_allowance_secs)
    });
    let online = recorded + open;
    ((online as f64 / span as f64).clamp(0.0, 1.0), span)
}

/// Share of each UTC hour of day the node was online since first seen.
pub fn hourly_availability(facts: &NodeFacts, now: i64) -> [f64; 24] {
    let mut out = [0.0; 24];
    let Some(first) = facts.first_seen else {
        return out;
    };
    for (h, slot) in out.iter_mut().enumerate() {
        let exposure = hour_exposure(first, now, h).max(1);
        *slot = (facts.hours_online[h] as f64 / exposure as f64).min(1.0);
    }
    out
}

/// Scores one node. Pure: `now` is Unix seconds.
pub fn score(facts: &NodeFacts, now: i64, cfg: &ScoringConfig) -> Score {
    let mut reasons = Reasons::default();
    let age = facts.first_seen.map_or(0, |f| (now - f).max(0));
    let (uptime, span) = window_uptime(facts, now, cfg);
    let rep = audit_reputation(&facts.audits, cfg);
    let (reputation, integrity) = (rep.value, rep.integrity);
    let audits = u32::try_from(facts.audits.len()).unwrap_or(u32::MAX);
    let recent = |o: AuditOutcome| {
        let n = facts
            .audits
            .iter()
            .filter(|a| a.outcome == o && now - a.at <= cfg.recent_secs)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let (recent_failed, recent_timeouts) =
        (recent(AuditOutcome::Fail), recent(AuditOutcome::Timeout));
    let (transfer_success, speed_bps) = transfer_ewma(&facts.transfers, cfg);
    let transfers = facts.transfers.len();
    let vetted =
        age >= cfg.vetting_secs && facts.audits_passed_total >= u64::from(cfg.vetting_audits);

    let w = &cfg.weights;
    let speed_factor = speed_bps.map(|s| (s / cfg.good_speed_bps).min(1.0));
    let mut weighted = w.uptime * uptime + w.audits * reputation + w.transfers * transfer_success;
    let mut total = w.uptime + w.audits + w.transfers;
    if let Some(f) = speed_factor {
        weighted += w.speed * f;
        total += w.speed;
    }
    let mut value = (weighted / total).clamp(0.0, 1.0);

    let enough_audits = audits >= cfg.min_audits;
    let past_vetting_time = age >= cfg.vetting_secs;
    let window_text = fmt_duration(span.min(cfg.window_secs));
    let tier = if let Some(d) = &facts.disqualified {
        reasons.push(1000.0, format!("disqualified: {}", d.reason));
        NodeTier::Disqualified
    } else if enough_audits && integrity < cfg.disqualify_below {
        reasons.push(
            1000.0,
            format!(
                "disqualified: {}",
                disqualify_reason(integrity, audits, cfg.disqualify_below)
            ),
        );
        NodeTier::Disqualified
    } else {
        let mut suspended = false;
        if enough_audits && reputation < cfg.suspend_reputation_below {
            suspended = true;
            reasons.push(
                500.0 + (1.0 - reputation),
                format!(
                    "suspended: audit reputation {reputation:.2} after {audits} audits (suspended below {:.2})",
                    cfg.suspend_reputation_below
                ),
            );
        }
        if past_vetting_time && uptime < cfg.suspend_uptime_below {
            suspended = true;
            reasons.push(
                500.0 + (1.0 - uptime),
                format!(
                    "suspended: uptime {} over {window_text} (suspended below {})",
                    percent(uptime),
                    percent(cfg.suspend_uptime_below)
                ),
            );
        }
        if transfers >= cfg.min_transfers as usize && transfer_success < cfg.suspend_transfers_below
        {
            suspended = true;
            reasons.push(
                500.0 + (1.0 - transfer_success),
                format!(
                    "suspended: transfers: {} succeeded recently (suspended below {})",
                    percent(transfer_success),
                    percent(cfg.suspend_transfers_below)
                ),
            );
        }
        if suspended {
            NodeTier::Suspended
        } else if !vetted || value < cfg.high_at_least {
            NodeTier::Low
        } else {
            NodeTier::High
        }
    };
    if tier == NodeTier::Disqualified {
        value = 0.0;
    }

    // Component reasons: what pulls the score down, even when it does not change the tier.
    if facts.first_seen.is_none() {
        reasons.push(400.0, "never seen online".into());
    } else if uptime < 0.95 && !(past_vetting_time && uptime < cfg.suspend_uptime_below) {
        reasons.push(
            100.0 + (1.0 - uptime) * 100.0,
            format!("uptime {} over {window_text}", percent(uptime)),
        );
    }
    if recent_failed > 0 {
        reasons.push(
            300.0 + f64::from(recent_failed),
            format!(
                "{recent_failed} failed audit{} in the last {}",
                if recent_failed == 1 { "" } else { "s" },
                fmt_duration(cfg.recent_secs)
            ),
        );
    }
    if recent_timeouts > 0 {
        reasons.push(
            200.0 + f64::from(recent_timeouts),
            format!(
                "{recent_timeouts} audit{} timed out in the last {}",
                if recent_timeouts == 1 { "" } else { "s" },
                fmt_duration(cfg.recent_secs)
            ),
        );
    }
    if tier != NodeTier::Disqualified
        && !(enough_audits && reputation < cfg.suspend_reputation_below)
        && reputation < 0.95
        && audits > 0
    {
        reasons.push(
            150.0 + (1.0 - reputation) * 100.0,
            format!("audit reputation {reputation:.2} after {audits} audits"),
        );
    }
    if !vetted {
        reasons.push(
            50.0,
            format!(
                "new node: {} of {} audits passed, {} of {} vetting",
                facts.audits_passed_total.min(u64::from(cfg.vetting_audits)),
                cfg.vetting_audits,
                fmt_duration(age.min(cfg.vetting_secs)),
                fmt_duration(cfg.vetting_secs)
            ),
        );
    }
    if transfers > 0
        && transfer_success < 0.9
        && !(transfers >= cfg.min_transfers as usize
            && transfer_success < cfg.suspend_transfers_below)
    {
        reasons.push(
            100.0 + (1.0 - transfer_success) * 100.0,
            format!(
                "transfers: {} succeeded recently",
                percent(transfer_success)
            ),
        );
    }
    if let Some(s) = speed_bps.filter(|s| *s < cfg.good_speed_bps / 2.0) {
        reasons.push(
            20.0,
            format!(
                "slow transfers: {} (full marks from {})",
                fmt_speed(s),
                fmt_speed(cfg.good_speed_bps)
            ),
        );
    }
    if tier == NodeTier::Low && vetted {
        reasons.push(
            10.0,
            format!(
                "score {value:.2} is below {:.2} for tier high",
                cfg.high_at_least
            ),
        );
    }
    let mut poor_hours = Vec::new();
    if age >= 2 * 86_400 {
        let hourly = hourly_availability(facts, now);
        poor_hours = (0..24u8)
            .filter(|&h| hourly[usize::from(h)] < cfg.poor_hour_below)
            .collect();
        for (text, mean) in offline_hours(&hourly, cfg.poor_hour_below) {
            reasons.push(
                60.0 + (1.0 - mean) * 10.0,
                format!("often offline at {text} UTC"),
            );
        }
    }
    Score {
        value,
        tier,
        vetted,
        uptime,
        audit_reputation: reputation,
        audit_integrity: integrity,
        transfer_success,
        speed_bps,
        reasons: reasons.into_sorted(),
        audits,
        audits_passed: facts.audits_passed_total,
        recent_failed_audits: recent_failed,
        recent_timed_out_audits: recent_timeouts,
        age_secs: age,
        disqualified_at: facts.disqualified.as_ref().map(|d| d.at),
        poor_hours,
    }
}

/// The sentence stored with a new disqualification.
pub fn disqualify_reason(integrity: f64, audits: u32, threshold: f64) -> String {
    format!(
        "failed audits: integrity {integrity:.2} after {audits} audits (threshold {threshold:.2})"
    )
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
