//! `raidtorrent-tracker serve` configuration: one TOML file, every field documented, checked by
//! [`Config::validate`] before anything starts. Command-line flags override the common fields.

mod health;
mod limits;
mod objects;
mod packing;
mod secrets;
mod tls;

pub use health::HealthSection;
pub use limits::LimitsConfig;
pub use objects::ObjectConfig;
pub use packing::PackSection;
pub use raidtorrent_proto::size::{parse_limit, parse_size, SizeError};
pub use secrets::{read_secret, read_secrets};
pub use tls::TlsSection;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole configuration of the tracker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address for HTTP announce/scrape, the node reports and the admin API, or "off".
    pub http_listen: String,
    /// Address for BEP 15 UDP announce/scrape, or "off".
    pub udp_listen: String,
    /// The metadata database: a SQLite file (WAL mode; the default for one gateway), or a
    /// `postgres://` URL of a PostgreSQL server (its password is never logged).
    pub db: PathBuf,
    /// Bearer token for `/admin/...`; the admin API is disabled when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Serve announces without a passkey too (a public tracker). When false, every announce
    /// needs the passkey of a registered, unrevoked node and every swarm is private.
    pub open: bool,
    /// Announce policy.
    pub announce: AnnounceConfig,
    /// Reliability records.
    pub records: RecordsConfig,
    /// The object service: object API, control listener and object path (off by default).
    pub objects: ObjectConfig,
    /// Node scores, tiers and their reasons (BEP RT-0003).
    pub scoring: crate::scoring::ScoringConfig,
    /// Connection caps and timeouts of the listeners.
    pub limits: LimitsConfig,
    /// TLS on the control listener, the HTTP tracker and the object API.
    pub tls: TlsSection,
}

/// How often clients announce and how many peers they get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Re-announce interval asked of stock clients, in seconds.
    pub interval_secs: u32,
    /// `min interval` sent to every client, in seconds.
    pub min_interval_secs: u32,
    /// Interval asked of our own nodes (registered passkey and a peer-id prefix below); they
    /// hold thousands of shard torrents and report liveness on the control channel.
    pub node_interval_secs: u32,
    /// Peer-id prefixes that mark our node software (librqbit's is "-rQ").
    pub node_peer_id_prefixes: Vec<String>,
    /// Seconds past its interval that a silent peer stays in swarms and still counts as online.
    pub grace_secs: u32,
    /// Peers returned when the client does not say `numwant`.
    pub default_numwant: u32,
    /// Most peers returned in one answer, whatever `numwant` says.
    pub max_numwant: u32,
    /// Seconds between sweeps that remove expired peers.
    pub sweep_interval_secs: u32,
}

/// How reliability observations are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// Milliseconds between batched writes to the database.
    pub flush_interval_ms: u64,
    /// Observations queued between the announce path and the writer; beyond it they are dropped
    /// (and counted) rather than slowing announces.
    pub channel_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_listen: "0.0.0.0:6969".into(),
            udp_listen: "0.0.0.0:6969".into(),
            db: PathBuf::from("raidtorrent-tracker.db"),
            admin_token: None,
            open: false,
            announce: AnnounceConfig::default(),
            records: RecordsConfig::default(),
            objects: ObjectConfig::default(),
            scoring: crate::scoring::ScoringConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsSection::default(),
        }
    }
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            interval_secs: 1800,
            min_interval_secs: 300,
            node_interval_secs: 7200,
            node_peer_id_prefixes: vec!["-rQ".into()],
            grace_secs: 300,
            default_numwant: 50,
            max_numwant: 200,
            sweep_interval_secs: 60,
        }
    }
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            flush_interval_ms: 1000,
            channel_capacity: 262_144,
        }
    }
}

/// The default configuration with comments, printed by `--print-config`.
pub const DEFAULT_TOML: &str = r#"# raidtorrent-tracker configuration. Every field is optional; shown are the defaults.

