//! The `[objects]` section of the service configuration: the object API, the control listener
//! nodes dial, and the gateway's object path. Off unless `api_listen` names an address.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HealthSection, PackSection};
use crate::api::ApiAuth;
use crate::gateway::{BucketPolicy, GatewayConfig, PolicyLimits};
use crate::scoring::ScoringConfig;

/// Settings of the object service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectConfig {
    /// Address of the object API, or "off" (the service is then a tracker only).
    pub api_listen: String,
    /// Keys clients send as `Authorization: Bearer <key>`, each at least 16 characters.
    pub api_keys: Vec<String>,
    /// Accept requests without a key. Only for a local devnet: anyone who reaches the API can
    /// read and write every bucket. Required when `api_keys` is empty.
    pub open_api: bool,
    /// Address of the S3 API, or "off". Requests are signed with access keys (`s3-key add`).
    pub s3_listen: String,
    /// Domain under which buckets are also reached virtual-host style
    /// (`<bucket>.<s3_domain>`); empty: path style only.
    pub s3_domain: String,
    /// Address of the control listener nodes dial.
    pub control_listen: String,
    /// The tracker's base URL as nodes reach it, put in the torrents nodes are handed, e.g.
    /// "http://gateway.example.org:6969". Empty: taken from http_listen (right on one machine).
    pub tracker_url: String,
    /// Address the gateway's own BitTorrent session listens on, reachable by the nodes (its port
    /// is picked at start).
    pub swarm_ip: IpAddr,
    /// Directory for staged shards and the master key. Keep it safe: the master key is what
    /// decrypts every stored object.
    pub data_dir: PathBuf,
    /// Policy of buckets created without one.
    pub default_policy: BucketPolicy,
    /// Largest object accepted, in bytes.
    pub max_object_size: u64,
    /// Seconds a node may take to fetch and confirm a shard.
    pub hold_timeout_secs: u64,
    /// Seconds a node may take to confirm it dropped a shard.
    pub drop_timeout_secs: u64,
    /// Seconds a rebuild may wait for a whole shard; a read waits for holders and for each piece up to this, at most 30.
    pub fetch_timeout_secs: u64,
    /// Shards a rebuild fetches beyond k, so the slowest node does not set the pace (reads hedge late pieces instead).
    pub read_hedge: usize,
    /// Target plaintext bytes per segment.
    pub segment_target: u64,
    /// Plaintext bytes per group of a large object (each its own set of shard torrents).
    pub group_size: u64,
    /// Groups of one upload placed at once beside the one being encoded.
    pub groups_in_flight: usize,
    /// Seconds between runs of the collector that drops unreferenced shards from nodes.
    pub collect_interval_secs: u64,
    /// Uploads served at once; more wait up to `queue_timeout_secs`, then get 503 SlowDown.
    pub max_puts: usize,
    /// Swarm reads served at once.
    pub max_gets: usize,
    /// Bytes of memory all swarm reads together may hold.
    pub read_memory: u64,
    /// Seconds a request waits for an upload's or read's turn.
    pub queue_timeout_secs: u64,
    /// Seconds an upload may go without sending a byte before it fails.
    pub body_timeout_secs: u64,
    /// The bucket policies clients may ask for.
    pub policy_limits: PolicyLimits,
    /// Seconds a node must have been connected before the collector drops the copies it
    /// reports that the gateway does not track.
    pub reconcile_settle_secs: u64,
    /// Seconds a multipart upload may stay unfinished before the collector aborts it.
    pub upload_expiry_secs: u64,
    /// Gateways sharing one database: seconds the cloud-wide work (health, audits, collection,
    /// packing) stays with a gateway that stopped renewing its lease, and a gateway may stay
    /// silent before its uploads in flight count as gone.
    pub lease_secs: u64,
    /// Whether the gateway carries object bytes itself. false: object PUT and GET, S3 uploads,
    /// copies and reads are refused (403) and clients use `raidtorrent-peer put/get`, which code
    /// objects on their machine; listing, HEAD, DELETE, placements, capability reads, audits and
    /// repair go on.
    pub data_path: bool,
    /// Audits, repair and rebalance.
    pub health: HealthSection,
    /// Small objects packed together.
    pub packing: PackSection,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        let g = GatewayConfig::default();
        ObjectConfig {
            api_listen: "off".into(),
            api_keys: Vec::new(),
            open_api: false,
            s3_listen: "off".into(),
            s3_domain: String::new(),
            control_listen: "0.0.0.0:6970".into(),
            tracker_url: g.tracker_url,
            swarm_ip: IpAddr::from([127, 0, 0, 1]),
            data_dir: g.data_dir,
            default_policy: g.default_policy,
            max_object_size: g.max_object_size,
            hold_timeout_secs: g.hold_timeout.as_secs(),
            drop_timeout_secs: g.drop_timeout.as_secs(),
            fetch_timeout_secs: g.fetch_timeout.as_secs(),
            read_hedge: g.read_hedge,
            segment_target: g.segment_target,
            group_size: g.group_size,
            groups_in_flight: g.groups_in_flight,
            collect_interval_secs: g.collect_interval.as_secs(),
            max_puts: g.max_puts,
            max_gets: g.max_gets,
            read_memory: g.read_memory,
            queue_timeout_secs: g.queue_timeout.as_secs(),
            body_timeout_secs: g.body_timeout.as_secs(),
            policy_limits: g.policy_limits,
            reconcile_settle_secs: g.reconcile_settle.as_secs(),
            upload_expiry_secs: g.upload_expiry.as_secs(),
            lease_secs: g.lease.as_secs(),
            data_path: g.data_path,
            health: HealthSection::from(&g.health),
            packing: PackSection::from(&g.packing),
        }
    }
}

