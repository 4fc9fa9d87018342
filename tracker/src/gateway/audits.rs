//! The audit worker: every round it draws a few copies (new and suspicious nodes more often, the
//! copies audited longest ago first; copies a read found suspicious before any), asks their nodes
//! for random pieces over the BitTorrent wire (`crate::audit::probe`), and records the outcome on
//! the copy and in the node's reliability record.
//!
//! States: idle (waiting for its interval, or a suspect) → busy (one round, its audits one after
//! another, so audit traffic stays a trickle) → idle; done once shut down.
//!
//! Outcomes: a piece that does not match its hash fails the copy for good (it never counts or
//! serves again, and the health worker is woken to replace it). A node that says it lacks a shard
//! it confirmed fails the copy too, once it has been connected for `audit_settle` (a restarting
//! node re-checks its files before it serves them). No answer in time is a timeout: it weighs on
//! the node's reputation but leaves the copy counted.

use std::collections::HashMap;

use raidtorrent_codec::InfoHash;

use super::health::HealthConfig;
use super::Gateway;
use crate::audit::{pick, pick_pieces, probe, Candidate, Probe};
use crate::registry::{unix_now, NodeId};
use crate::scoring::{AuditOutcome, NodeTier, TransferKind};

/// Most copies of one node audited in one round.
const PER_NODE: usize = 2;

impl Gateway {
    /// Marks a copy for an early audit (a read saw its node misbehave).
    pub fn suspect(&self, node: NodeId, info_hash: &str) {
        let mut s = self.inner.suspects.lock().expect("suspects lock");
        if !s.iter().any(|(n, ih)| *n == node && ih == info_hash) {
            s.push((node, info_hash.to_owned()));
        }
        drop(s);
        self.inner.audit_wake.notify_one();
    }

    /// Runs audit rounds until `shutdown` resolves.
    pub async fn run_audits(
        &self,
        cfg: HealthConfig,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.audit_wake.notified() => {}
                _ = tokio::time::sleep(cfg.audit_interval) => {}
            }
            round += 1;
            let result = tokio::select! {
                _ = &mut shutdown => return,
                r = self.audit_round(&cfg, round) => r,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "audit round failed");
            }
        }
    }

    /// One round; returns how many audits ran.
    pub(super) async fn audit_round(
        &self,
        cfg: &HealthConfig,
        round: u64,
    ) -> Result<usize, super::GatewayError> {
        let inner = &self.inner;
        let now = unix_now();
        let connected: HashMap<NodeId, _> = inner
            .hub
            .connected()
            .into_iter()
            .filter(|c| c.data_addr.is_some())
            .map(|c| (c.node, c))
            .collect();
        let scores = self.scores();
        let mut queue: Vec<(NodeId, String)> =
            std::mem::take(&mut *inner.suspects.lock().expect("suspects lock"));
        let cands: Vec<Candidate> = inner
            .meta
            .audit_candidates()
            .await?
            .into_iter()
            .filter(|c| connected.contains_key(&c.node))
            .filter(|c| {
                scores
                    .get(&c.node)
                    .map_or(true, |s| s.tier != NodeTier::Disqualified)
            })
            .filter_map(|c| {
                Some(Candidate {
                    node: c.node,
                    info_hash: InfoHash::from_hex(&c.info_hash)?,
                    last_audit: c.audited_at,
                })
            })
            .collect();
        let weights: HashMap<i64, f64> =
            scores.iter().map(|(n, s)| (*n, s.audit_weight())).collect();
        let seed = round ^ (now as u64).rotate_left(17);
        for i in pick(&cands, &weights, cfg.audits_per_round, PER_NODE, now, seed) {
            let c = &cands[i];
            queue.push((c.node, c.info_hash.to_hex()));
        }
        let mut ran = 0;
        for (n, (node, ih)) in queue.into_iter().enumerate() {
            let Some(conn) = connected.get(&node) else {
                continue;
            };
            if scores
                .get(&node)
                .is_some_and(|s| s.tier == NodeTier::Disqualified)
            {
                continue;
            }
            // One audit's trouble (a shard dropped meanwhile, a database hiccup) ends only that
            // audit, not the round and the suspects queued behind it.
            if let Err(e) = self
                .audit_one(cfg, node, conn, &ih, seed.wrapping_add(n as u64))
                .await
            {
                tracing::warn!(node, info_hash = ih, error = %e, "audit not done");
                continue;
            }
            ran += 1;
        }
        Ok(ran)
    }

    async fn audit_one(
        &self,
        cfg: &HealthConfig,
        node: NodeId,
        conn: &crate::control::ConnectedNode,
        ih: &str,
        seed: u64,
    ) -> Result<(), super::GatewayError> {
        let inner = &self.inner;
        // The copy may have been dropped (surplus, orphan) since the round was drawn: auditing it
        // would blame an honest node for a shard it was told to delete.
        if !inner.meta.holds_live(ih, node).await? {
            return Ok(());
        }
        let Some(row) = inner.meta.shard(ih).await? else {
            return Ok(());
        };
        let info = row.shard_info()?;
        let pieces = pick_pieces(&info, cfg.audit_pieces, seed);
        let Some(addr) = conn.data_addr else {
            return Ok(());
        };
        let outcome = probe(addr, &info, &pieces, cfg.audit_timeout).await;
        let settled = conn
            .connected_since
            .elapsed()
            .is_ok_and(|d| d >= cfg.audit_settle);
        self.record_audit(node, ih, &outcome, settled).await
    }

    async fn record_audit(
        &self,
        node: NodeId,
        ih: &str,
        outcome: &Probe,
        settled: bool,
    ) -> Result<(), super::GatewayError> {
        let inner = &self.inner;
        let now = unix_now();
        let (result, failed, detail) = match outcome {
            Probe::Pass { bytes, elapsed } => {
                self.record_transfer(node, TransferKind::Fetch, ih, true, *bytes, *elapsed)
                    .await;
                (AuditOutcome::Pass, false, String::new())
            }
            Probe::Fail { piece, reason } => {
                (AuditOutcome::Fail, true, format!("piece {piece}: {reason}"))
            }
            Probe::Missing { reason } if settled => (AuditOutcome::Fail, true, reason.clone()),
            Probe::Missing { reason } | Probe::Unreachable { reason } => {
                (AuditOutcome::Timeout, false, reason.clone())
            }
            Probe::Timeout { stage } => (
                AuditOutcome::Timeout,
                false,
                format!("no answer at {stage}"),
            ),
        };
        if failed {
            tracing::warn!(node, info_hash = ih, detail, "copy failed its audit");
        }
        if !inner.meta.mark_audited(ih, node, failed, now).await? {
            // Dropped while the probe ran: the outcome says nothing about a copy it still owes.
            return Ok(());
        }
        inner
            .registry
            .record_audit(node, ih, result, &detail, now)
            .await
            .map_err(|e| super::GatewayError::Internal(format!("recording an audit: {e}")))?;
        if failed {
            self.wake_health();
        }
        Ok(())
    }
}