# Address for HTTP announce/scrape, the node reports and the admin API, or "off".
http_listen = "0.0.0.0:6969"
# Address for BEP 15 UDP announce/scrape, or "off".
udp_listen = "0.0.0.0:6969"
# SQLite file holding the node registry and reliability records (WAL mode).
db = "raidtorrent-tracker.db"
# Bearer token for /admin/...; the admin API is disabled when absent. At least 16 characters.
# admin_token = "change-me-to-a-long-random-string"
# Serve announces without a passkey too (a public tracker). When false, every announce needs the
# passkey of a registered, unrevoked node (/announce/<passkey>) and every swarm is private.
open = false

[announce]
# Re-announce interval asked of stock clients, in seconds.
interval_secs = 1800
# "min interval" sent to every client, in seconds.
min_interval_secs = 300
# Interval asked of our own nodes (registered passkey and a peer-id prefix below).
node_interval_secs = 7200
# Peer-id prefixes that mark our node software (librqbit's is "-rQ").
node_peer_id_prefixes = ["-rQ"]
# Seconds past its interval that a silent peer stays in swarms and still counts as online.
grace_secs = 300
# Peers returned when the client does not say numwant.
default_numwant = 50
# Most peers returned in one answer, whatever numwant says.
max_numwant = 200
# Seconds between sweeps that remove expired peers.
sweep_interval_secs = 60

[records]
# Milliseconds between batched writes of reliability records to the database.
flush_interval_ms = 1000
# Observations queued for the writer (about 130 bytes each); beyond it they are dropped (and
# counted), never waited on.
channel_capacity = 262144

[limits]
# Seconds a client has to send a request's head on an HTTP listener; also how long an idle
# keep-alive connection stays open.
header_timeout_secs = 10
# Seconds a response may wait on a client that stopped reading it.
send_timeout_secs = 30
# Connections the object API holds at once, and from one address (IPv6: one /64). Over a cap a
# connection is closed as soon as it is accepted. Caps are lowered at start to fit the open-file
# limit.
api_connections = 4096
api_connections_per_ip = 256
# Connections the tracker's HTTP listener holds at once, and from one address (a node starting
# with thousands of torrents announces them all at once).
tracker_connections = 16384
tracker_connections_per_ip = 4096
# Control connections that have not authenticated yet, at once and from one address.
control_handshakes = 1024
control_handshakes_per_ip = 64

[tls]
# Serve the control listener, the HTTP tracker and the object API over TLS only (the UDP
# tracker stays as it is). Nodes pin the gateway's certificate; clients trust it or its CA.
enabled = false
# PEM certificate chain (the gateway's own certificate first) and its private key; empty is
# <objects.data_dir>/tls/cert.pem and key.pem. When neither file exists, the gateway creates a
# self-signed certificate there at start and keeps using it (nodes pin it).
cert_file = ""
key_file = ""
# Names and addresses a certificate the gateway creates is valid for, besides localhost,
# 127.0.0.1, ::1 and the addresses of the listeners and of objects.tracker_url. Give the public
# name or address clients and nodes use.
names = []

