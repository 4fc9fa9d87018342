//! The health worker: scores the nodes, plans repair and rebalance (`crate::repair`), and
//! carries the plan out (`repair_exec`).
//!
//! A pass plans over the objects that changed, not over every stored object: a
//! [`Tracker`](crate::repair::dirty::Tracker) marks the objects held by nodes whose standing
//! changed, and those named by the database's change log (copies recorded, dropped or failing
//! audits, shards committed) or that a connected node stopped reporting. A slow sweep
//! (`sweep_period`, at least `sweep_min` objects a pass) looks at every object in turn for what
//! nothing marks. The figures it publishes cover every stored object.
//!
//! Bounds: at most `concurrency` tasks run at once, repair traffic is paced to `bandwidth` bytes
//! per second (the worker shows as throttled while it waits), and a node whose directive failed
//! is left out of plans for a back-off that doubles with each failure. A pass waits for its
//! tasks, so a plan is never made while the previous one is still changing the copies it counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_codec::InfoHash;
use serde::Serialize;
use tokio::task::JoinSet;

use super::config::HealthConfig;
use super::nodes::{NodeSnapshot, Reported, Seen};
use super::worker::{Worker, WorkerHandle, WorkerState, WorkerStatus};
use super::{Gateway, GatewayError};
use crate::metrics::{metrics, Outcome};
use crate::registry::{unix_now, NodeId};
use crate::repair::dirty::Tracker;
use crate::repair::{self, Health, NodeStatus, ObjectState, Task};

/// The health worker's state and latest figures, with every worker's status, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthStatus {
    /// The health worker's state.
    pub state: WorkerState,
    /// Unix seconds of the latest finished pass.
    pub last_pass_at: Option<i64>,
    /// What the latest plan found.
    pub health: Health,
    /// Tasks of the latest plan, by reason.
    pub planned: HashMap<String, usize>,
    /// Since start: tasks carried out and failed, and bytes of new copies confirmed.
    pub tasks_done: u64,
    pub tasks_failed: u64,
    pub bytes_repaired: u64,
    /// Nodes left out of plans for now after failed directives.
    pub backing_off: Vec<NodeId>,
    /// Why the health worker's latest pass failed.
    pub last_error: Option<String>,
    /// Every background worker: collector, health, audits.
    pub workers: Vec<WorkerStatus>,
    /// Tasks of the latest plan.
    pub queue: usize,
    /// Objects the latest pass looked at, and objects still marked for a later one.
    pub objects_planned: usize,
    pub objects_marked: usize,
    /// The nodes as the latest pass saw them, for the operator view.
    #[serde(skip)]
    pub statuses: Arc<Vec<NodeStatus>>,
    /// This gateway's id among those sharing its database, and whether it holds the work
    /// lease (runs the workers) or stands by.
    pub gateway: String,
    pub work_lease: bool,
}

impl Default for HealthStatus {
    fn default() -> Self {
        HealthStatus {
            state: WorkerState::Idle,
            last_pass_at: None,
            health: Health::default(),
            planned: HashMap::new(),
            queue: 0,
            objects_planned: 0,
            objects_marked: 0,
            statuses: Arc::default(),
            gateway: String::new(),
            work_lease: false,
            tasks_done: 0,
            tasks_failed: 0,
            bytes_repaired: 0,
            backing_off: Vec::new(),
            last_error: None,
            workers: Vec::new(),
        }
    }
}

/// Change-log entries one pass takes; the rest wait for the next.
const CHANGES_PER_PASS: usize = 100_000;

/// The health worker.
pub(super) struct HealthWorker {
    pub gw: Gateway,
    pub cfg: HealthConfig,
    pub seen: Seen,
    pub tracker: Tracker,
}

impl Worker for HealthWorker {
    fn name(&self) -> &'static str {
        "health"
    }

    fn between_steps(&self) -> Duration {
        self.cfg.interval
    }

    async fn step(&mut self, handle: &WorkerHandle) -> Result<(), GatewayError> {
        let pass = Pass {
            cfg: &self.cfg,
            seen: &mut self.seen,
            tracker: &mut self.tracker,
        };
        self.gw.health_pass(pass, handle).await
    }

    /// Another gateway repairs; this one keeps the scores its uploads place by fresh.
    async fn standby(&mut self) -> Result<(), GatewayError> {
        self.gw.refresh_scores(&self.cfg).await
    }
}

