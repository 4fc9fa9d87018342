//! Every node's [`NodeFacts`] kept in memory and brought up to date as records are written, so
//! scoring the fleet costs one [`score`] per node and no database reads: the work of keeping it
//! grows with the records written, not with the history held.
//!
//! Pure: the registry loads the book once from the database and applies each batch of records
//! after it commits them (`crate::registry`); the rules of what counts (the uptime window, the
//! history horizon, the transfers an EWMA still weighs) are the same as the database queries'.
//!
//! Invariant: for the same records, [`FactsBook::score_all`] gives the scores the registry
//! computes from the database (checked in the registry's tests).

use super::{
    disqualify_reason, score, AuditEvent, Disqualification, NodeFacts, NodeTier, Score,
    ScoringConfig, TransferEvent,
};
use crate::ids::NodeId;
use std::collections::HashMap;

/// Online time a batch of records adds to one node.
#[derive(Clone, Debug, Default)]
pub struct SeenDelta {
    /// The node's first sighting, if this batch saw it first.
    pub first_seen: Option<i64>,
    pub last_seen: i64,
    /// Online seconds per UTC hour of day.
    pub hours: [i64; 24],
    /// Online seconds per UTC day.
    pub days: Vec<(i64, i64)>,
}

/// The facts of every node the registry knows, as of the records applied so far.
#[derive(Clone, Debug, Default)]
pub struct FactsBook {
    facts: HashMap<NodeId, NodeFacts>,
    /// When per-day records began (`record_starts`), for nodes first seen after the load.
    days_since: i64,
    /// How many of a node's latest transfers are kept (the rest no longer move its EWMAs).
    keep_transfers: usize,
}

/// Scores of a whole fleet, and the nodes that just crossed into disqualification (with the
/// reason to record).
pub type Scored = (HashMap<NodeId, Score>, Vec<(NodeId, String)>);

impl FactsBook {
    /// A book holding `facts`, as the database gave them.
    pub fn new(facts: HashMap<NodeId, NodeFacts>, days_since: i64, keep_transfers: usize) -> Self {
        FactsBook {
            facts,
            days_since,
            keep_transfers,
        }
    }

    fn node(&mut self, node: NodeId) -> &mut NodeFacts {
        self.facts.entry(node).or_default()
    }

    /// Online time recorded for `node` (the recorder's batch).
    pub fn seen(&mut self, node: NodeId, d: &SeenDelta) {
        let since = self.days_since;
        let f = self.node(node);
        if f.first_seen.is_none() {
            f.first_seen = Some(d.first_seen.unwrap_or(d.last_seen));
            f.days_recorded_since = since;
        }
        f.last_seen = Some(f.last_seen.map_or(d.last_seen, |l| l.max(d.last_seen)));
        for (h, secs) in f.hours_online.iter_mut().zip(d.hours) {
            *h += secs;
        }
        for &(day, secs) in &d.days {
            match f.online_days.iter_mut().find(|(d, _)| *d == day) {
                Some((_, s)) => *s += secs,
                None => f.online_days.push((day, secs)),
            }
        }
    }

    /// One transfer to or from `node`.
    pub fn transfer(&mut self, node: NodeId, t: TransferEvent) {
        let keep = self.keep_transfers.max(1);
        let ts = &mut self.node(node).transfers;
        let at = ts.partition_point(|o| o.at <= t.at);
        ts.insert(at, t);
        if ts.len() > keep {
            ts.drain(..ts.len() - keep);
        }
    }

    /// One audit of `node`.
    pub fn audit(&mut self, node: NodeId, a: AuditEvent) {
        let f = self.node(node);
        let at = f.audits.partition_point(|o| o.at <= a.at);
        f.audits.insert(at, a);
        f.audits_passed_total += u64::from(a.outcome == super::AuditOutcome::Pass);
    }

    /// `node` was requalified: its audit history starts afresh.
    pub fn requalify(&mut self, node: NodeId) {
        let f = self.node(node);
        f.audits.clear();
        f.audits_passed_total = 0;
        f.disqualified = None;
    }

    /// Drops what fell out of the uptime window and the history horizon at `now`.
    pub fn prune(&mut self, now: i64, cfg: &ScoringConfig) {
        let from_day = (now - cfg.window_secs).div_euclid(86_400);
        let horizon = now - cfg.history_secs;
        for f in self.facts.values_mut() {
            f.online_days.retain(|(day, _)| *day >= from_day);
            f.audits.retain(|a| a.at >= horizon);
            f.transfers.retain(|t| t.at >= horizon);
        }
    }

    /// Forgets the nodes not in `nodes` (those the registry no longer lists).
    pub fn keep_only(&mut self, nodes: &[NodeId]) {
        let listed: std::collections::HashSet<NodeId> = nodes.iter().copied().collect();
        self.facts.retain(|id, _| listed.contains(id));
    }

    /// Scores the nodes in `nodes` at `now`, and marks those that reach disqualification as
    /// disqualified.
    pub fn score_all(&mut self, nodes: &[NodeId], now: i64, cfg: &ScoringConfig) -> Scored {
        let (mut scores, mut newly) = (HashMap::with_capacity(nodes.len()), Vec::new());
        for &id in nodes {
            let f = self.node(id);
            let mut s = match recorded_after(f, now) {
                Some(past) => score(&past, now, cfg),
                None => score(f, now, cfg),
            };
            if s.tier == NodeTier::Disqualified && f.disqualified.is_none() {
                let reason = disqualify_reason(s.audit_integrity, s.audits, cfg.disqualify_below);
                f.disqualified = Some(Disqualification {
                    at: now,
                    reason: reason.clone(),
                });
                s.disqualified_at = Some(now);
                newly.push((id, reason));
            }
            scores.insert(id, s);
        }
        (scores, newly)
    }
}

/// `f` without its events later than `now`, if it has any (the records' queries leave them
/// out too: a score is as of its time).
fn recorded_after(f: &NodeFacts, now: i64) -> Option<NodeFacts> {
    let late_audit = f.audits.last().is_some_and(|a| a.at > now);
    let late_transfer = f.transfers.last().is_some_and(|t| t.at > now);
    if !late_audit && !late_transfer {
        return None;
    }
    let mut past = f.clone();
    past.audits.retain(|a| a.at <= now);
    past.transfers.retain(|t| t.at <= now);
    Some(past)
}

/// How many of a node's latest transfers decide its EWMAs to within 0.001: the rest weigh
/// `(1 - a)^n` together.
pub fn transfers_that_matter(alpha: f64) -> i64 {
    if alpha >= 1.0 {
        return 1;
    }
    let n = (0.001f64.ln() / (1.0 - alpha).ln()).ceil();
    if n.is_finite() {
        (n as i64).clamp(1, 100_000)
    } else {
        100_000
    }
}