[objects]
# Address of the object API, or "off" (the service is then a tracker only).
api_listen = "off"
# Keys clients send as "Authorization: Bearer <key>", each at least 16 characters.
api_keys = []
# Accept requests without a key. Only for a local devnet: anyone who reaches the API can read and
# write every bucket. Required when api_keys is empty.
open_api = false
# Address of the S3 API, or "off". Requests are signed (AWS Signature Version 4) with access keys
# made by `raidtorrent-tracker s3-key add` or POST /admin/s3-keys.
s3_listen = "off"
# Domain under which buckets are also reached virtual-host style (<bucket>.<s3_domain>); empty:
# path style only.
s3_domain = ""
# Address of the control listener nodes dial.
control_listen = "0.0.0.0:6970"
# The tracker's base URL as nodes reach it, e.g. "http://gateway.example.org:6969" (https:// with
# tls.enabled). Empty: taken from http_listen (right on one machine).
tracker_url = ""
# Address the gateway's own BitTorrent session listens on, reachable by the nodes.
swarm_ip = "127.0.0.1"
# Directory for staged shards and the master key. Keep it safe: the master key decrypts every
# stored object.
data_dir = "raidtorrent-gateway"
# Largest object accepted, in bytes.
max_object_size = 68719476736
# Seconds a node may take to fetch and confirm a shard.
hold_timeout_secs = 300
# Seconds a node may take to confirm it dropped a shard.
drop_timeout_secs = 30
# Seconds a rebuild may wait for a whole shard; a read waits for holders and for each piece up to this, at most 30.
fetch_timeout_secs = 120
# Shards a rebuild fetches beyond k, so the slowest node does not set the pace (reads hedge late pieces instead).
read_hedge = 1
# Target plaintext bytes per segment.
segment_target = 33554432
# An object bigger than group_size bytes is written as a run of groups, each its own set of shard
# torrents, placed while the next group is encoded: an upload stages at most about
# (groups_in_flight + 1) x group_size x (k + m) / k bytes on the gateway's disk, whatever its size.
group_size = 67108864
groups_in_flight = 2
# Seconds between runs of the collector that drops unreferenced shards from nodes.
collect_interval_secs = 60
# Uploads served at once; more wait up to queue_timeout_secs, then get 503 SlowDown. Each
# upload holds about segment_target x (2k + m) / k bytes of memory while it encodes (it reads
# the next segment while it codes one).
max_puts = 16
# Swarm reads served at once.
max_gets = 64
# Bytes of memory all swarm reads together may hold (pieces fetched ahead of the decoder and its
# buffers; a whole read of an object with 32 MiB segments takes about 200 MiB, a 64 KiB read well
# under 1 MiB). A read waits up to queue_timeout_secs for its share, then gets 503 SlowDown.
read_memory = 1073741824
# Seconds a request waits for an upload's or read's turn.
queue_timeout_secs = 10
# Seconds an upload may go without sending a byte before it fails.
body_timeout_secs = 30
# Seconds a node must have been connected before the collector drops the copies it reports that
# the gateway does not track (copies of uploads a crash cut short, holds that timed out).
reconcile_settle_secs = 60
# Seconds a multipart upload (S3) may stay unfinished before the collector aborts it and its
# parts leave the nodes.
upload_expiry_secs = 604800
# Gateways sharing one database: seconds the cloud-wide work (health, audits, collection,
# packing) stays with a gateway that stopped renewing its lease before another takes it over,
# and a gateway may stay silent before its uploads in flight count as gone. Renewed every third
# of it; the gateways' clocks must agree to well within it.
lease_secs = 30
# Whether the gateway carries object bytes itself. false: object PUT and GET on the object API,
# and PutObject, GetObject, CopyObject and multipart uploads on the S3 API, are refused (403,
# DataPathOff / AccessDenied) before a byte is read or staged; clients store and read with
# `raidtorrent-peer put/get`, which encrypt and code objects on their own machine and move the
# shards to and from the nodes (RT-0004). Listing, HEAD, DELETE, placements (/_place),
# capability reads (/_cap), audits and repair go on (repair moves ciphertext between nodes).
data_path = true

[objects.default_policy]
# Policy of buckets created without one: any k of k + m shards rebuild an object, every shard
# has `copies` copies on different nodes, `high_share` of them on high-reliability nodes, and
# objects up to inline_max bytes stay in the database.
k = 4
m = 2
copies = 2
high_share = 0.0
inline_max = 4096

[objects.policy_limits]
# The bucket policies clients may ask for (the default policy above is the operator's own):
# at most max_shards shards (k + m), max_copies copies of each, and max_expansion bytes stored
# per byte of object ((k + m) / k x copies).
max_shards = 64
max_copies = 4
max_expansion = 6.0

[objects.packing]
# Objects above their bucket's inline_max and up to max_object_size bytes are packed: they wait
# in the database (sealed, as small objects are kept) until target_size bytes of them, or the
# oldest linger_secs old, make one pack, an ordinary swarm object. So 1,000 small objects cost a
# few torrents on the nodes, not thousands. 0 turns packing off.
max_object_size = 1048576
target_size = 16777216
linger_secs = 30
# Most bytes waiting at once; past it small objects go to the swarm on their own.
max_waiting_bytes = 268435456
# A pack whose live bytes fall below this share of its size is rewritten without the dead ones.
compact_below = 0.5