/// What one pass works with.
struct Pass<'a> {
    cfg: &'a HealthConfig,
    seen: &'a mut Seen,
    tracker: &'a mut Tracker,
}

impl Gateway {
    /// Scores the nodes when due, from the shared records while other gateways are alive.
    async fn refresh_scores(&self, cfg: &HealthConfig) -> Result<(), GatewayError> {
        let inner = &self.inner;
        let since = unix_now() - inner.config.lease.as_secs() as i64;
        let shared = inner.meta.others_alive(&inner.id, since).await?;
        inner.nodes.refresh_scores(&cfg.scoring, shared).await?;
        Ok(())
    }

    async fn health_pass(&self, pass: Pass<'_>, handle: &WorkerHandle) -> Result<(), GatewayError> {
        let cfg = pass.cfg;
        self.refresh_scores(cfg).await?;
        let snapshot = self.inner.nodes.snapshot();
        let nodes = snapshot.statuses(pass.seen);
        let statuses = Arc::new(nodes.clone());
        pass.tracker.observe_nodes(&nodes, &cfg.plan);
        self.mark_changes(pass.tracker).await?;
        let sweep = cfg.sweep_share(pass.tracker.known());
        let meta = &self.inner.meta;
        let mut objects = meta
            .load_selected(pass.tracker, cfg.dirty_max, sweep)
            .await?;
        let (gone, unsettled) = only_reported_copies(&snapshot, &mut objects, cfg.audit_settle);
        self.forget_vanished(gone, cfg.audit_settle).await;
        let plan_cfg = cfg.plan.clone();
        let planned_over = objects.len();
        let plan = tokio::task::spawn_blocking(move || repair::plan(&objects, &nodes, &plan_cfg))
            .await
            .map_err(|e| GatewayError::Internal(format!("planner: {e}")))?;
        pass.tracker.assessed(&plan, &unsettled);
        let mut planned: HashMap<String, usize> = HashMap::new();
        for t in &plan.tasks {
            *planned
                .entry(format!("{:?}", t.why).to_lowercase())
                .or_default() += 1;
        }
        let health = pass.tracker.health().clone();
        if !plan.tasks.is_empty() {
            tracing::info!(?planned, ?health, planned_over, "health pass");
        }
        self.inner.findings.send_modify(|s| {
            s.health = health;
            s.planned = planned;
            s.queue = plan.tasks.len();
            s.objects_planned = planned_over;
            s.objects_marked = pass.tracker.dirty();
            s.statuses = statuses;
            s.backing_off = snapshot.backing_off();
        });
        self.carry_out(cfg, plan.tasks, handle).await;
        self.inner
            .findings
            .send_modify(|s| s.last_pass_at = Some(unix_now()));
        Ok(())
    }

    /// Marks the objects whose recorded copies changed since the last pass (the database's
    /// change log) and those with a shard a connected node stopped reporting.
    async fn mark_changes(&self, tracker: &mut Tracker) -> Result<(), GatewayError> {
        let meta = &self.inner.meta;
        for id in meta.take_health_changes(CHANGES_PER_PASS).await? {
            tracker.mark(id);
        }
        let unreported = self.inner.nodes.hub().take_unreported();
        if unreported.overflowed {
            tracker.sweep_all();
        }
        for id in meta.objects_of_shards(&unreported.shards).await? {
            tracker.mark(id);
        }
        Ok(())
    }

    /// Forgets copies their nodes no longer have (a node killed between deleting a shard and
    /// saying so, or back with a wiped disk), once they were confirmed longer ago than `settle`
    /// (so a report that is merely late never loses a copy), and tells the node to drop them in
    /// case it does hold them after all: no copy stays on a node without being recorded.
    async fn forget_vanished(&self, gone: Vec<(InfoHash, NodeId)>, settle: Duration) {
        let before = unix_now() - settle.as_secs() as i64;
        for (ih, node) in gone {
            let meta = &self.inner.meta;
            match meta.forget_copy_confirmed_before(&ih, node, before).await {
                Ok(true) => {
                    tracing::info!(node, info_hash = %ih, "node no longer has a recorded copy; forgotten");
                    let copies = self.inner.copies.clone();
                    tokio::spawn(async move {
                        let _ = copies.drop(node, &ih).await;
                    });
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(node, info_hash = %ih, error = %e, "vanished copy not forgotten")
                }
            }
        }
    }

