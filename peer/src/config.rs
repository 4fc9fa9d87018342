//! The node's configuration: one TOML file, every field documented; the common fields also come from
//! flags and environment variables (see `main.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::size::ByteSize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for shard data (`shards/`), their metainfo (`torrents/`), the held set
    /// (`held.json` and its journal `held.log`) and the status file (`status.json`). Created if
    /// missing.
    pub data_dir: PathBuf,
    /// Disk space donated to the cloud, e.g. "10GiB". Holds beyond it are refused.
    pub quota: ByteSize,
    /// Location label, e.g. "eu-west/paris/home-3". Gateways spread copies by the zone their
    /// operator registered for this node and refuse a node that claims another; empty takes it.
    #[serde(default)]
    pub zone: String,
    /// Address the BitTorrent data listener binds. Give every node on one machine its own address
    /// (127.0.0.2, 127.0.0.3, ...). Port 0 picks a free port at start.
    pub listen: SocketAddr,
    /// Gateways to join; the node keeps one control connection to each.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewayConfig>,
    /// Limits and timings.
    #[serde(default)]
    pub limits: Limits,
    /// Announce every shard held to its tracker, as plain BitTorrent clients do. Off by default:
    /// gateways name a shard's holders from the nodes' reports (BEP RT-0002 "Peers from
    /// reports"). Only for a gateway too old to do so.
    #[serde(default)]
    pub announce_held: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Name used in logs, status and to tell gateways apart; defaults to the control address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The gateway's control address, `host:port`.
    pub control: String,
    /// Gateways that share one database are one cloud: give them the same `cloud` (and the
    /// same node id and passkey). A copy held for one is held for all of them: each is told of
    /// every copy, and any of them may drop it. Absent: the gateway is a cloud of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// The node id the gateway's operator registered this node under.
    pub node_id: u64,
    /// The node's passkey at this gateway (32 lowercase hex digits).
    pub passkey: String,
    /// The gateway's certificate (PEM), from its operator, when the gateway serves TLS. The
    /// control connection then runs inside TLS and accepts only this certificate's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
}

impl GatewayConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.control)
    }

    /// Whom the node holds copies for: the gateway's cloud, or the gateway alone.
    pub fn owner(&self) -> &str {
        self.cloud.as_deref().unwrap_or_else(|| self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Download rate limit for the whole node, bytes per second; absent is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_bps: Option<u32>,
    /// Upload rate limit for the whole node, bytes per second; absent is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_bps: Option<u32>,
    /// Seconds to wait for a gateway's TCP connect, handshake and welcome.
    pub connect_timeout_secs: u64,
    /// First reconnect delay ceiling, in milliseconds (doubles per failed attempt).
    pub reconnect_base_ms: u64,
    /// Largest reconnect delay, in seconds.
    pub reconnect_max_secs: u64,
    /// Seconds a hold may take to fetch its metainfo from a URL.
    pub metainfo_fetch_timeout_secs: u64,
    /// Seconds a shard's fetch may go without a byte arriving before it fails (its sources are
    /// gone): the partial copy is deleted and the gateway told, instead of waiting for ever.
    pub fetch_stall_secs: u64,
    /// Seconds between rewrites of the status file.
    pub status_interval_secs: u64,
    /// Most shard data files open at once, whatever the number of shards held: files are opened
    /// when a peer or a fetch needs them and the least recently used closed first. Lowered at
    /// start to fit under the process's open-file limit, leaving room for connections.
    pub open_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            download_bps: None,
            upload_bps: None,
            connect_timeout_secs: 10,
            reconnect_base_ms: 1000,
            reconnect_max_secs: 60,
            metainfo_fetch_timeout_secs: 30,
            fetch_stall_secs: 300,
            status_interval_secs: 5,
            open_files: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("quota must be more than zero")]
    ZeroQuota,
    #[error("gateway {0:?}: control address must be host:port")]
    ControlAddress(String),
    #[error("gateway {0:?}: passkey must be 32 lowercase hex digits")]
    Passkey(String),
    #[error("gateway {0:?}: node_id must be positive")]
    NodeId(String),
    #[error("two gateways are named {0:?}")]
    DuplicateGateway(String),
    #[error("limits.{0} must be more than zero")]
    ZeroLimit(&'static str),
    #[error("{0:?} is not a gateway: write NODE_ID:PASSKEY@HOST:PORT")]
    GatewayFlag(String),
    #[error(
        "the gateways of cloud {0:?} share one database: give them the same node_id and \
         passkey, and no other gateway that name"
    )]
    Cloud(String),
}

impl Config {
    /// Who owns what a held set on disk says `owner` owns: a gateway's name stands for its cloud
    /// once the gateway is given one (copies held before that stay held, for the cloud).
    pub fn owner_named(&self, owner: &str) -> String {
        let gateway = self.gateways.iter().find(|g| g.name() == owner);
        gateway.map_or(owner, |g| g.owner()).to_owned()
    }

    /// Every gateway of a cloud knows the node by the same id and passkey, and a cloud's name
    /// is no lone gateway's: what one owner holds must be what all its gateways see.
    fn check_clouds(&self) -> Result<(), ConfigError> {
        let mut owners = std::collections::BTreeMap::new();
        for g in &self.gateways {
            let identity = (g.cloud.is_some(), g.node_id, g.passkey.as_str());
            let first = *owners.entry(g.owner()).or_insert(identity);
            if first != identity {
                return Err(ConfigError::Cloud(g.owner().to_owned()));
            }
        }
        Ok(())
    }

