//! Background workers with explicit states. A worker is a name, an interval and one step (a
//! pass, a round, a batch); [`run`] drives every worker the same way and publishes its status,
//! which `GET /_health` shows for all of them.
//!
//! States: busy (a step) → idle (waiting for its interval or a wake-up) → busy …; a step may mark
//! its worker throttled while it waits for a budget (repair bandwidth); done once shut down. A
//! worker steps once at start (so the health worker scores the nodes at once), then once per
//! interval or wake-up.
//!
//! Workers do cloud-wide work, so they step only while their gateway holds the work lease
//! (`term`): without it a worker is in standby and takes its standby step instead (the health
//! worker keeps its gateway's scores fresh for placement); it steps at once when the lease is
//! gained, and a step under way when the lease is lost is stopped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::term::Lease;
use super::GatewayError;
use crate::registry::unix_now;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Idle,
    Busy,
    Throttled,
    /// Another gateway on the same database holds the work lease.
    Standby,
    Done,
}

/// A worker's status, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    pub name: &'static str,
    pub state: WorkerState,
    /// Steps finished since start, and how many of them failed.
    pub steps: u64,
    pub failed_steps: u64,
    /// Unix seconds when the latest step ended.
    pub last_step_at: Option<i64>,
    /// Unix seconds of the next step at the latest (a wake-up can bring it forward).
    pub next_step_at: Option<i64>,
    /// Why the latest step failed; `None` when it worked.
    pub last_error: Option<String>,
}

/// A background job of the gateway.
pub trait Worker: Send + 'static {
    fn name(&self) -> &'static str;
    /// Time between steps when nothing wakes the worker.
    fn between_steps(&self) -> Duration;
    /// One step.
    fn step(
        &mut self,
        handle: &WorkerHandle,
    ) -> impl Future<Output = Result<(), GatewayError>> + Send;
    /// What the worker does in standby, once per interval; nothing unless it says otherwise.
    fn standby(&mut self) -> impl Future<Output = Result<(), GatewayError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A worker's status and wake-up, shared between the worker and whoever reports or wakes it.
#[derive(Clone)]
pub struct WorkerHandle {
    status: Arc<watch::Sender<WorkerStatus>>,
    wake: Arc<Notify>,
}

impl WorkerHandle {
    pub fn new(name: &'static str) -> Self {
        let status = WorkerStatus {
            name,
            state: WorkerState::Idle,
            steps: 0,
            failed_steps: 0,
            last_step_at: None,
            next_step_at: None,
            last_error: None,
        };
        WorkerHandle {
            status: Arc::new(watch::channel(status).0),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Makes the worker step now (or right after its current step).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> WorkerStatus {
        self.status.borrow().clone()
    }

    /// Marks the worker throttled (inside a step, while it waits for a budget) or busy again.
    pub fn set_state(&self, state: WorkerState) {
        self.status.send_modify(|s| s.state = state);
    }

    /// A standby step ended: only its error and the next try are shown.
    fn stood_by(&self, result: &Result<(), GatewayError>, interval: Duration) {
        let now = unix_now();
        self.status.send_modify(|s| {
            s.state = WorkerState::Standby;
            s.next_step_at = Some(now + interval.as_secs() as i64);
            s.last_error = result.as_ref().err().map(|e| e.to_string());
        });
    }

    fn stepped(&self, result: &Result<(), GatewayError>, interval: Duration) {
        let now = unix_now();
        self.status.send_modify(|s| {
            s.state = WorkerState::Idle;
            s.steps += 1;
            s.failed_steps += u64::from(result.is_err());
            s.last_step_at = Some(now);
            s.next_step_at = Some(now + interval.as_secs() as i64);
            s.last_error = result.as_ref().err().map(|e| e.to_string());
        });
    }
}

/// Runs `worker` until `shutdown` resolves: while `lease` is held, a step at once, then one per
/// interval or wake-up; while not, a standby step per interval.
pub(super) async fn run<W: Worker>(
    mut worker: W,
    handle: WorkerHandle,
    mut lease: Lease,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let leased = lease.held();
        let result = match leased {
            true => {
                handle.set_state(WorkerState::Busy);
                let mut losing = lease.clone();
                tokio::select! {
                    _ = &mut shutdown => break,
                    r = worker.step(&handle) => r,
                    _ = losing.lost() => Err(GatewayError::Unavailable(
                        "the work lease went to another gateway mid-step; the step was stopped"
                            .into(),
                    )),
                }
            }
            false => {
                handle.set_state(WorkerState::Standby);
                tokio::select! {
                    _ = &mut shutdown => break,
                    r = worker.standby() => r,
                }
            }
        };
        if let Err(e) = &result {
            tracing::warn!(worker = worker.name(), error = %e, "step failed");
        }
        let interval = worker.between_steps();
        if leased {
            handle.stepped(&result, interval);
        } else {
            handle.stood_by(&result, interval);
        }
        if lease.held() != leased {
            // The lease changed hands meanwhile: step or stand by at once.
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = handle.wake.notified(), if leased => {}
            _ = lease.gained(), if !leased => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
    handle.set_state(WorkerState::Done);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its steps; fails every second one.
    struct Counter {
        steps: Arc<watch::Sender<u64>>,
    }

    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }

        fn between_steps(&self) -> Duration {
            Duration::from_secs(3600)
        }

        async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
            let mut n = 0;
            self.steps.send_modify(|s| {
                *s += 1;
                n = *s;
            });
            if n % 2 == 0 {
                return Err(GatewayError::Internal(format!("step {n}")));
            }
            Ok(())
        }
    }

