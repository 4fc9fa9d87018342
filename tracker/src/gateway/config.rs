//! Settings of the object path and its workers, in the types the code uses. The defaults live
//! here once; the TOML sections (`crate::config`) are made from them and back.

use std::path::PathBuf;
use std::time::Duration;

use super::model::{BucketPolicy, PolicyLimits};
use super::{Gateway, GatewayError};
use crate::repair::PlanConfig;
use crate::scoring::ScoringConfig;

/// Settings of the object path.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Where staged shards, read caches and the master key live.
    pub data_dir: PathBuf,
    /// The tracker's announce base URL as nodes reach it, e.g. `http://127.0.0.1:7070`; empty
    /// until the cloud fills it in from its HTTP tracker's address.
    pub tracker_url: String,
    /// Policy of buckets created without one.
    pub default_policy: BucketPolicy,
    /// Largest object accepted.
    pub max_object_size: u64,
    /// How long a node may take to fetch and confirm a shard.
    pub hold_timeout: Duration,
    /// How long a node may take to confirm it dropped a shard.
    pub drop_timeout: Duration,
    /// How long a read may wait for a shard.
    pub fetch_timeout: Duration,
    /// Extra shards a rebuild fetches beyond k, to not wait on the slowest node.
    pub read_hedge: usize,
    /// Target plaintext bytes per segment.
    pub segment_target: u64,
    /// Plaintext bytes per group: a larger object is written as a run of groups, each its own
    /// set of shard torrents placed while the next is encoded.
    pub group_size: u64,
    /// Groups of one upload being placed at once, beside the one being encoded: what bounds the
    /// staging space an upload takes, whatever its size.
    pub groups_in_flight: usize,
    /// How often the orphan collector runs on its own.
    pub collect_interval: Duration,
    /// How long a node must have been connected before the collector drops the copies it
    /// reports that the gateway does not track (a node just connected may still be re-checking
    /// its files, and the gateway may have just restarted).
    pub reconcile_settle: Duration,
    /// How long a multipart upload may stay unfinished before the collector aborts it.
    pub upload_expiry: Duration,
    /// Gateways sharing one database: how long the cloud-wide work (health, audits,
    /// collection, packing) stays with a gateway that stopped renewing it, and how long a
    /// gateway may stay silent before its uploads in flight count as gone. Renewed every third
    /// of it.
    pub lease: Duration,
    /// Audits, repair and rebalance.
    pub health: HealthConfig,
    /// What bucket policies clients may ask for.
    pub policy_limits: PolicyLimits,
    /// Uploads served at once.
    pub max_puts: usize,
    /// Swarm reads served at once.
    pub max_gets: usize,
    /// Memory all swarm reads together may hold (pieces ahead of the decoder, and its buffers);
    /// a read waits for its share, up to `queue_timeout`.
    pub read_memory: u64,
    /// How long a request waits for an upload's or read's turn before 503 SlowDown.
    pub queue_timeout: Duration,
    /// How long an upload may go without sending a byte.
    pub body_timeout: Duration,
    /// How small objects are packed together.
    pub packing: PackConfig,
    /// Whether the gateway carries object bytes itself (object PUT and GET, S3 uploads, copies
    /// and reads). Off, clients store and read with `raidtorrent-peer put/get` (RT-0004) and the
    /// gateway only places, lists, deletes, audits and repairs.
    pub data_path: bool,
}