    /// Checks what serde cannot: ranges and formats, with messages that say what to write.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.quota.0 == 0 {
            return Err(ConfigError::ZeroQuota);
        }
        let mut names = std::collections::BTreeSet::new();
        for g in &self.gateways {
            let name = g.name().to_owned();
            let (host, port) = g.control.rsplit_once(':').unwrap_or(("", ""));
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(ConfigError::ControlAddress(name));
            }
            if g.passkey.len() != 32
                || !g
                    .passkey
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(ConfigError::Passkey(name));
            }
            if g.node_id == 0 {
                return Err(ConfigError::NodeId(name));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::DuplicateGateway(name));
            }
        }
        self.check_clouds()?;
        let l = &self.limits;
        for (value, name) in [
            (l.connect_timeout_secs, "connect_timeout_secs"),
            (l.reconnect_base_ms, "reconnect_base_ms"),
            (l.reconnect_max_secs, "reconnect_max_secs"),
            (l.metainfo_fetch_timeout_secs, "metainfo_fetch_timeout_secs"),
            (l.fetch_stall_secs, "fetch_stall_secs"),
            (l.status_interval_secs, "status_interval_secs"),
            (l.open_files as u64, "open_files"),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

/// Parses `NODE_ID:PASSKEY@HOST:PORT` (the `--gateway` flag).
pub fn parse_gateway_flag(s: &str) -> Result<GatewayConfig, ConfigError> {
    let bad = || ConfigError::GatewayFlag(s.to_owned());
    let (cred, control) = s.split_once('@').ok_or_else(bad)?;
    let (id, passkey) = cred.split_once(':').ok_or_else(bad)?;
    Ok(GatewayConfig {
        name: None,
        control: control.to_owned(),
        cloud: None,
        node_id: id.parse().map_err(|_| bad())?,
        passkey: passkey.to_owned(),
        tls_cert: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn sample() -> Config {
        Config {
            data_dir: "/var/lib/raidtorrent".into(),
            quota: ByteSize(10 << 30),
            zone: "eu-west/paris".into(),
            listen: "127.0.0.2:6881".parse().unwrap(),
            gateways: vec![GatewayConfig {
                name: Some("home".into()),
                control: "gateway.example:7000".into(),
                cloud: None,
                node_id: 7,
                passkey: KEY.into(),
                tls_cert: Some("/etc/raidtorrent/home-gateway.pem".into()),
            }],
            limits: Limits {
                upload_bps: Some(1 << 20),
                ..Limits::default()
            },
            announce_held: false,
        }
    }

    #[test]
    fn toml_round_trips() {
        let c = sample();
        let text = c.to_toml();
        assert!(text.contains("quota = \"10GiB\""), "{text}");
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), c);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = sample().to_toml().replace("zone =", "zoen =");
        let err = toml::from_str::<Config>(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field `zoen`"), "{err}");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = sample();
        c.gateways[0].passkey = "short".into();
        assert_eq!(c.validate(), Err(ConfigError::Passkey("home".into())));
        let mut c = sample();
        c.gateways[0].control = "gateway.example".into();
        assert_eq!(
            c.validate(),
            Err(ConfigError::ControlAddress("home".into()))
        );
        let mut c = sample();
        c.gateways.push(c.gateways[0].clone());
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateGateway("home".into()))
        );
        let mut c = sample();
        c.quota = ByteSize(0);
        assert_eq!(c.validate(), Err(ConfigError::ZeroQuota));
        let mut c = sample();
        c.limits.status_interval_secs = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit("status_interval_secs"))
        );
        let mut c = sample();
        c.limits.open_files = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroLimit("open_files")));
        let mut c = sample();
        c.limits.fetch_stall_secs = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroLimit("fetch_stall_secs"))
        );
    }

    #[test]
    fn the_gateways_of_a_cloud_share_one_identity_and_own_together() {
        let mut c = sample();
        let mut second = c.gateways[0].clone();
        second.name = Some("home-2".into());
        second.control = "gateway-2.example:7000".into();
        c.gateways.push(second);
        assert_eq!(c.gateways[0].owner(), "home");
        for g in &mut c.gateways {
            g.cloud = Some("home-cloud".into());
        }
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.gateways[1].owner(), "home-cloud");
        let text = c.to_toml();
        assert!(text.contains("cloud = \"home-cloud\""), "{text}");

        let mut other_id = c.clone();
        other_id.gateways[1].node_id = 8;
        assert_eq!(
            c.owner_named("home"),
            "home-cloud",
            "copies held before the cloud"
        );
        assert_eq!(c.owner_named("elsewhere"), "elsewhere");
        let cloud = Err(ConfigError::Cloud("home-cloud".into()));
        assert_eq!(other_id.validate(), cloud);
        let mut named_alike = c.clone();
        named_alike.gateways[1].cloud = None;
        named_alike.gateways[1].name = Some("home-cloud".into());
        assert_eq!(named_alike.validate(), cloud);
    }

    #[test]
    fn gateway_flags_parse() {
        let g = parse_gateway_flag(&format!("7:{KEY}@127.0.0.1:7000")).unwrap();
        assert_eq!(
            (g.node_id, g.passkey.as_str(), g.control.as_str()),
            (7, KEY, "127.0.0.1:7000")
        );
        assert!(parse_gateway_flag("7@host:1").is_err());
    }
}
