//! Settings of the control listener (the `[control]` table of the gateway's configuration).

use super::PRE_AUTH_MAX_FRAME;
use crate::net::ConnCaps;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Settings of the control listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Milliseconds a new connection has to complete the BEP 3 handshake and authenticate
    /// (RT-0002 suggests closing after 30 s).
    pub handshake_timeout_ms: u64,
    /// Seconds between keep-alives, told to nodes in `welcome`; a connection silent for three
    /// intervals is closed.
    pub keepalive_interval_secs: u64,
    /// Seconds between node reports, told to nodes in `welcome`.
    pub report_interval_secs: u64,
    /// Largest frame accepted from an authenticated node, in bytes (at most 34 MiB, the BEP's limit).
    pub max_frame: usize,
    /// Extended id we receive placement messages on (1..=255).
    pub ext_id: u8,
    /// Directives queued per connection before senders wait for room.
    pub queue_depth: usize,
    /// Reports buffered per subscriber before a slow subscriber starts missing some.
    pub report_buffer: usize,
    /// Connections that have not authenticated yet, at once and from one address; over a cap a
    /// connection is closed as soon as it is accepted.
    pub handshakes: ConnCaps,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            handshake_timeout_ms: 30_000,
            keepalive_interval_secs: raidtorrent_proto::DEFAULT_KEEPALIVE_INTERVAL,
            report_interval_secs: raidtorrent_proto::DEFAULT_REPORT_INTERVAL,
            max_frame: raidtorrent_proto::MAX_FRAME,
            ext_id: 3,
            queue_depth: 256,
            report_buffer: 1024,
            handshakes: ConnCaps {
                max: 1024,
                per_ip: 64,
            },
        }
    }
}

impl ControlConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.handshake_timeout_ms == 0 {
            return Err("control.handshake_timeout_ms must be at least 1".into());
        }
        if self.keepalive_interval_secs == 0 || self.keepalive_interval_secs > 3600 {
            return Err("control.keepalive_interval_secs must be between 1 and 3600".into());
        }
        if self.report_interval_secs == 0 {
            return Err("control.report_interval_secs must be at least 1".into());
        }
        if self.max_frame < PRE_AUTH_MAX_FRAME || self.max_frame > raidtorrent_proto::MAX_FRAME {
            return Err(format!(
                "control.max_frame must be between {PRE_AUTH_MAX_FRAME} and {}",
                raidtorrent_proto::MAX_FRAME
            ));
        }
        if self.ext_id == 0 {
            return Err("control.ext_id must be between 1 and 255".into());
        }
        if self.queue_depth == 0 || self.report_buffer == 0 {
            return Err("control.queue_depth and control.report_buffer must be at least 1".into());
        }
        Ok(())
    }

    pub(super) fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval_secs)
    }
}
