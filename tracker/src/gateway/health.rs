//! The health worker: scores the nodes, plans repair and rebalance over a snapshot of every
//! stored object (`crate::repair`), and carries the plan out with hold and drop directives.
//!
//! States (shown to operators through [`Gateway::health_status`]):
//! idle (waiting for its interval or a wake-up) → busy (a pass: snapshot, plan, tasks) →
//! throttled (inside a pass, waiting for repair bandwidth) → busy → idle; done once shut down.
//!
//! Bounds: at most `concurrency` tasks run at once, repair traffic is paced to `bandwidth` bytes
//! per second, every directive has the hold timeout, and a node whose directive failed is left out
//! of plans for a back-off that doubles with each failure. A pass waits for its tasks, so a plan
//! is never made while the previous one is still changing the copies it counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use super::Gateway;
use crate::registry::{unix_now, NodeId};
use crate::repair::{self, Health, NodeStatus, PlanConfig, Task};
use crate::scoring::{NodeTier, Score, ScoringConfig};

/// Settings of the health and audit workers.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between passes of the health worker.
    pub interval: Duration,
    /// The planner's knobs: grace period, quota high-water mark, task and move budgets.
    pub plan: PlanConfig,
    /// Repair tasks running at once.
    pub concurrency: usize,
    /// Repair traffic in bytes per second (copies × shard length); 0 for no limit.
    pub bandwidth: u64,
    /// First back-off after a failed directive; it doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Time between audit rounds.
    pub audit_interval: Duration,
    /// Copies audited per round.
    pub audits_per_round: usize,
    /// Pieces asked for per audit.
    pub audit_pieces: usize,
    /// Time an audit may take.
    pub audit_timeout: Duration,
    /// A node must have been connected this long before a shard it says it lacks counts as a
    /// failed audit (a restarting node re-checks its files before it serves them).
    pub audit_settle: Duration,
    /// How scores and tiers are computed.
    pub scoring: ScoringConfig,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(30),
            plan: PlanConfig::default(),
            concurrency: 4,
            bandwidth: 0,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(1800),
            audit_interval: Duration::from_secs(10),
            audits_per_round: 4,
            audit_pieces: 2,
            audit_timeout: Duration::from_secs(30),
            audit_settle: Duration::from_secs(120),
            scoring: ScoringConfig::default(),
        }
    }
}

/// What the health worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Idle,
    Busy,
    Throttled,
    Done,
}

/// The health worker's latest figures, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthStatus {
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
    pub last_error: Option<String>,
}

impl Default for HealthStatus {
    fn default() -> Self {
        HealthStatus {
            state: WorkerState::Idle,
            last_pass_at: None,
            health: Health::default(),
            planned: HashMap::new(),
            tasks_done: 0,
            tasks_failed: 0,
            bytes_repaired: 0,
            backing_off: Vec::new(),
            last_error: None,
        }
    }
}

/// Back-off of nodes whose directives failed.
#[derive(Default)]
pub(super) struct Backoff {
    nodes: HashMap<NodeId, (u32, Instant)>,
}

impl Backoff {
    pub(super) fn failed(&mut self, node: NodeId, cfg: &HealthConfig) {
        let e = self.nodes.entry(node).or_insert((0, Instant::now()));
        let delay = cfg
            .backoff_base
            .saturating_mul(1 << e.0.min(16))
            .min(cfg.backoff_max);
        e.0 += 1;
        e.1 = Instant::now() + delay;
    }

    pub(super) fn succeeded(&mut self, node: NodeId) {
        self.nodes.remove(&node);
    }

    fn active(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|(_, until)| *until > Instant::now())
    }
}

/// Memory of the worker across passes.
struct Seen {
    started: Instant,
    /// When each node was last connected, and its zone and capacity then.
    last: HashMap<NodeId, (Instant, String, u64)>,
}

impl Gateway {
    /// What the health worker is doing and what it found last.
    pub fn health_status(&self) -> HealthStatus {
        self.inner.health.borrow().clone()
    }

    /// Scores of the nodes as of the latest pass (empty before the first).
    pub fn scores(&self) -> Arc<HashMap<NodeId, Score>> {
        self.inner.scores.read().expect("scores lock").clone()
    }

    /// Wakes the health worker now (a copy failed an audit, a node left).
    pub fn wake_health(&self) {
        self.inner.health_wake.notify_one();
    }

