//! The audit worker: every round it draws a few copies (new and suspicious nodes more often, the
//! copies audited longest ago first; copies a read found suspicious before any), asks their nodes
//! for random pieces over the BitTorrent wire (`crate::audit::probe`), and records the outcome on
//! the copy and in the node's reliability record. A round's audits run one after another, so
//! audit traffic stays a trickle.
//!
//! Outcomes: a piece that does not match its hash fails the copy for good (it never counts or
//! serves again, and the health worker is woken to replace it). A node that says it lacks a shard
//! it confirmed fails the copy too, once it has been connected for `audit_settle` (a restarting
//! node re-checks its files before it serves them). No answer in time is a timeout: it weighs on
//! the node's reputation but leaves the copy counted.

use std::collections::HashMap;
use std::time::Duration;

use raidtorrent_codec::InfoHash;

use super::config::HealthConfig;
use super::nodes::{NodeSnapshot, TransferRecord};
use super::worker::{Worker, WorkerHandle};
use super::{Gateway, GatewayError};
use crate::audit::{pick, pick_pieces, probe, Candidate, Probe};
use crate::metrics::{metrics, Outcome};
use crate::registry::{unix_now, NodeId};
use crate::scoring::{AuditOutcome, TransferKind};

/// Most copies of one node audited in one round.
const PER_NODE: usize = 2;

/// The audit worker.
pub(super) struct Auditor {
    pub gw: Gateway,
    pub cfg: HealthConfig,
    pub round: u64,
}

impl Worker for Auditor {
    fn name(&self) -> &'static str {
        "audits"
    }

    fn between_steps(&self) -> Duration {
        self.cfg.audit_interval
    }

    async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
        self.round += 1;
        self.gw.audit_round(&self.cfg, self.round).await.map(|_| ())
    }
}

impl Gateway {
    /// Marks a copy for an early audit (a read saw its node misbehave).
    pub fn suspect(&self, node: NodeId, info_hash: &InfoHash) {
        let mut s = self.inner.suspects.lock().expect("suspects lock");
        if !s.contains(&(node, *info_hash)) {
            s.push((node, *info_hash));
        }
        drop(s);
        self.inner.workers.audits.wake();
    }

    /// One round; returns how many audits ran.
    pub(super) async fn audit_round(
        &self,
        cfg: &HealthConfig,
        round: u64,
    ) -> Result<usize, GatewayError> {
        let snapshot = self.inner.nodes.snapshot();
        let seed = round ^ (unix_now() as u64).rotate_left(17);
        let mut queue: Vec<(NodeId, InfoHash)> =
            std::mem::take(&mut *self.inner.suspects.lock().expect("suspects lock"));
        queue.extend(self.draw(cfg, &snapshot, seed).await?);
        let mut ran = 0;
        for (n, (node, ih)) in queue.into_iter().enumerate() {
            if !snapshot.auditable(node) {
                continue;
            }
            // One audit's trouble (a shard dropped meanwhile, a database hiccup) ends only that
            // audit, not the round and the suspects queued behind it.
            let seed = seed.wrapping_add(n as u64);
            if let Err(e) = self.audit_one(cfg, &snapshot, node, &ih, seed).await {
                tracing::warn!(node, info_hash = %ih, error = %e, "audit not done");
                continue;
            }
            ran += 1;
        }
        Ok(ran)
    }

    /// The copies this round audits besides the suspects, drawn by the audit schedule.
    async fn draw(
        &self,
        cfg: &HealthConfig,
        snapshot: &NodeSnapshot,
        seed: u64,
    ) -> Result<Vec<(NodeId, InfoHash)>, GatewayError> {
        let cands: Vec<Candidate> = self
            .inner
            .meta
            .audit_candidates()
            .await?
            .into_iter()
            .filter(|c| snapshot.auditable(c.node))
            .map(|c| Candidate {
                node: c.node,
                info_hash: c.info_hash,
                last_audit: c.audited_at,
            })
            .collect();
        let weights: HashMap<NodeId, f64> = snapshot
            .scores()
            .iter()
            .map(|(n, s)| (*n, s.audit_weight()))
            .collect();
        let picked = pick(
            &cands,
            &weights,
            cfg.audits_per_round,
            PER_NODE,
            unix_now(),
            seed,
        );
        Ok(picked
            .into_iter()
            .map(|i| (cands[i].node, cands[i].info_hash))
            .collect())
    }

    async fn audit_one(
        &self,
        cfg: &HealthConfig,
        snapshot: &NodeSnapshot,
        node: NodeId,
        ih: &InfoHash,
        seed: u64,
    ) -> Result<(), GatewayError> {
        let meta = &self.inner.meta;
        // The copy may have been dropped (surplus, orphan) since the round was drawn: auditing it
        // would blame an honest node for a shard it was told to delete.
        if !meta.holds_live(ih, node).await? {
            return Ok(());
        }
        let Some(row) = meta.shard(ih).await? else {
            return Ok(());
        };
        let Some(addr) = snapshot.data_addr(node) else {
            return Ok(());
        };
        let info = row.shard_info()?;
        let pieces = pick_pieces(&info, cfg.audit_pieces, seed);
        let outcome = probe(addr, &info, &pieces, cfg.audit_timeout).await;
        let settled = snapshot.settled(node, cfg.audit_settle);
        self.record_audit(node, ih, &outcome, settled).await
    }

    async fn record_audit(
        &self,
        node: NodeId,
        ih: &InfoHash,
        outcome: &Probe,
        settled: bool,
    ) -> Result<(), GatewayError> {
        let inner = &self.inner;
        let now = unix_now();
        let (result, failed, detail) = match outcome {
            Probe::Pass { bytes, elapsed } => {
                let record = TransferRecord {
                    node,
                    kind: TransferKind::Fetch,
                    info_hash: ih,
                    ok: true,
                    bytes: *bytes,
                    took: *elapsed,
                };
                inner.nodes.record_transfer(record).await;
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
            tracing::warn!(node, info_hash = %ih, detail, "copy failed its audit");
        }
        if !inner.meta.mark_audited(ih, node, failed, now).await? {
            // Dropped while the probe ran: the outcome says nothing about a copy it still owes.
            return Ok(());
        }
        inner
            .nodes
            .record_audit(node, ih, result, &detail, now)
            .await?;
        metrics()
            .audits
            .get_or_create(&Outcome {
                result: result.as_str(),
            })
            .inc();
        if failed {
            self.wake_health();
        }
        Ok(())
    }
}
