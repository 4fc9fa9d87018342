//! The task that rewrites `status.json` every few seconds and whenever the held set changes.

use std::sync::Arc;
use std::time::Duration;

use crate::node::Node;

pub(crate) async fn run(node: Arc<Node>) {
    let path = node.store.status_path();
    let mut changed = node.changed.subscribe();
    let mut tick =
        tokio::time::interval(Duration::from_secs(node.config.limits.status_interval_secs));
    let token = node.tasks.token().clone();
    loop {
        if let Err(e) = node.snapshot_status().write(&path) {
            tracing::warn!("writing {}: {e:#}", path.display());
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
            r = changed.changed() => if r.is_err() { return },
        }
    }
}
