//! A copy's life on a node: the one place that sends hold and drop directives.
//!
//! Hold: the node's announce token, the shard's torrent with the node's own announce URL, the
//! directive naming the peers to fetch from, the node's answer awaited with the hold timeout; the
//! transfer is counted in the node's load while in flight, then recorded against it and backs it
//! off only when the answer reflects on the node ([`Verdict`]). A node whose token cannot be had
//! (revoked since the snapshot was taken) fails its own jobs before any directive is sent, so the
//! caller places those copies elsewhere; it never fails the others. A confirmed copy is recorded
//! while its shard is pending or live; a copy confirmed for a shard that went away meanwhile is
//! recorded against the orphan, so the collector drops it.
//! Every hold is in flight (`in_flight`) from before its directive until its copy is recorded;
//! one that ends otherwise (refused, timed out, node gone, its task cancelled) leaves its copy
//! to the collector, which drops it: a node that finishes a fetch nobody waits for any more
//! does not keep a copy the gateway does not track.
//!
//! Drop: the directive, awaited with the drop timeout; the copy is forgotten once the node
//! confirms. A drop of an untracked copy (a failed hold's, or one reconciliation found) is sent
//! only while no hold of it is in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_codec::{InfoHash, ShardInfo};
use raidtorrent_proto::{Hold, MetainfoSource};
use tokio::task::JoinSet;

use super::in_flight::{CopiesInFlight, CopyOf, HoldTicket};
use super::local::Announce;
use super::meta::Meta;
use super::nodes::{Nodes, TransferRecord};
use super::GatewayError;
use crate::control::{ControlError, Outcome, RefuseCode};
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
    in_flight: Arc<CopiesInFlight>,
    /// The gateway's own seeder: a hold naming it as a source fetches from this gateway.
    seeder: SocketAddr,
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

    /// The node answered: its load goes down, and the verdict clears or extends its back-off.
    fn end(&mut self, verdict: Verdict) {
        self.ended = true;
        self.nodes.transfer_ended(self.node, verdict.backoff());
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.nodes.transfer_ended(self.node, None);
        }
    }
}

/// What a hold's answer says about its node, as RT-0002's refusal table has it. Only a storage
/// error (`io`, or a code this gateway does not know), a timeout or a lost connection reflects on
/// the node's reliability; so does `stalled` when this gateway's own seeder was a source, since a
/// gateway alive to hear the refusal was there to send. A full or stopping node is backed off but
/// not blamed. The other refusals are about the hold itself (other sources that sent nothing, its
/// metainfo, a later drop) and leave the node's record and back-off alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Done,
    Failed,
    Busy,
    NotTheNode,
}

impl Verdict {
    fn of(answer: &Result<Outcome, ControlError>, own_source: bool) -> Self {
        let code = match answer {
            Ok(Outcome::Acked) => return Verdict::Done,
            Ok(Outcome::Refused { code, .. }) => code,
            Err(_) => return Verdict::Failed,
        };
        match code {
            RefuseCode::Io | RefuseCode::Other(_) => Verdict::Failed,
            RefuseCode::Quota | RefuseCode::Shutdown => Verdict::Busy,
            RefuseCode::Stalled if own_source => Verdict::Failed,
            RefuseCode::Stalled
            | RefuseCode::Superseded
            | RefuseCode::Fetch
            | RefuseCode::Metainfo
            | RefuseCode::Mismatch
            | RefuseCode::Malformed => Verdict::NotTheNode,
        }
    }

    /// For the node's back-off: `Some(true)` clears it, `Some(false)` extends it.
    fn backoff(self) -> Option<bool> {
        match self {
            Verdict::Done => Some(true),
            Verdict::Failed | Verdict::Busy => Some(false),
            Verdict::NotTheNode => None,
        }
    }

    /// For the node's record: the transfer's `ok`, or `None` when it is not recorded.
    fn recorded(self) -> Option<bool> {
        match self {
            Verdict::Done => Some(true),
            Verdict::Failed => Some(false),
            Verdict::Busy | Verdict::NotTheNode => None,
        }
    }
}