    /// Runs the health worker until `shutdown` resolves.
    pub async fn run_health(
        &self,
        cfg: HealthConfig,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut seen = Seen {
            started: Instant::now(),
            last: HashMap::new(),
        };
        loop {
            self.set_state(WorkerState::Busy);
            let result = tokio::select! {
                _ = &mut shutdown => break,
                r = self.health_pass(&cfg, &mut seen) => r,
            };
            if let Err(e) = &result {
                tracing::warn!(error = %e, "health pass failed");
            }
            self.inner.health.send_modify(|s| {
                s.state = WorkerState::Idle;
                s.last_error = result.err().map(|e| e.to_string());
            });
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.inner.health_wake.notified() => {}
                _ = tokio::time::sleep(cfg.interval) => {}
            }
        }
        self.set_state(WorkerState::Done);
    }

    fn set_state(&self, state: WorkerState) {
        self.inner.health.send_modify(|s| s.state = state);
    }

    /// Refreshes the scores every part of the gateway reads.
    pub(super) async fn refresh_scores(
        &self,
        cfg: &ScoringConfig,
    ) -> Result<Arc<HashMap<NodeId, Score>>, super::GatewayError> {
        let scores = Arc::new(
            self.inner
                .registry
                .scores(unix_now(), cfg)
                .await
                .map_err(|e| super::GatewayError::Internal(format!("scores: {e}")))?,
        );
        *self.inner.scores.write().expect("scores lock") = scores.clone();
        Ok(scores)
    }

    async fn health_pass(
        &self,
        cfg: &HealthConfig,
        seen: &mut Seen,
    ) -> Result<(), super::GatewayError> {
        let scores = self.refresh_scores(&cfg.scoring).await?;
        let nodes = self.node_statuses(&scores, seen);
        let mut objects = self.inner.meta.health_snapshot().await?;
        let gone = self.only_reported_copies(&mut objects, cfg.audit_settle);
        self.forget_vanished(gone, cfg.audit_settle).await;
        let plan_cfg = cfg.plan.clone();
        let plan = tokio::task::spawn_blocking(move || repair::plan(&objects, &nodes, &plan_cfg))
            .await
            .map_err(|e| super::GatewayError::Internal(format!("planner: {e}")))?;
        let mut planned: HashMap<String, usize> = HashMap::new();
        for t in &plan.tasks {
            *planned
                .entry(format!("{:?}", t.why).to_lowercase())
                .or_default() += 1;
        }
        if !plan.tasks.is_empty() {
            tracing::info!(?planned, health = ?plan.health, "health pass");
        }
        let backing_off: Vec<NodeId> = {
            let backoff = self.inner.backoff.lock().expect("backoff lock");
            scores
                .keys()
                .filter(|n| backoff.active(**n))
                .copied()
                .collect()
        };
        self.inner.health.send_modify(|s| {
            s.health = plan.health.clone();
            s.planned = planned;
            s.backing_off = backing_off;
        });
        self.carry_out(cfg, plan.tasks).await;
        self.inner
            .health
            .send_modify(|s| s.last_pass_at = Some(unix_now()));
        Ok(())
    }

    /// Every registered node as the planner sees it; the gateway's own seeder is not a node.
    fn node_statuses(&self, scores: &HashMap<NodeId, Score>, seen: &mut Seen) -> Vec<NodeStatus> {
        let now = Instant::now();
        let connected: HashMap<NodeId, _> = self
            .inner
            .hub
            .connected()
            .into_iter()
            .map(|c| (c.node, c))
            .collect();
        // A connection without a data port cannot serve: its node counts as away.
        for c in connected.values().filter(|c| c.data_addr.is_some()) {
            seen.last.insert(c.node, (now, c.zone.clone(), c.capacity));
        }
        let backoff = self.inner.backoff.lock().expect("backoff lock");
        let load = self.inner.load.lock().expect("load lock");
        scores
            .iter()
            .filter(|(id, _)| **id != self.inner.self_node.0)
            .map(|(&id, score)| {
                let online = connected.get(&id).filter(|c| c.data_addr.is_some());
                let (last, zone, capacity) =
                    seen.last
                        .get(&id)
                        .cloned()
                        .unwrap_or((seen.started, String::new(), 0));
                NodeStatus {
                    id,
                    zone,
                    tier: score.tier,
                    online: online.is_some(),
                    offline_secs: if online.is_some() {
                        0
                    } else {
                        now.duration_since(last).as_secs()
                    },
                    free: online.map_or(0, |c| c.free),
                    capacity: online.map_or(capacity, |c| c.capacity),
                    load: load.get(&id).copied().unwrap_or(0),
                    backing_off: backoff.active(id),
                    poor_hours: score.poor_hours_mask(),
                }
            })
            .collect()
    }

    /// The held sets connected nodes last reported (`None`: no report yet), as hex info-hashes.
    pub(super) fn reported_sets(&self) -> HashMap<NodeId, Option<HashSet<String>>> {
        self.inner
            .hub
            .connected()
            .into_iter()
            .map(|c| {
                let set = c
                    .report
                    .as_ref()
                    .map(|r| r.held.iter().map(|ih| ih.to_hex()).collect());
                (c.node, set)
            })
            .collect()
    }

    /// Leaves out of planning the copies a connected node does not report holding (it lost them,
    /// or came back with an empty disk, or has not reported yet): they must not count, and a
    /// surplus drop must never be chosen because of them. Failed copies stay, so they are dropped.
    /// Returns the copies a node has left out of its reports for longer than `settle` since it
    /// connected: copies it no longer has.
    fn only_reported_copies(
        &self,
        objects: &mut [repair::ObjectState],
        settle: Duration,
    ) -> Vec<(String, NodeId)> {
        let reported = self.reported_sets();
        let settled: HashSet<NodeId> = self
            .inner
            .hub
            .connected()
            .into_iter()
            .filter(|c| c.connected_since.elapsed().is_ok_and(|d| d >= settle))
            .map(|c| c.node)
            .collect();
        let mut gone = Vec::new();
        for s in objects.iter_mut().flat_map(|o| o.shards.iter_mut()) {
            s.copies.retain(|c| {
                let keep = c.failed_audit
                    || match reported.get(&c.node) {
                        Some(Some(held)) => held.contains(&s.info_hash),
                        Some(None) => false,
                        // Disconnected: the grace period decides.
                        None => true,
                    };
                if !keep
                    && matches!(reported.get(&c.node), Some(Some(_)))
                    && settled.contains(&c.node)
                {
                    gone.push((s.info_hash.clone(), c.node));
                }
                keep
            });
        }
        gone
    }

    /// Forgets copies their nodes no longer have (a node killed between deleting a shard and
    /// saying so, or back with a wiped disk), once they were confirmed longer ago than `settle`
    /// (so a report that is merely late never loses a copy), and tells the node to drop them in
    /// case it does hold them after all: no copy stays on a node without being recorded.
    async fn forget_vanished(&self, gone: Vec<(String, NodeId)>, settle: Duration) {
        let before = unix_now() - settle.as_secs() as i64;
        for (ih, node) in gone {
            match self
                .inner
                .meta
                .forget_copy_confirmed_before(&ih, node, before)
                .await
            {
                Ok(true) => {
                    tracing::info!(
                        node,
                        info_hash = ih,
                        "node no longer has a recorded copy; forgotten"
                    );
                    if let Some(h) = raidtorrent_codec::InfoHash::from_hex(&ih) {
                        let hub = self.inner.hub.clone();
                        let timeout = self.inner.config.hold_timeout;
                        tokio::spawn(async move {
                            let _ = hub.drop_shard(node, h, timeout).await;
                        });
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(node, info_hash = ih, error = %e, "vanished copy not forgotten")
                }
            }
        }
    }

    /// Runs the tasks, riskiest first, `concurrency` at a time, paced to the bandwidth budget.
    async fn carry_out(&self, cfg: &HealthConfig, tasks: Vec<Task>) {
        let mut running = JoinSet::new();
        let mut pace = Pace::new(cfg.bandwidth);
        for task in tasks {
            while running.len() >= cfg.concurrency.max(1) {
                self.task_done(running.join_next().await);
            }
            let bytes = task_bytes(&task);
            if let Some(wait) = pace.wait_for(bytes) {
                self.set_state(WorkerState::Throttled);
                tokio::time::sleep(wait).await;
                self.set_state(WorkerState::Busy);
            }
            let gw = self.clone();
            let cfg = cfg.clone();
            running.spawn(async move { gw.run_task(&cfg, task).await });
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
        self.inner.health.send_modify(|s| match outcome {
            Ok(bytes) => {
                s.tasks_done += 1;
                s.bytes_repaired += bytes;
            }
            Err(e) => {
                tracing::info!(error = %e, "repair task failed");
                s.tasks_failed += 1;
            }
        });
    }
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

/// Tiers as placement takes them: suspended and disqualified nodes get no new copies.
pub(super) fn placement_tier(score: Option<&Score>) -> Option<crate::placement::Tier> {
    match score.map(|s| s.tier) {
        Some(NodeTier::High) => Some(crate::placement::Tier::High),
        // A node without a score yet (just registered) is new: low tier until vetted.
        Some(NodeTier::Low) | None => Some(crate::placement::Tier::Low),
        Some(NodeTier::Suspended | NodeTier::Disqualified) => None,
    }
}
