//! `[limits]`: what strangers may hold open on each listener and for how long.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::{ConnCaps, HttpLimits};

/// Connection caps and timeouts of the listeners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Seconds a client has to send a request's head on an HTTP listener; also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout_secs: u64,
    /// Seconds a response may wait on a client that stopped reading it.
    pub send_timeout_secs: u64,
    /// Connections the object API holds at once.
    pub api_connections: usize,
    /// Connections the object API holds from one address (IPv6: one /64).
    pub api_connections_per_ip: usize,
    /// Connections the tracker's HTTP listener holds at once.
    pub tracker_connections: usize,
    /// Connections the tracker's HTTP listener holds from one address (IPv6: one /64).
    pub tracker_connections_per_ip: usize,
    /// Control connections not yet authenticated, at once.
    pub control_handshakes: usize,
    /// Control connections not yet authenticated, from one address (IPv6: one /64).
    pub control_handshakes_per_ip: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_timeout_secs: 10,
            send_timeout_secs: 30,
            api_connections: 4096,
            api_connections_per_ip: 256,
            tracker_connections: 16384,
            tracker_connections_per_ip: 4096,
            control_handshakes: 1024,
            control_handshakes_per_ip: 64,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.header_timeout_secs == 0 || self.send_timeout_secs == 0 {
            return Err(
                "limits.header_timeout_secs and limits.send_timeout_secs must be at least 1".into(),
            );
        }
        for (name, caps) in [
            ("api_connections", self.api()),
            ("tracker_connections", self.tracker()),
            ("control_handshakes", self.control()),
        ] {
            if caps.per_ip == 0 || caps.per_ip > caps.max {
                return Err(format!(
                    "limits.{name}_per_ip must be in 1..=limits.{name} ({})",
                    caps.max
                ));
            }
        }
        Ok(())
    }

    /// Lowers the connection caps, in proportion, so that together they leave a quarter of
    /// `open_files` (at least 256) for the database, the session's torrents and staged files.
    /// Returns true if anything was lowered.
    pub fn fit_to(&mut self, open_files: u64) -> bool {
        let reserve = (open_files / 4).max(256);
        let budget = open_files.saturating_sub(reserve).max(3) as usize;
        let total = self.api_connections + self.tracker_connections + self.control_handshakes;
        if total <= budget {
            return false;
        }
        let scale = |n: usize| (n * budget / total).max(1);
        self.api_connections = scale(self.api_connections);
        self.tracker_connections = scale(self.tracker_connections);
        self.control_handshakes = scale(self.control_handshakes);
        self.api_connections_per_ip = self.api_connections_per_ip.min(self.api_connections);
        self.tracker_connections_per_ip = self
            .tracker_connections_per_ip
            .min(self.tracker_connections);
        self.control_handshakes_per_ip =
            self.control_handshakes_per_ip.min(self.control_handshakes);
        true
    }

    pub fn api(&self) -> ConnCaps {
        ConnCaps {
            max: self.api_connections,
            per_ip: self.api_connections_per_ip,
        }
    }

    pub fn tracker(&self) -> ConnCaps {
        ConnCaps {
            max: self.tracker_connections,
            per_ip: self.tracker_connections_per_ip,
        }
    }

    pub fn control(&self) -> ConnCaps {
        ConnCaps {
            max: self.control_handshakes,
            per_ip: self.control_handshakes_per_ip,
        }
    }

    /// The object API's HTTP limits: uploads are large, so their pace is judged by the gateway.
    pub fn api_http(&self) -> HttpLimits {
        self.http(self.api(), false)
    }

    /// The tracker's HTTP limits: every request is small.
    pub fn tracker_http(&self) -> HttpLimits {
        self.http(self.tracker(), true)
    }

    fn http(&self, caps: ConnCaps, small_bodies: bool) -> HttpLimits {
        HttpLimits {
            caps,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            send_timeout: Duration::from_secs(self.send_timeout_secs),
            small_bodies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_open_file_limit() {
        let mut l = LimitsConfig::default();
        assert!(!l.fit_to(1 << 20));
        assert_eq!(l, LimitsConfig::default());
        assert!(l.fit_to(1024));
        let total = l.api_connections + l.tracker_connections + l.control_handshakes;
        assert!(total <= 768, "{l:?}");
        assert!(l.api_connections > 0 && l.control_handshakes > 0);
        l.validate().unwrap();
    }
}
