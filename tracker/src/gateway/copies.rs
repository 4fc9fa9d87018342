//! A copy's life on a node: the one place that sends hold and drop directives.
//!
//! Hold: the node's announce token, the shard's torrent with the node's own announce URL, the directive
//! naming the peers to fetch from, the node's answer awaited with the hold timeout; the transfer
//! is recorded against the node, counted in its load while in flight, and backs it off when it
//! fails. A node whose token cannot be had (revoked since the snapshot was taken) fails its own
//! jobs before any directive is sent, so the caller places those copies elsewhere; it never fails
//! the others. A confirmed copy is recorded while its shard is pending or live; a copy confirmed for a
//! shard that went away meanwhile is recorded against the orphan, so the collector drops it.
//!
//! Drop: the directive, awaited with the drop timeout; the copy is forgotten once the node
//! confirms.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_codec::{InfoHash, ShardInfo};
use raidtorrent_proto::{Hold, MetainfoSource};
use tokio::task::JoinSet;

use super::local::Announce;
use super::meta::Meta;
use super::nodes::{Nodes, TransferRecord};
use super::GatewayError;
use crate::control::Outcome;
use crate::registry::{unix_now, NodeId};
use crate::scoring::TransferKind;

/// Sends holds and drops; cheap to clone.
#[derive(Clone)]
pub(super) struct Copies {
    nodes: Arc<Nodes>,
    meta: Meta,
    announce: Announce,
    hold_timeout: Duration,
    drop_timeout: Duration,
}

/// A transfer counted in its node's load until it ends, or until its task is cancelled.
struct InFlight<'a> {
    nodes: &'a Nodes,
    node: NodeId,
    ended: bool,
}

impl<'a> InFlight<'a> {
    fn start(nodes: &'a Nodes, node: NodeId) -> Self {
        nodes.transfer_started(node);
        InFlight {
            nodes,
            node,
            ended: false,
        }
    }

    /// The node answered: its load goes down, and a failure backs it off.
    fn end(&mut self, ok: bool) {
        self.ended = true;
        self.nodes.transfer_ended(self.node, Some(ok));
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.nodes.transfer_ended(self.node, None);
        }
    }
}

/// One node to take one copy of a shard.
#[derive(Debug, Clone)]
pub(super) struct HoldJob {
    pub shard: ShardInfo,
    pub node: NodeId,
}

/// How one hold went: `Ok` once the node confirmed and the copy is recorded.
#[derive(Debug)]
pub(super) struct Held {
    /// Index of the job in the request.
    pub job: usize,
    pub node: NodeId,
    pub outcome: Result<(), String>,
}

impl Copies {
    pub(super) fn new(
        nodes: Arc<Nodes>,
        meta: Meta,
        announce: Announce,
        hold_timeout: Duration,
        drop_timeout: Duration,
    ) -> Self {
        Copies {
            nodes,
            meta,
            announce,
            hold_timeout,
            drop_timeout,
        }
    }

    /// Sends every job's hold at once, each naming `peers` as sources, awaits every answer and
    /// records the confirmed copies. Every job is reported: a node without an announce token
    /// (revoked) and a hold task that panicked as failures of their own jobs.
    pub(super) async fn hold(
        &self,
        jobs: Vec<HoldJob>,
        peers: &[SocketAddr],
        kind: TransferKind,
    ) -> Result<Vec<Held>, GatewayError> {
        self.hold_then(jobs, peers, kind, async {}).await
    }

