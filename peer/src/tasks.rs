//! Every background task of a node is spawned here, by name, under the node's cancellation token, so
//! shutdown cancels them all, waits for them, and can say which (if any) did not stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Clone)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
    live: Arc<Mutex<BTreeMap<u64, String>>>,
    next: Arc<AtomicU64>,
}

/// Removes a task's name when its future ends, even by panic.
struct Registered {
    live: Arc<Mutex<BTreeMap<u64, String>>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Tasks {
    pub fn new(token: CancellationToken) -> Self {
        Tasks {
            token,
            tracker: TaskTracker::new(),
            live: Arc::default(),
            next: Arc::default(),
        }
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns `fut` as the task `name`. The future should watch [`Tasks::token`] (or a child of it).
    pub fn spawn<F>(&self, name: impl Into<String>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, name.clone());
        let guard = Registered {
            live: self.live.clone(),
            id,
        };
        let span = tracing::info_span!("task", name = %name);
        self.tracker.spawn(
            async move {
                let _guard = guard;
                fut.await;
            }
            .instrument(span),
        );
    }

    /// Names of the tasks still running.
    pub fn live(&self) -> Vec<String> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Cancels every task and waits up to `grace` for them; returns the names of those still running.
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(tasks = ?self.live(), "tasks still running after shutdown");
        }
        self.live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_cancels_and_waits_and_names_stragglers() {
        let tasks = Tasks::new(CancellationToken::new());
        let token = tasks.token().clone();
        tasks.spawn("polite", async move { token.cancelled().await });
        tasks.spawn("stubborn", std::future::pending());
        assert_eq!(tasks.live(), ["polite", "stubborn"]);
        let left = tasks.shutdown(Duration::from_millis(200)).await;
        assert_eq!(left, ["stubborn"]);
    }
}