[scoring]
# Node scores, tiers (high, low, suspended, disqualified) and their reasons; see
# bep-spec/bep-rt-0003-node-reliability.md. Seconds of history behind the uptime figure
# (extended back to the UTC midnight before, clipped to the node's age).
window_secs = 604800
# Seconds after a node was last seen that still count as online (the records credit a silence
# when the next announce ends it); announce.node_interval_secs + announce.grace_secs.
online_allowance_secs = 7500
# Seconds counted as "recent" for failed and timed-out audits in the reasons.
recent_secs = 86400
# Seconds of audit, transfer and per-day uptime history kept; older rows are pruned.
history_secs = 2592000
# Forgetting factor of the audit reputation, in (0, 1]: an audit n audits ago weighs lambda^n.
audit_lambda = 0.98
# Weight of a passed or failed audit, and of a timed-out one (added to beta only).
audit_weight = 1.0
timeout_weight = 0.5
# Alpha and beta before any audit.
initial_alpha = 1.0
initial_beta = 0.0
# Audits needed before the reputation can suspend or disqualify a node.
min_audits = 20
# Disqualified (until an operator requalifies it) when the audit integrity (failed audits only)
# falls below this; suspended while the reputation (timeouts included) is below the next.
disqualify_below = 0.75
suspend_reputation_below = 0.9
# Suspended while uptime over the window is below this (once past the vetting period).
suspend_uptime_below = 0.6
# Suspended while the transfer success EWMA is below this, after min_transfers transfers.
suspend_transfers_below = 0.5
min_transfers = 5
# Smoothing factor of the transfer success and speed EWMAs, in (0, 1].
transfer_alpha = 0.1
# A node is vetted once first seen this many seconds ago and it passed this many audits; until
# then it is at most tier low.
vetting_secs = 259200
vetting_audits = 10
# Vetted nodes that are neither suspended nor disqualified are high at or above this score.
high_at_least = 0.9
# Transfer speed (bytes/s) that earns the full speed component.
good_speed_bps = 1048576.0
# Hours of the day whose availability is below this are named in the reasons.
poor_hour_below = 0.5

