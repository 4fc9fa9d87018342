//! The status file (`status.json` in the data directory) the running node rewrites every few seconds,
//! and its rendering for `raidtorrent-peer status`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::size::ByteSize;

pub const STATUS_VERSION: u32 = 1;
/// How many recent directives the status keeps.
pub const RECENT: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub pid: u32,
    /// Unix seconds of the last rewrite.
    pub updated_at: u64,
    pub zone: String,
    pub listen: String,
    pub quota: u64,
    pub used: u64,
    pub shards: Vec<ShardStatus>,
    pub gateways: Vec<GatewayStatus>,
    pub recent: VecDeque<DirectiveRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    pub info_hash: String,
    pub length: u64,
    /// `held` or `fetching`.
    pub state: String,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub name: String,
    pub control: String,
    /// `connecting`, `connected` or `waiting`.
    pub state: String,
    /// Unix seconds since the state began.
    pub since: u64,
    pub connects: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectiveRecord {
    pub at: u64,
    pub gateway: String,
    pub directive: String,
    pub info_hash: Option<String>,
    /// `ack`, `refuse <code>: <text>`, or `pending`.
    pub outcome: String,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Status {
    pub fn record(&mut self, r: DirectiveRecord) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
    }

    pub fn read(path: &Path) -> anyhow::Result<Status> {
        let bytes = std::fs::read(path)?;
        let status: Status = serde_json::from_slice(&bytes)?;
        anyhow::ensure!(
            status.version == STATUS_VERSION,
            "status file version {} (this tool reads {STATUS_VERSION})",
            status.version
        );
        Ok(status)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let held = self.shards.iter().filter(|s| s.state == "held").count();
        let age = unix_now().saturating_sub(self.updated_at);
        let _ = writeln!(
            out,
            "node pid {} (status written {age}s ago), zone {:?}, data listener {}",
            self.pid, self.zone, self.listen
        );
        let _ = writeln!(
            out,
            "space: {} used of {} quota ({} held, {} fetching)",
            ByteSize(self.used).human(),
            ByteSize(self.quota).human(),
            held,
            self.shards.len() - held
        );
        let _ = writeln!(out, "gateways:");
        for g in &self.gateways {
            let _ = writeln!(
                out,
                "  {} ({}): {} for {}s, {} connects{}",
                g.name,
                g.control,
                g.state,
                unix_now().saturating_sub(g.since),
                g.connects,
                g.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(out, "shards:");
        for s in &self.shards {
            let _ = writeln!(
                out,
                "  {} {:>10} {:<8} {}",
                s.info_hash,
                ByteSize(s.length).human(),
                s.state,
                s.owners.join(",")
            );
        }
        let _ = writeln!(out, "recent directives:");
        for r in &self.recent {
            let _ = writeln!(
                out,
                "  {} {} {} {} -> {}",
                r.at,
                r.gateway,
                r.directive,
                r.info_hash.as_deref().unwrap_or("-"),
                r.outcome
            );
        }
        out
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::store::write_atomically(path, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_keeps_the_last_directives() {
        let mut s = Status {
            version: STATUS_VERSION,
            quota: 1 << 30,
            ..Status::default()
        };
        for i in 0..30 {
            s.record(DirectiveRecord {
                at: i,
                gateway: "g".into(),
                directive: "hold".into(),
                info_hash: None,
                outcome: "ack".into(),
            });
        }
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent.front().unwrap().at, 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        s.write(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), s);
        assert!(s.render().contains("0 B used of 1.0 GiB quota"));
    }
}