impl ObjectConfig {
    /// The object API's address, `None` when off.
    pub fn api_addr(&self) -> Result<Option<SocketAddr>, String> {
        addr("objects.api_listen", &self.api_listen, true)
    }

    /// The S3 API's address, if on.
    pub fn s3_addr(&self) -> Result<Option<SocketAddr>, String> {
        addr("objects.s3_listen", &self.s3_listen, true)
    }

    /// The control listener's address.
    pub fn control_addr(&self) -> Result<SocketAddr, String> {
        addr("objects.control_listen", &self.control_listen, false).map(|a| a.expect("not off"))
    }

    /// Checks every field when the object API is on; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_addr()?.is_none() {
            return Ok(());
        }
        self.control_addr()?;
        let api = self.api_addr()?.expect("checked above");
        if self.open_api && !api.ip().is_loopback() {
            return Err(format!(
                "objects.open_api serves every bucket to anyone who reaches {api}: an open API \
                 listens only on a loopback address (127.0.0.1); give the clients keys instead"
            ));
        }
        if self.api_keys.is_empty() && !self.open_api {
            return Err(
                "objects.api_keys is empty: add keys, or set objects.open_api = true for a local \
                 devnet"
                    .into(),
            );
        }
        if self.api_keys.iter().any(|k| k.len() < 16 || k.trim() != k) {
            return Err(
                "objects.api_keys entries must be at least 16 characters, without surrounding \
                 spaces"
                    .into(),
            );
        }
        if !self.tracker_url.is_empty()
            && !self.tracker_url.starts_with("http://")
            && !self.tracker_url.starts_with("https://")
        {
            return Err("objects.tracker_url must start with http:// or https://".into());
        }
        if self.swarm_ip.is_unspecified() {
            return Err("objects.swarm_ip must be an address nodes can reach, not 0.0.0.0".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err("objects.data_dir must name a directory".into());
        }
        self.default_policy
            .validate()
            .map_err(|e| format!("objects.default_policy: {e}"))?;
        if self.hold_timeout_secs == 0
            || self.drop_timeout_secs == 0
            || self.fetch_timeout_secs == 0
        {
            return Err(
                "objects.hold_timeout_secs, drop_timeout_secs and fetch_timeout_secs must be at \
                 least 1"
                    .into(),
            );
        }
        if !(64 << 10..=1 << 30).contains(&self.segment_target) {
            return Err("objects.segment_target must be between 65536 and 1073741824".into());
        }
        if self.group_size < self.segment_target || self.group_size > 1 << 40 {
            return Err("objects.group_size must be at least segment_target, at most 1 TiB".into());
        }
        if !(1..=16).contains(&self.groups_in_flight) {
            return Err("objects.groups_in_flight must be between 1 and 16".into());
        }
        if self.read_memory < 16 << 20 {
            return Err("objects.read_memory must be at least 16777216".into());
        }
        if !(3..=3600).contains(&self.lease_secs) {
            return Err("objects.lease_secs must be between 3 and 3600".into());
        }
        if self.collect_interval_secs == 0 {
            return Err("objects.collect_interval_secs must be at least 1".into());
        }
        if self.max_puts == 0
            || self.max_gets == 0
            || self.queue_timeout_secs == 0
            || self.body_timeout_secs == 0
        {
            return Err(
                "objects.max_puts, max_gets, queue_timeout_secs and body_timeout_secs must be at \
                 least 1"
                    .into(),
            );
        }
        self.policy_limits
            .validate()
            .map_err(|e| format!("objects.policy_limits: {e}"))?;
        self.health.validate()?;
        self.packing.validate()
    }

    /// Who may call the API.
    pub fn auth(&self) -> ApiAuth {
        if self.open_api && self.api_keys.is_empty() {
            ApiAuth::open()
        } else {
            ApiAuth::keys(&self.api_keys)
        }
    }

    /// The object path's settings, with node scoring from the `[scoring]` section.
    pub fn gateway_config(&self, scoring: &ScoringConfig) -> GatewayConfig {
        GatewayConfig {
            data_dir: self.data_dir.clone(),
            tracker_url: self.tracker_url.clone(),
            default_policy: self.default_policy,
            max_object_size: self.max_object_size,
            hold_timeout: Duration::from_secs(self.hold_timeout_secs),
            drop_timeout: Duration::from_secs(self.drop_timeout_secs),
            fetch_timeout: Duration::from_secs(self.fetch_timeout_secs),
            read_hedge: self.read_hedge,
            segment_target: self.segment_target,
            group_size: self.group_size,
            groups_in_flight: self.groups_in_flight,
            collect_interval: Duration::from_secs(self.collect_interval_secs),
            max_puts: self.max_puts,
            max_gets: self.max_gets,
            read_memory: self.read_memory,
            queue_timeout: Duration::from_secs(self.queue_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            policy_limits: self.policy_limits,
            reconcile_settle: Duration::from_secs(self.reconcile_settle_secs),
            upload_expiry: Duration::from_secs(self.upload_expiry_secs),
            lease: Duration::from_secs(self.lease_secs),
            health: self.health.to_config(scoring),
            packing: self.packing.to_config(),
            data_path: self.data_path,
        }
    }
}