[scoring.weights]
# Weights of the score's components (divided by their sum; speed is left out until known).
uptime = 0.4
audits = 0.35
transfers = 0.15
speed = 0.1
"#;

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn listen_addr(field: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if v == "off" {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        ConfigError(format!(
            "{field} = {v:?} is not an address like \"0.0.0.0:6969\" or \"off\""
        ))
    })
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// The HTTP listen address, `None` when off.
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        listen_addr("http_listen", &self.http_listen)
    }

    /// The UDP listen address, `None` when off.
    pub fn udp_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        listen_addr("udp_listen", &self.udp_listen)
    }

    /// Checks every field; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.http_addr()?.is_none() && self.udp_addr()?.is_none() {
            return err("http_listen and udp_listen are both \"off\": nothing to serve".into());
        }
        if self.db.as_os_str().is_empty() {
            return err("db must name a file".into());
        }
        if let Some(t) = &self.admin_token {
            if t.len() < 16 {
                return err("admin_token must be at least 16 characters".into());
            }
        }
        let a = &self.announce;
        if a.min_interval_secs == 0 {
            return err("announce.min_interval_secs must be at least 1".into());
        }
        if a.interval_secs < a.min_interval_secs || a.node_interval_secs < a.min_interval_secs {
            return err(format!(
                "announce.interval_secs ({}) and announce.node_interval_secs ({}) must not be below announce.min_interval_secs ({})",
                a.interval_secs, a.node_interval_secs, a.min_interval_secs
            ));
        }
        if a.node_peer_id_prefixes
            .iter()
            .any(|p| p.is_empty() || p.len() > 20)
        {
            return err("announce.node_peer_id_prefixes entries must be 1 to 20 bytes".into());
        }
        if a.max_numwant == 0 || a.max_numwant > 1000 {
            return err("announce.max_numwant must be in 1..=1000".into());
        }
        if a.default_numwant > a.max_numwant {
            return err(format!(
                "announce.default_numwant ({}) must not exceed announce.max_numwant ({})",
                a.default_numwant, a.max_numwant
            ));
        }
        if a.sweep_interval_secs == 0 {
            return err("announce.sweep_interval_secs must be at least 1".into());
        }
        if self.records.flush_interval_ms == 0 {
            return err("records.flush_interval_ms must be at least 1".into());
        }
        if self.records.channel_capacity == 0 {
            return err("records.channel_capacity must be at least 1".into());
        }
        self.objects.validate().map_err(ConfigError)?;
        self.scoring.validate().map_err(ConfigError)?;
        self.limits.validate().map_err(ConfigError)?;
        self.tls.validate().map_err(ConfigError)?;
        if self.tls.enabled && self.objects.tracker_url.starts_with("http://") {
            return err(
                "tls.enabled: the tracker speaks TLS only, so objects.tracker_url must start \
                 with https://"
                    .into(),
            );
        }
        let objects_on = self.objects.api_addr().map_err(ConfigError)?.is_some();
        if objects_on && self.http_addr()?.is_none() {
            return err("objects.api_listen needs http_listen: nodes announce over HTTP".into());
        }
        if objects_on && self.open {
            return err(
                "open = true (a public tracker) and the object service (objects.api_listen) \
                 cannot run together: strangers' announces would mix into the nodes' swarms"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_is_the_default() {
        assert_eq!(Config::from_toml(DEFAULT_TOML).unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn round_trips_through_toml() {
        let mut c = Config {
            admin_token: Some("0123456789abcdef".into()),
            open: true,
            ..Config::default()
        };
        c.announce.node_peer_id_prefixes.push("-RT".into());
        c.scoring.window_secs = 3600;
        c.scoring.audit_lambda = 0.9;
        c.scoring.weights.speed = 0.0;
        let text = toml::to_string(&c).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Config::from_toml("htp_listen = \"1.2.3.4:5\"").unwrap_err();
        assert!(e.0.contains("unknown field `htp_listen`"), "{e}");
        let e = Config::from_toml("[announce]\nintervall_secs = 5").unwrap_err();
        assert!(e.0.contains("unknown field `intervall_secs`"), "{e}");
        let e = Config::from_toml("[scoring]\nwindow = 5").unwrap_err();
        assert!(e.0.contains("unknown field `window`"), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let check = |edit: fn(&mut Config), needle: &str| {
            let mut c = Config::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.0.contains(needle), "{e} should mention {needle}");
        };
        check(|c| c.http_listen = "nope".into(), "http_listen");
        check(
            |c| {
                c.http_listen = "off".into();
                c.udp_listen = "off".into()
            },
            "both \"off\"",
        );
        check(|c| c.admin_token = Some("short".into()), "admin_token");
        check(
            |c| c.announce.interval_secs = 10,
            "announce.interval_secs (10)",
        );
        check(|c| c.announce.max_numwant = 0, "max_numwant");
        check(|c| c.announce.default_numwant = 500, "default_numwant");
        check(|c| c.records.flush_interval_ms = 0, "flush_interval_ms");
        check(
            |c| c.announce.node_peer_id_prefixes = vec![String::new()],
            "node_peer_id_prefixes",
        );
        check(|c| c.scoring.audit_lambda = 0.0, "scoring.audit_lambda");
        check(|c| c.scoring.high_at_least = 1.5, "scoring.high_at_least");
        check(
            |c| c.limits.api_connections_per_ip = 0,
            "api_connections_per_ip",
        );
        check(|c| c.limits.header_timeout_secs = 0, "header_timeout_secs");
        check(
            |c| {
                c.open = true;
                c.objects.api_listen = "127.0.0.1:9000".into();
                c.objects.api_keys = vec!["0123456789abcdef0123".into()];
            },
            "cannot run together",
        );
    }
}
