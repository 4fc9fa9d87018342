//! The collector: shards no object references (deleted or replaced objects, failed or
//! interrupted uploads) are dropped from every node that holds them, then forgotten. A node that
//! is offline keeps its holding until a later pass finds it connected.
//!
//! Dropping is final, so an orphan must stay an orphan after a power loss. It does: the collector
//! reads through the database's readers, which see a commit only once it is on disk (the writer
//! commits with `synchronous = FULL`, `registry::db`), so the DELETE or overwrite that orphaned
//! a shard can no longer roll back by the time its copies are dropped.
//!
//! It also drops the copies nobody tracks: those of holds that ended without their copy
//! recorded (queued by `copies`), and those settled nodes report that the gateway neither
//! records nor is placing (`reconcile`), such as the copies of an upload a crash cut short;
//! and it abandons the uploads of other gateways on the same database that are gone
//! (`meta::gateways`), so they are collected too.

use std::time::Duration;

use super::in_flight::CopyOf;
use super::meta::Abandon;
use super::reconcile::{self, NodeReport, Tracked};
use super::worker::{Worker, WorkerHandle};
use super::{Gateway, GatewayError};
use crate::registry::unix_now;

/// Orphans looked at per pass.
const BATCH: u32 = 256;

/// The collector.
pub(super) struct Collector {
    pub gw: Gateway,
    pub interval: Duration,
}

impl Worker for Collector {
    fn name(&self) -> &'static str {
        "collector"
    }

    fn between_steps(&self) -> Duration {
        self.interval
    }

    /// Another gateway collects: the copies of this gateway's failed holds are not queued for
    /// later (the holder's reconciliation drops them as untracked once their upload ended).
    async fn standby(&mut self) -> Result<(), GatewayError> {
        self.gw.inner.copies.take_unrecorded();
        Ok(())
    }

    async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
        take_over_gone_uploads(&self.gw).await?;
        let expired = self.gw.expire_uploads().await?;
        if expired > 0 {
            tracing::info!(expired, "unfinished multipart uploads expired");
        }
        let dropped = pass(&self.gw).await?;
        if dropped > 0 {
            tracing::info!(dropped, "orphan copies dropped from nodes");
        }
        let dropped = drop_untracked(&self.gw).await?;
        if dropped > 0 {
            tracing::info!(dropped, "untracked copies dropped from nodes");
        }
        Ok(())
    }
}

/// Abandons the uploads of gateways that share the database and went silent (killed, cut
/// off) for a lease: their pending shards and loose parts become orphans, which
/// this pass and the next collect.
async fn take_over_gone_uploads(gw: &Gateway) -> Result<(), GatewayError> {
    let inner = &gw.inner;
    let gone = Abandon::Gone {
        alive_since: super::term::gone_before(unix_now(), inner.config.lease),
    };
    let shards = inner.meta.abandon_pending(gone).await?;
    let parts = inner.meta.drop_loose_parts(gone).await?;
    if shards + parts > 0 {
        tracing::warn!(
            shards,
            parts,
            "uploads of a gateway that is gone will be collected"
        );
    }
    Ok(())
}

/// Drops the copies of failed holds, then up to [`BATCH`] untracked copies nodes report;
/// returns how many drops the nodes confirmed.
async fn drop_untracked(gw: &Gateway) -> Result<usize, GatewayError> {
    let copies = &gw.inner.copies;
    let mut untracked = copies.take_unrecorded();
    untracked.extend(reported_untracked(gw).await?);
    untracked.sort_unstable();
    untracked.dedup();
    let mut dropped = 0;
    for copy in untracked {
        match copies.drop_untracked(copy).await {
            Ok(sent) => dropped += usize::from(sent),
            Err(e) => {
                let (ih, node) = copy;
                tracing::info!(node, %ih, error = %e, "untracked copy not dropped; retrying later")
            }
        }
    }
    Ok(dropped)
}

/// The copies settled nodes report that the gateway does not track. Read in the order
/// `reconcile` needs: the reports, then the holds in flight, then the pending shards, then the
/// recorded holdings.
async fn reported_untracked(gw: &Gateway) -> Result<Vec<CopyOf>, GatewayError> {
    let inner = &gw.inner;
    let reported = inner.nodes.snapshot().reported_copies();
    let in_flight = inner.copies.holds_in_flight();
    let nodes: Vec<_> = reported.iter().map(|(node, ..)| *node).collect();
    let pending = inner.meta.pending_shards().await?;
    let recorded = inner.meta.recorded_on(&nodes).await?;
    let reports: Vec<NodeReport> = reported
        .iter()
        .map(|(node, connected_for, ihs)| NodeReport {
            node: *node,
            connected_for: *connected_for,
            reported: ihs,
        })
        .collect();
    let tracked = Tracked {
        recorded: &recorded,
        in_flight: &in_flight,
        pending: &pending,
    };
    let mut untracked = reconcile::untracked(&reports, tracked, inner.config.reconcile_settle);
    untracked.truncate(BATCH as usize);
    Ok(untracked)
}

/// One pass: returns how many copies were dropped.
async fn pass(gw: &Gateway) -> Result<usize, GatewayError> {
    let inner = &gw.inner;
    let snapshot = inner.nodes.snapshot();
    let mut dropped = 0;
    for (ih, holders) in inner.meta.orphans(BATCH).await? {
        for node in holders {
            if snapshot.connected(node).is_none() {
                continue;
            }
            match inner.copies.drop(node, &ih).await {
                Ok(()) => dropped += 1,
                Err(e) => {
                    tracing::info!(node, %ih, error = %e, "orphan not dropped; retrying later")
                }
            }
        }
        inner.meta.forget_orphan(&ih).await?;
    }
    Ok(dropped)
}