    /// Runs the tasks, riskiest first, `concurrency` at a time, paced to the bandwidth budget.
    async fn carry_out(&self, cfg: &HealthConfig, tasks: Vec<Task>, handle: &WorkerHandle) {
        let mut running = JoinSet::new();
        let mut pace = Pace::new(cfg.bandwidth);
        for task in tasks {
            while running.len() >= cfg.concurrency.max(1) {
                self.task_done(running.join_next().await);
            }
            if let Some(wait) = pace.wait_for(task_bytes(&task)) {
                handle.set_state(WorkerState::Throttled);
                tokio::time::sleep(wait).await;
                handle.set_state(WorkerState::Busy);
            }
            let gw = self.clone();
            running.spawn(async move { gw.run_task(task).await });
        }
        while !running.is_empty() {
            self.task_done(running.join_next().await);
        }
    }

    fn task_done(&self, joined: Option<Result<Result<u64, String>, tokio::task::JoinError>>) {
        let outcome = match joined {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(format!("repair task: {e}")),
            None => return,
        };
        self.inner.findings.send_modify(|s| match outcome {
            Ok(bytes) => {
                s.tasks_done += 1;
                s.bytes_repaired += bytes;
                repaired("done");
                metrics().repair_bytes.inc_by(bytes);
            }
            Err(e) => {
                tracing::info!(error = %e, "repair task failed");
                s.tasks_failed += 1;
                repaired("failed");
            }
        });
    }
}

/// Leaves out of planning the copies a connected node does not report holding (it lost them,
/// or came back with an empty disk, or has not reported yet): they must not count, and a
/// surplus drop must never be chosen because of them. Failed copies stay, so they are dropped.
/// Returns the copies a node has left out of its reports for longer than `settle` since it
/// connected (copies it no longer has), and the objects with copies left out that are not
/// settled yet (to look at again).
fn only_reported_copies(
    snapshot: &NodeSnapshot,
    objects: &mut [ObjectState],
    settle: Duration,
) -> (Vec<(InfoHash, NodeId)>, Vec<i64>) {
    let mut gone = Vec::new();
    let mut unsettled = Vec::new();
    for o in objects.iter_mut() {
        let mut waiting = false;
        for s in o.shards.iter_mut() {
            s.copies.retain(|c| {
                let reported = snapshot.reported(c.node, &s.info_hash);
                let keep =
                    c.failed_audit || matches!(reported, Reported::Holds | Reported::Offline);
                if keep {
                    return true;
                }
                if reported == Reported::Lacks && snapshot.settled(c.node, settle) {
                    gone.push((s.info_hash, c.node));
                } else {
                    waiting = true;
                }
                false
            });
        }
        if waiting {
            unsettled.push(o.id);
        }
    }
    (gone, unsettled)
}

/// Bytes a task moves: one shard length per new copy.
fn task_bytes(task: &Task) -> u64 {
    match &task.action {
        repair::Action::Copy { shard, targets, .. } => shard.length * targets.len() as u64,
        repair::Action::Rebuild { shards, .. } => shards
            .iter()
            .map(|(s, t)| s.length * (t.len() as u64 + 1))
            .sum(),
        repair::Action::Drop { .. } => 0,
    }
}

/// Paces repair traffic: each task may start once the bytes before it fit the budget.
struct Pace {
    rate: u64,
    next: Instant,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Pace {
            rate,
            next: Instant::now(),
        }
    }

    /// How long to wait before moving `bytes` more.
    fn wait_for(&mut self, bytes: u64) -> Option<Duration> {
        if self.rate == 0 || bytes == 0 {
            return None;
        }
        let now = Instant::now();
        let start = self.next.max(now);
        self.next = start + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        (start > now).then(|| start - now)
    }
}

fn repaired(result: &'static str) {
    metrics().repairs.get_or_create(&Outcome { result }).inc();
}
