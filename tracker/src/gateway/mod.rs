//! The gateway's object path ("cloud car"): what turns a client's PUT into encrypted shards held by
//! volunteer nodes, and a GET back into bytes.
//!
//! - [`api_types`]: the operations' types and errors (the HTTP front maps them to statuses);
//! - [`meta`]: buckets, objects, shards and holdings in SQLite;
//! - `swarm`: the gateway's own librqbit session, which seeds freshly encoded shards to the nodes
//!   that will hold them and fetches shards back for reads;
//! - `write` / `read`: the pipelines;
//! - `health` (with `repair_exec`): the worker that scores nodes and repairs, rebalances and trims
//!   copies; `audits`: the worker that checks copies over the BitTorrent wire.
//!
//! Small objects (up to the bucket's `inline_max`) skip the swarm and live in the metadata store, as
//! k + m tiny torrents would cost more than they protect.

pub mod api_types;
mod audits;
mod collect;
mod health;
pub mod meta;
mod meta_health;
#[cfg(test)]
mod meta_tests;
mod read;
mod repair_exec;
mod swarm;
mod write;

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use raidtorrent_codec::MasterKey;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use api_types::{
    check_bucket_name, check_key, Body, Bucket, BucketPolicy, GatewayError, Listing, ObjectInfo,
};
pub use health::{HealthConfig, HealthStatus, WorkerState};
pub use meta::Meta;
pub use meta_health::AuditCandidate;
pub use swarm::Swarm;

use crate::control::ControlHub;
use crate::registry::{unix_now, NodeId, Registry};

/// Settings of the object path.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where staged shards and read caches live.
    pub data_dir: PathBuf,
    /// The tracker's announce base URL as nodes reach it, e.g. `http://127.0.0.1:7070`.
    pub tracker_url: String,
    /// Policy of buckets created without one.
    pub default_policy: BucketPolicy,
    /// Largest object accepted.
    pub max_object_size: u64,
    /// How long a node may take to fetch and confirm a shard.
    pub hold_timeout: Duration,
    /// How long a read may wait for a shard.
    pub fetch_timeout: Duration,
    /// Extra shards a read starts beyond k, to not wait on the slowest node.
    pub read_hedge: usize,
    /// Target plaintext bytes per segment.
    pub segment_target: u64,
}

/// The object path; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    meta: Meta,
    hub: ControlHub,
    swarm: Swarm,
    master: MasterKey,
    /// The gateway's own node id and passkey: its seeder announces like any node.
    self_node: (NodeId, String),
    /// Shards fetched for reads, shared by concurrent reads.
    leases: read::Leases,
    /// Wakes the orphan collector early.
    collector: Arc<tokio::sync::Notify>,
    /// Node registry and reliability records.
    registry: Registry,
    /// Scores as of the health worker's latest pass; placement and reads go by them.
    scores: RwLock<Arc<HashMap<NodeId, crate::scoring::Score>>>,
    /// The health worker's status, and its wake-up.
    health: tokio::sync::watch::Sender<HealthStatus>,
    health_wake: tokio::sync::Notify,
    /// Nodes whose repair directives failed lately.
    backoff: Mutex<health::Backoff>,
    /// Transfers in flight per node (repair targets), so plans spread them.
    load: Mutex<HashMap<NodeId, u32>>,
    /// Copies a read found suspicious, audited first.
    suspects: Mutex<Vec<(NodeId, String)>>,
    audit_wake: tokio::sync::Notify,
}