/// One node to take one copy of a shard.
#[derive(Debug, Clone)]
pub(super) struct HoldJob {
    pub shard: ShardInfo,
    pub node: NodeId,
}

/// A hold's answer: `Ok` when the node confirmed, and what it says about the node.
type HoldAnswer = (Result<(), String>, Verdict);

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
        in_flight: Arc<CopiesInFlight>,
        seeder: SocketAddr,
    ) -> Self {
        Copies {
            nodes,
            meta,
            announce,
            hold_timeout,
            drop_timeout,
            in_flight,
            seeder,
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
        // In flight from before any directive leaves until each copy is recorded; a ticket
        // dropped unrecorded (this future cancelled included) leaves its copy to the collector.
        let mut tickets = Vec::with_capacity(jobs.len());
        let mut running = JoinSet::new();
        let mut tasks = HashMap::new();
        let mut lost = Vec::new();
        let own_source = peers.contains(&self.seeder);
        for (i, job) in jobs.into_iter().enumerate() {
            let Some(token) = self.nodes.announce_token(job.node) else {
                let why = format!("node {} is revoked or unregistered", job.node);
                lost.push(((i, job.node), why));
                tickets.push(None);
                continue;
            };
            let copy = (job.shard.info_hash(), job.node);
            tickets.push(Some(self.in_flight.begin_hold(copy).await));
            let hold = Hold {
                ih: job.shard.info_hash(),
                source: MetainfoSource::Torrent(self.announce.torrent(&job.shard, &token)),
                peers: peers.to_vec(),
            };
            let copies = self.clone();
            let node = job.node;
            let task = running.spawn(async move {
                let started = Instant::now();
                let outcome = copies.hold_one(&job, hold, own_source).await;
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
        for answer in answers {
            let ticket = tickets[answer.0].take();
            held.push(self.finish_hold(answer, kind, ticket).await);
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

    /// Records an answered hold: the transfer against its node and, once confirmed, the copy;
    /// the hold's ticket is marked recorded only when the copy is.
    async fn finish_hold(
        &self,
        (job_index, job, (outcome, verdict), took): (usize, HoldJob, HoldAnswer, Duration),
        kind: TransferKind,
        ticket: Option<HoldTicket>,
    ) -> Held {
        let ih = job.shard.info_hash();
        if let Some(ok) = verdict.recorded() {
            let transfer = TransferRecord {
                node: job.node,
                kind,
                info_hash: &ih,
                ok,
                bytes: job.shard.length,
                took,
            };
            self.nodes.record_transfer(transfer).await;
        }
        let outcome = match outcome {
            Ok(()) => {
                let (recorded, outcome) = self.record(&ih, job.node).await;
                if let Some(t) = ticket.filter(|_| recorded) {
                    t.recorded();
                }
                outcome
            }
            Err(e) => Err(e),
        };
        Held {
            job: job_index,
            node: job.node,
            outcome,
        }
    }

    /// One hold directive and its answer; the node's load and back-off follow its verdict.
    async fn hold_one(&self, job: &HoldJob, hold: Hold, own_source: bool) -> HoldAnswer {
        let mut transfer = InFlight::start(&self.nodes, job.node);
        let answer = self
            .nodes
            .hub()
            .hold_with(job.node, hold, self.hold_timeout)
            .await;
        let verdict = Verdict::of(&answer, own_source);
        transfer.end(verdict);
        let outcome = match answer {
            Ok(Outcome::Acked) => Ok(()),
            Ok(Outcome::Refused { code, reason }) => {
                Err(format!("node {} refused: {code} {reason}", job.node))
            }
            Err(e) => Err(e.to_string()),
        };
        (outcome, verdict)
    }

    /// Records a confirmed copy; returns whether the copy is recorded, and the hold's outcome.
    /// A copy of a shard that went away meanwhile is recorded against the orphan, so the
    /// collector drops it (and retries until the node confirms); one that is not recorded at all
    /// (even the orphan is gone, or the record failed) is left to the collector by its ticket.
    async fn record(&self, ih: &InfoHash, node: NodeId) -> (bool, Result<(), String>) {
        let now = unix_now();
        match self.meta.add_holding(ih, node, now).await {
            Ok(true) => return (true, Ok(())),
            Ok(false) => {}
            Err(e) => return (false, Err(format!("node {node}: copy not recorded: {e}"))),
        }
        let orphan = matches!(self.meta.add_orphan_holding(ih, node, now).await, Ok(true));
        if orphan {
            tracing::info!(node, info_hash = %ih, "copy of an orphan; the collector drops it");
        }
        let why = format!("node {node}: copy not counted: its shard is no longer stored");
        (orphan, Err(why))
    }

    /// The copies whose holds are in flight now.
    pub(super) fn holds_in_flight(&self) -> std::collections::HashSet<CopyOf> {
        self.in_flight.holds()
    }

    /// Takes the copies of holds that ended without their copy recorded.
    pub(super) fn take_unrecorded(&self) -> Vec<CopyOf> {
        self.in_flight.take_queued()
    }

    /// Drops a copy the gateway does not track, unless a hold of it is in flight or a holding of
    /// it was recorded meanwhile (both checked after the copy is marked, so no hold of it starts
    /// until the node answers). Returns whether a drop was sent and confirmed.
    pub(super) async fn drop_untracked(&self, (ih, node): CopyOf) -> Result<bool, GatewayError> {
        let Some(_dropping) = self.in_flight.begin_drop((ih, node)) else {
            return Ok(false);
        };
        if self.meta.is_recorded(&ih, node).await? {
            return Ok(false);
        }
        self.drop(node, &ih).await.map(|()| true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: RefuseCode) -> Result<Outcome, ControlError> {
        Ok(Outcome::Refused {
            code,
            reason: String::new(),
        })
    }

    /// RT-0002's refusal table: only `io` (and codes from newer nodes) count against the node;
    /// a full or stopping node is backed off; a hold whose other sources sent nothing is not its
    /// fault, but one whose source was this gateway is.
    #[test]
    fn only_answers_about_the_node_are_held_against_it() {
        use Verdict::*;
        let cases = [
            (Ok(Outcome::Acked), Done, Some(true), Some(true)),
            (
                Err(ControlError::TimedOut(1)),
                Failed,
                Some(false),
                Some(false),
            ),
            (refused(RefuseCode::Io), Failed, Some(false), Some(false)),
            (
                refused(RefuseCode::parse("new")),
                Failed,
                Some(false),
                Some(false),
            ),
            (refused(RefuseCode::Quota), Busy, Some(false), None),
            (refused(RefuseCode::Shutdown), Busy, Some(false), None),
            (refused(RefuseCode::Stalled), NotTheNode, None, None),
            (refused(RefuseCode::Superseded), NotTheNode, None, None),
            (refused(RefuseCode::Fetch), NotTheNode, None, None),
            (refused(RefuseCode::Metainfo), NotTheNode, None, None),
            (refused(RefuseCode::Mismatch), NotTheNode, None, None),
            (refused(RefuseCode::Malformed), NotTheNode, None, None),
        ];
        for (answer, verdict, backoff, recorded) in cases {
            let v = Verdict::of(&answer, false);
            assert_eq!(v, verdict, "{answer:?}");
            assert_eq!(v.backoff(), backoff, "{answer:?}");
            assert_eq!(v.recorded(), recorded, "{answer:?}");
        }
        // Sent by this gateway's own seeder, which was there to send: the node could not fetch.
        assert_eq!(Verdict::of(&refused(RefuseCode::Stalled), true), Failed);
        assert_eq!(
            Verdict::of(&refused(RefuseCode::Superseded), true),
            NotTheNode
        );
    }
}
