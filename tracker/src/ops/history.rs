//! The dashboard's charts over time: the cloud's counters sampled every [`INTERVAL`], the last
//! hour kept in memory (a restart starts a new history; Prometheus keeps the long one).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::control::ControlHub;
use crate::metrics::metrics;
use crate::registry::{unix_now, Registry};

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: an hour.
pub const KEPT: usize = 720;

/// One sample; counters are cumulative since the gateway started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub repairs: u64,
    pub audits: u64,
    pub nodes: usize,
    pub connected: usize,
}

/// The samples, oldest first; cheap to clone.
#[derive(Clone, Default)]
pub struct History {
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

impl History {
    fn push(&self, s: Sample) {
        let mut q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(s);
    }

    pub fn json(&self) -> serde_json::Value {
        let q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "interval_secs": INTERVAL.as_secs(),
            "samples": q.iter().collect::<Vec<_>>(),
        })
    }

    /// Samples every [`INTERVAL`] until `stop` resolves, and forgets expired inspector tokens
    /// every hour.
    pub async fn run(
        self,
        hub: ControlHub,
        registry: Registry,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        for n in 0usize.. {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            // Hourly, from the first sample on: expired inspector tokens leave the database.
            if n % KEPT == 0 {
                if let Err(e) = registry.forget_expired_inspectors().await {
                    tracing::warn!(error = %e, "forgetting expired inspector tokens");
                }
            }
            let nodes = match registry.nodes().await {
                Ok(n) => n.iter().filter(|n| n.revoked_at.is_none()).count(),
                Err(e) => {
                    tracing::warn!(error = %e, "history sample: reading nodes");
                    continue;
                }
            };
            let m = metrics();
            self.push(Sample {
                at: unix_now(),
                bytes_in: m.bytes_total("in"),
                bytes_out: m.bytes_total("out"),
                repairs: m.repairs_total(),
                audits: m.audits_total(),
                // The gateway's own seeder is registered as a node (it never dials the hub).
                nodes: nodes.saturating_sub(1),
                connected: hub.connected().len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_latest_hour() {
        let h = History::default();
        for at in 0..(KEPT as i64 + 10) {
            h.push(Sample {
                at,
                bytes_in: 0,
                bytes_out: 0,
                repairs: 0,
                audits: 0,
                nodes: 0,
                connected: 0,
            });
        }
        let v = h.json();
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0]["at"], 10);
    }
}