impl Gateway {
    /// Sets up the object path over an open registry (whose database also holds the object
    /// metadata), a running control hub and a started swarm session.
    pub async fn new(
        config: GatewayConfig,
        registry: Registry,
        hub: ControlHub,
        swarm: Swarm,
        master: MasterKey,
        self_node: (NodeId, String),
    ) -> Result<Self, GatewayError> {
        // Staged uploads and rebuilds, and shards fetched for reads, do not outlive a run: the
        // swarm session starts empty, so whatever a stop cut short is only disk space now.
        for leftover in ["staging", "reads"] {
            let dir = config.data_dir.join(leftover);
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "leftovers not removed"),
            }
        }
        let meta = Meta::new(registry.pool().clone());
        let abandoned = meta.abandon_pending().await?;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "shards of uploads cut short by a restart will be collected"
            );
        }
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                meta,
                hub,
                swarm,
                master,
                self_node,
                leases: read::Leases::default(),
                collector: Arc::new(tokio::sync::Notify::new()),
                registry,
                scores: RwLock::new(Arc::new(HashMap::new())),
                health: tokio::sync::watch::channel(HealthStatus::default()).0,
                health_wake: tokio::sync::Notify::new(),
                backoff: Mutex::new(health::Backoff::default()),
                load: Mutex::new(HashMap::new()),
                suspects: Mutex::new(Vec::new()),
                audit_wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The announce URL a node with `passkey` uses (BEP 27 private swarm, passkey in the path).
    fn announce_url(&self, passkey: &str) -> String {
        format!(
            "{}/announce/{passkey}",
            self.inner.config.tracker_url.trim_end_matches('/')
        )
    }

    fn wake_collector(&self) {
        self.inner.collector.notify_one();
    }

    /// Drops orphan shards (of deleted or replaced objects, and of failed uploads) from the nodes
    /// that hold them, until `shutdown` resolves.
    pub async fn run_collector(
        &self,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        collect::run(self, interval, shutdown).await
    }

    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    pub async fn create_bucket(
        &self,
        name: &str,
        policy: Option<BucketPolicy>,
    ) -> Result<Bucket, GatewayError> {
        check_bucket_name(name)?;
        let policy = policy.unwrap_or(self.inner.config.default_policy);
        policy.validate()?;
        self.inner
            .meta
            .create_bucket(name, &policy, unix_now())
            .await
    }

    pub async fn buckets(&self) -> Result<Vec<Bucket>, GatewayError> {
        self.inner.meta.buckets().await
    }

    /// Stores `body` under `bucket`/`key`, replacing what was there. The object becomes visible
    /// only once durable (inline, or every shard confirmed on its nodes); on any failure nothing
    /// becomes visible and the shards already handed out are collected.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        mut body: impl AsyncRead + Send + Unpin + 'static,
        size_hint: Option<u64>,
    ) -> Result<ObjectInfo, GatewayError> {
        let b = self.inner.meta.bucket(bucket).await?;
        check_key(key)?;
        let max = self.inner.config.max_object_size;
        if let Some(size) = size_hint.filter(|s| *s > max) {
            return Err(GatewayError::TooLarge { size, max });
        }
        // Read up to one byte past the inline limit to learn which path the object takes.
        let limit = b.policy.inline_max;
        let mut head = Vec::with_capacity(limit.min(64 << 10) as usize + 1);
        (&mut body)
            .take(limit + 1)
            .read_to_end(&mut head)
            .await
            .map_err(GatewayError::Upload)?;
        if head.len() as u64 <= limit {
            let sha: [u8; 32] = Sha256::digest(&head).into();
            return self
                .inner
                .meta
                .commit_object(
                    bucket,
                    key,
                    head.len() as u64,
                    &sha,
                    Some(&head),
                    None,
                    &[],
                    unix_now(),
                )
                .await;
        }
        write::put_swarm(self, &b, key, head, body, size_hint).await
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        Ok(self.inner.meta.object(bucket, key).await?.info)
    }

    /// Streams the object, or bytes `range` of it (which must lie within the object).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<(ObjectInfo, Body), GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        let row = self.inner.meta.object(bucket, key).await?;
        let size = row.info.size;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(GatewayError::InvalidRange { size });
        }
        if let Some(data) = row.inline_data {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let part = Bytes::from(data).slice(range.start as usize..range.end as usize);
            if !part.is_empty() {
                tx.try_send(Ok(part)).expect("a fresh channel has room");
            }
            return Ok((row.info, rx));
        }
        // The hours objects are read at steer repair toward nodes that are online then.
        let hour = (unix_now() / 3600 % 24) as u32;
        if let Err(e) = self.inner.meta.note_read(row.id, hour).await {
            tracing::debug!(error = %e, "read hour not noted");
        }
        let body = read::get_swarm(self, &row, range).await?;
        Ok((row.info, body))
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        self.inner.meta.delete_object(bucket, key).await?;
        // The collector drops the shards from their nodes; wake it now rather than at its next round.
        self.wake_collector();
        Ok(())
    }

    /// Up to `limit` objects (at most 1000) whose keys start with `prefix`, after key `after`.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing, GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        let limit = limit.clamp(1, 1000);
        let mut objects = self
            .inner
            .meta
            .list(bucket, prefix, after.unwrap_or(""), limit + 1)
            .await?;
        let next_after = if objects.len() > limit as usize {
            objects.truncate(limit as usize);
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(Listing {
            objects,
            next_after,
        })
    }
}