    /// Counts its steps, each of which never ends, and its standby steps.
    struct Endless {
        steps: Arc<watch::Sender<u64>>,
        standbys: Arc<watch::Sender<u64>>,
    }

    impl Worker for Endless {
        fn name(&self) -> &'static str {
            "endless"
        }

        fn between_steps(&self) -> Duration {
            Duration::from_secs(3600)
        }

        async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
            self.steps.send_modify(|s| *s += 1);
            std::future::pending().await
        }

        async fn standby(&mut self) -> Result<(), GatewayError> {
            self.standbys.send_modify(|s| *s += 1);
            Ok(())
        }
    }

    #[tokio::test]
    async fn steps_only_under_the_lease_and_a_lost_lease_stops_the_step() {
        let steps = Arc::new(watch::channel(0u64).0);
        let standbys = Arc::new(watch::channel(0u64).0);
        let (mut stepped, mut stood_by) = (steps.subscribe(), standbys.subscribe());
        let held = watch::channel(false).0;
        let handle = WorkerHandle::new("endless");
        let (stop, mut stopped) = watch::channel(false);
        let worker = Endless { steps, standbys };
        let lease = super::super::term::Term::lease(&held);
        let task = tokio::spawn(run(worker, handle.clone(), lease, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let mut status = handle.status.subscribe();
        stood_by.wait_for(|n| *n == 1).await.unwrap();
        status
            .wait_for(|s| s.state == WorkerState::Standby)
            .await
            .unwrap();
        assert_eq!(*stepped.borrow(), 0, "no step without the lease");

        held.send_replace(true);
        stepped.wait_for(|n| *n == 1).await.unwrap();
        status
            .wait_for(|s| s.state == WorkerState::Busy)
            .await
            .unwrap();

        held.send_replace(false);
        stood_by.wait_for(|n| *n == 2).await.unwrap();
        let s = status
            .wait_for(|s| s.state == WorkerState::Standby)
            .await
            .unwrap()
            .clone();
        assert_eq!((s.steps, s.failed_steps), (1, 1), "the step was stopped");

        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(handle.status().state, WorkerState::Done);
    }

    #[tokio::test]
    async fn steps_at_start_and_on_wake_reports_errors_and_ends_done() {
        let steps = Arc::new(watch::channel(0u64).0);
        let mut seen = steps.subscribe();
        let handle = WorkerHandle::new("counter");
        let (stop, stopped) = watch::channel(false);
        let worker = Counter { steps };
        let task = tokio::spawn(run(worker, handle.clone(), Lease::always(), async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        }));
        seen.wait_for(|n| *n == 1).await.unwrap();
        let mut status = handle.status.subscribe();
        status.wait_for(|s| s.steps == 1).await.unwrap();
        assert_eq!(handle.status().last_error, None);
        assert!(handle.status().next_step_at >= handle.status().last_step_at);

        handle.wake();
        status.wait_for(|s| s.steps == 2).await.unwrap();
        let s = handle.status();
        assert_eq!(
            (s.name, s.state, s.failed_steps),
            ("counter", WorkerState::Idle, 1)
        );
        assert_eq!(s.last_error.as_deref(), Some("internal error: step 2"));

        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(handle.status().state, WorkerState::Done);
    }
}