    /// [`hold`](Self::hold), running `before_recording` once every answer is in and before any
    /// copy is recorded (and so can be read from).
    pub(super) async fn hold_then(
        &self,
        jobs: Vec<HoldJob>,
        peers: &[SocketAddr],
        kind: TransferKind,
        before_recording: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<Held>, GatewayError> {
        let mut running = JoinSet::new();
        let mut tasks = HashMap::new();
        let mut lost = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let Some(token) = self.nodes.announce_token(job.node) else {
                let why = format!("node {} is revoked or unregistered", job.node);
                lost.push(((i, job.node), why));
                continue;
            };
            let hold = Hold {
                ih: job.shard.info_hash(),
                source: MetainfoSource::Torrent(self.announce.torrent(&job.shard, &token)),
                peers: peers.to_vec(),
            };
            let copies = self.clone();
            let node = job.node;
            let task = running.spawn(async move {
                let started = Instant::now();
                let outcome = copies.hold_one(&job, hold).await;
                (i, job, outcome, started.elapsed())
            });
            tasks.insert(task.id(), (i, node));
        }
        let mut answers = Vec::new();
        while let Some(joined) = running.join_next_with_id().await {
            match joined {
                Ok((_, a)) => answers.push(a),
                Err(e) => lost.push((tasks[&e.id()], format!("hold task: {e}"))),
            }
        }
        before_recording.await;
        let mut held = Vec::with_capacity(answers.len());
        for (i, job, outcome, took) in answers {
            let ih = job.shard.info_hash();
            let transfer = TransferRecord {
                node: job.node,
                kind,
                info_hash: &ih,
                ok: outcome.is_ok(),
                bytes: job.shard.length,
                took,
            };
            self.nodes.record_transfer(transfer).await;
            let outcome = match outcome {
                Ok(()) => self.record(&ih, job.node).await,
                Err(e) => Err(e),
            };
            held.push(Held {
                job: i,
                node: job.node,
                outcome,
            });
        }
        for ((job, node), why) in lost {
            tracing::warn!(node, why, "a hold was not made");
            held.push(Held {
                job,
                node,
                outcome: Err(why),
            });
        }
        held.sort_by_key(|h| h.job);
        Ok(held)
    }

    /// One hold directive and its answer; the node's load and back-off follow it.
    async fn hold_one(&self, job: &HoldJob, hold: Hold) -> Result<(), String> {
        let mut transfer = InFlight::start(&self.nodes, job.node);
        let answer = self
            .nodes
            .hub()
            .hold_with(job.node, hold, self.hold_timeout)
            .await;
        transfer.end(matches!(answer, Ok(Outcome::Acked)));
        match answer {
            Ok(Outcome::Acked) => Ok(()),
            Ok(Outcome::Refused { code, reason }) => {
                Err(format!("node {} refused: {code:?} {reason}", job.node))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records a confirmed copy. A copy of a shard that went away meanwhile is recorded against
    /// the orphan, so the collector drops it (and retries until the node confirms); only when
    /// even the orphan is gone is it dropped here, once.
    async fn record(&self, ih: &InfoHash, node: NodeId) -> Result<(), String> {
        let now = unix_now();
        let why = match self.meta.add_holding(ih, node, now).await {
            Ok(true) => return Ok(()),
            Ok(false) => "its shard is no longer stored",
            Err(e) => return Err(format!("node {node}: copy not recorded: {e}")),
        };
        match self.meta.add_orphan_holding(ih, node, now).await {
            Ok(true) => {
                tracing::info!(node, info_hash = %ih, "copy of an orphan; the collector drops it")
            }
            _ => {
                if let Err(e) = self.drop(node, ih).await {
                    tracing::warn!(node, info_hash = %ih, error = %e, "copy of a forgotten shard not dropped");
                }
            }
        }
        Err(format!("node {node}: copy not counted: {why}"))
    }

    /// Tells `node` to drop its copy and forgets the copy once the node confirms.
    pub(super) async fn drop(&self, node: NodeId, ih: &InfoHash) -> Result<(), GatewayError> {
        let answer = self
            .nodes
            .hub()
            .drop_shard(node, *ih, self.drop_timeout)
            .await;
        match answer {
            Ok(Outcome::Acked) => self.meta.remove_holding(ih, node).await,
            Ok(Outcome::Refused { code, reason }) => Err(GatewayError::Unavailable(format!(
                "node {node} refused the drop: {code:?} {reason}"
            ))),
            Err(e) => Err(GatewayError::Unavailable(e.to_string())),
        }
    }
}