fn addr(field: &str, v: &str, may_be_off: bool) -> Result<Option<SocketAddr>, String> {
    if may_be_off && v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{field} = {v:?} is not an address like \"0.0.0.0:9000\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ObjectConfig {
        ObjectConfig {
            api_listen: "127.0.0.1:9000".into(),
            api_keys: vec!["0123456789abcdef0123".into()],
            ..ObjectConfig::default()
        }
    }

    #[test]
    fn printed_default_is_the_default() {
        let printed = crate::config::Config::from_toml(crate::config::DEFAULT_TOML).unwrap();
        assert_eq!(printed.objects, ObjectConfig::default());
        assert_eq!(
            ObjectConfig::default().gateway_config(&ScoringConfig::default()),
            GatewayConfig::default()
        );
        ObjectConfig::default().validate().unwrap();
        on().validate().unwrap();
        let text = toml::to_string(&on()).unwrap();
        assert_eq!(toml::from_str::<ObjectConfig>(&text).unwrap(), on());
    }

    #[test]
    fn validate_names_the_field() {
        let check = |edit: fn(&mut ObjectConfig), needle: &str| {
            let mut c = on();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(needle), "{e} should mention {needle}");
        };
        check(
            |c| c.api_listen = "nine-thousand".into(),
            "objects.api_listen",
        );
        check(|c| c.api_keys.clear(), "open_api");
        check(|c| c.api_keys = vec!["short".into()], "api_keys");
        check(|c| c.control_listen = "x".into(), "control_listen");
        check(|c| c.swarm_ip = IpAddr::from([0, 0, 0, 0]), "swarm_ip");
        check(|c| c.default_policy.k = 0, "default_policy");
        check(|c| c.segment_target = 1, "segment_target");
        check(|c| c.group_size = 1 << 20, "group_size");
        check(|c| c.groups_in_flight = 0, "groups_in_flight");
        check(|c| c.lease_secs = 2, "lease_secs");
        check(|c| c.max_puts = 0, "max_puts");
        check(|c| c.read_memory = 1 << 20, "read_memory");
        check(|c| c.policy_limits.max_expansion = 0.5, "policy_limits");
        check(|c| c.tracker_url = "udp://x".into(), "tracker_url");
        let mut open = on();
        open.api_keys.clear();
        open.open_api = true;
        open.validate().unwrap();
        let mut exposed = open.clone();
        exposed.api_listen = "0.0.0.0:9000".into();
        assert!(exposed.validate().unwrap_err().contains("loopback"));
        assert!(open.auth().is_open());
        assert!(!on().auth().is_open());
    }
}