/// How small objects are packed together (`pack`).
#[derive(Debug, Clone, PartialEq)]
pub struct PackConfig {
    /// Objects above their bucket's `inline_max` and up to this many bytes are packed; 0: none.
    pub max_object: u64,
    /// Bytes of waiting objects that make a pack at once.
    pub target: u64,
    /// Longest an object waits for its pack (in the metadata store, as durable as small objects).
    pub linger: Duration,
    /// Most bytes waiting at once; past it small objects go to the swarm on their own.
    pub max_waiting: u64,
    /// A pack whose live bytes fall below this share of its size is compacted.
    pub compact_below: f64,
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            max_object: 1 << 20,
            target: 16 << 20,
            linger: Duration::from_secs(30),
            max_waiting: 256 << 20,
            compact_below: 0.5,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            data_dir: "raidtorrent-gateway".into(),
            tracker_url: String::new(),
            default_policy: BucketPolicy {
                k: 4,
                m: 2,
                copies: 2,
                high_share: 0.0,
                inline_max: 4096,
            },
            max_object_size: 64 << 30,
            hold_timeout: Duration::from_secs(300),
            drop_timeout: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(120),
            read_hedge: 1,
            segment_target: 32 << 20,
            group_size: 64 << 20,
            groups_in_flight: 2,
            collect_interval: Duration::from_secs(60),
            reconcile_settle: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            upload_expiry: Duration::from_secs(7 * 24 * 3600),
            health: HealthConfig::default(),
            policy_limits: PolicyLimits::default(),
            max_puts: 16,
            max_gets: 64,
            read_memory: 1 << 30,
            queue_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            packing: PackConfig::default(),
            data_path: true,
        }
    }
}

impl Gateway {
    /// Refuses a request that would move object bytes through a gateway whose data path is off,
    /// before anything of it is read or staged.
    pub fn carries_data(&self) -> Result<(), GatewayError> {
        match self.inner.config.data_path {
            true => Ok(()),
            false => Err(GatewayError::DataPathOff),
        }
    }
}

/// Settings of the health and audit workers.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between passes of the health worker.
    pub interval: Duration,
    /// The planner's knobs: grace period, quota high-water mark, task and move budgets.
    pub plan: PlanConfig,
    /// Repair tasks running at once.
    pub concurrency: usize,
    /// Repair traffic in bytes per second (copies × shard length); 0 for no limit.
    pub bandwidth: u64,
    /// First back-off after a failed directive; it doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Time between audit rounds.
    pub audit_interval: Duration,
    /// Copies audited per round.
    pub audits_per_round: usize,
    /// Pieces asked for per audit.
    pub audit_pieces: usize,
    /// Time an audit may take.
    pub audit_timeout: Duration,
    /// A node must have been connected this long before a shard it says it lacks counts as a
    /// failed audit (a restarting node re-checks its files before it serves them).
    pub audit_settle: Duration,
    /// How scores and tiers are computed.
    pub scoring: ScoringConfig,
    /// Scores are computed afresh at most this often, and at once after a change in standing
    /// (a node registered, revoked or requalified, an audit not passed).
    pub scores_every: Duration,
    /// Most marked objects one pass loads (the rest wait for the next pass).
    pub dirty_max: usize,
    /// The background sweep looks at every stored object once per this period ...
    pub sweep_period: Duration,
    /// ... and at no fewer than this many objects per pass (so a small cloud is swept whole
    /// every pass, as if there were no marks at all).
    pub sweep_min: usize,
    /// Whether a node going away within the grace period, or back, marks its objects
    /// ([`crate::repair::dirty::Tracker::away_marks`]).
    pub away_marks: bool,
}

impl HealthConfig {
    /// Objects the sweep looks at per pass for every one of `known` objects to be looked at
    /// once per `sweep_period`: never fewer than `sweep_min`, and at least one.
    pub fn sweep_share(&self, known: usize) -> usize {
        let passes = self.sweep_period.as_secs_f64() / self.interval.as_secs_f64().max(1e-3);
        let share = (known as f64 / passes.max(1.0)).ceil() as usize;
        share.max(self.sweep_min).max(1)
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(30),
            plan: PlanConfig::default(),
            concurrency: 4,
            bandwidth: 0,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(1800),
            audit_interval: Duration::from_secs(10),
            audits_per_round: 4,
            audit_pieces: 2,
            audit_timeout: Duration::from_secs(30),
            audit_settle: Duration::from_secs(120),
            scoring: ScoringConfig::default(),
            scores_every: Duration::from_secs(300),
            dirty_max: 10_000,
            sweep_period: Duration::from_secs(86_400),
            sweep_min: 1_000,
            away_marks: true,
        }
    }
}
