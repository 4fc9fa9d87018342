//! The gateway's object path ("cloud car"): what turns a client's PUT into encrypted shards held by
//! volunteer nodes, and a GET back into bytes; and the workers that keep them there.
//!
//! - [`model`], [`error`]: buckets, objects, policies and errors as clients see them;
//! - `access`, `quota`: S3 access keys, and the reservations that keep their writes within
//!   their storage quotas;
//! - [`config`]: the object path's settings and their defaults;
//! - [`meta`]: buckets, objects, shards and copies in SQLite;
//! - `nodes`: one snapshot of the nodes an operation may use; scores, back-off and load;
//! - `local` (with `session` and `leases`): the gateway's own BitTorrent peer;
//! - `staging`: a staging folder's life; `copies`: a copy's life on a node (hold and drop),
//!   with `in_flight`, the copies being changed now;
//! - `rounds`, `fetch_plan`: pure state machines of the upload's placement rounds and of which
//!   shards a rebuild fetches next; `reconcile`: the pure decision of which reported copies
//!   nobody tracks;
//! - `write`, `read` (with `piece_read`, over `raidtorrent-fetch`'s piece reads): the pipelines;
//!   `groups`: large objects as runs of parts, each placed while the next is encoded;
//!   `fetch`: whole shards through librqbit, for rebuilds;
//! - [`worker`]: the worker abstraction; `collect`, `health` (with `repair_exec`) and `audits`:
//!   the collector (orphans and untracked copies), the health worker that repairs, rebalances and trims, and the audit
//!   worker.
//!
//! Small objects (up to the bucket's `inline_max`) skip the swarm and live in the metadata store, as
//! k + m tiny torrents would cost more than they protect; they are sealed under the master key
//! there as every object is (`raidtorrent_codec::sealed`), so the database holds no plaintext.

mod access;
mod admission;
mod attrs;
mod audits;
mod collect;
pub mod config;
mod copies;
pub mod error;
mod fetch;
mod fetch_plan;
mod groups;
mod health;
mod in_flight;
mod inspect;
mod leases;
mod local;
mod master_key;
pub mod meta;
pub mod model;
mod multipart;
mod nodes;
mod pack;
mod piece_read;
mod place;
mod quota;
mod read;
mod reconcile;
mod repair_exec;
mod rounds;
mod session;
mod staging;
mod term;
mod upload;
pub mod worker;
mod write;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raidtorrent_codec::{InfoHash, MasterKey};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use access::{AccessKey, AccessKeys, ActiveKey, ALL_BUCKETS};
pub use attrs::{multipart_etag, Checksum, ChecksumSlot, ObjectAttrs, PutAttrs, WriteCondition};
pub use config::{GatewayConfig, HealthConfig, PackConfig};
pub use error::GatewayError;
pub use health::HealthStatus;
pub use inspect::{InspectedPart, InspectedShard, Inspection};
pub use local::OwnNode;
pub use master_key::{open_master_key, KeyError, MASTER_KEY_FILE};
pub use meta::{Meta, Upload, UploadPart};
pub use model::{
    check_bucket_name, check_key, Body, Bucket, BucketPolicy, Listing, ObjectInfo, PolicyLimits,
};
pub use multipart::{PartChecks, MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE};
pub use place::{
    check_client_shards, CapabilityRead, ClientShards, PlaceState, PlacementStatus, ShardPlacement,
    MAX_CLIENT_PEERS, MAX_WAIT,
};
pub use quota::QuotaHold;
pub use session::PeerSession;
pub use worker::{WorkerState, WorkerStatus};

use crate::control::ControlHub;
use crate::metrics::metrics;
use crate::registry::{unix_now, NodeId, Registry};
use crate::scoring::Score;
use local::{Announce, LocalPeer};
use meta::{NewObject, ObjectRow, StoredBody};
use nodes::Nodes;
use worker::WorkerHandle;

/// The object path; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    meta: Meta,
    master: MasterKey,
    nodes: Arc<Nodes>,
    copies: copies::Copies,
    local: LocalPeer,
    workers: Workers,
    /// What the health worker found and did.
    findings: watch::Sender<HealthStatus>,
    /// Copies a read found suspicious, audited first.
    suspects: Mutex<Vec<(NodeId, InfoHash)>>,
    /// Turns for uploads and reads, and the data disk's space.
    admission: admission::Admission,
    /// Bytes piece reads received from nodes.
    piece_bytes: AtomicU64,
    /// Bytes of objects waiting for a pack (recounted by every pass of the packer).
    waiting_bytes: AtomicU64,
    /// Client placements in progress or recently ended.
    placements: place::Placements,
    /// Bytes held against access keys' quotas by writes in progress.
    quotas: quota::QuotaLedgers,
    /// This gateway's id among those sharing the database, when it started, and whether it
    /// holds the work lease (`term`).
    id: String,
    started_at: i64,
    work_lease: Arc<watch::Sender<bool>>,
}

/// The handles of the background workers.
struct Workers {
    collector: WorkerHandle,
    health: WorkerHandle,
    audits: WorkerHandle,
    packer: WorkerHandle,
}

impl Gateway {
    /// Sets up the object path over an open registry (whose database also holds the object
    /// metadata), a running control hub and a started session. `config.tracker_url` must be set.
    pub async fn new(
        config: GatewayConfig,
        registry: Registry,
        hub: ControlHub,
        session: PeerSession,
        master: MasterKey,
        own: OwnNode,
    ) -> Result<Self, GatewayError> {
        staging::wipe_leftovers(&config.data_dir).await;
        let id = term::gateway_id(&config.data_dir).map_err(|e| {
            GatewayError::Internal(format!("gateway id in {}: {e}", config.data_dir.display()))
        })?;
        let meta = Meta::new(registry.db().clone()).for_gateway(&id);
        let started_at = unix_now();
        // Alive before the first upload begins, so no other gateway takes its uploads for a
        // gone gateway's.
        meta.gateway_alive(&id, started_at, started_at).await?;
        recover_at_start(
            &meta,
            &id,
            term::gone_before(started_at, config.lease),
            &master,
        )
        .await?;
        let waiting = meta.waiting_buckets().await?.iter().map(|w| w.bytes).sum();
        let announce = Announce::new(&config.tracker_url);
        let nodes = Arc::new(Nodes::new(hub, registry, own.id, &config.health));
        let workers = Workers {
            collector: WorkerHandle::new("collector"),
            health: WorkerHandle::new("health"),
            audits: WorkerHandle::new("audits"),
            packer: WorkerHandle::new("packer"),
        };
        let copies = copies::Copies::new(
            nodes.clone(),
            meta.clone(),
            announce.clone(),
            config.hold_timeout,
            config.drop_timeout,
            in_flight::CopiesInFlight::new(workers.collector.clone()),
            session.data_addr(),
        );
        let local = LocalPeer {
            session,
            own: Arc::new(own),
            announce,
            leases: Arc::default(),
        };
        Ok(Gateway {
            inner: Arc::new(Inner {
                admission: admission::Admission::new(&config),
                piece_bytes: AtomicU64::new(0),
                waiting_bytes: AtomicU64::new(waiting),
                placements: place::Placements::default(),
                quotas: quota::QuotaLedgers::default(),
                id,
                started_at,
                work_lease: Arc::new(watch::channel(false).0),
                config,
                meta,
                master,
                nodes,
                copies,
                local,
                workers,
                findings: watch::channel(HealthStatus::default()).0,
                suspects: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Starts the work lease's renewal and the collector, health, audit and packing workers;
    /// each stops once `stop` turns true.
    pub fn spawn_workers(
        &self,
        stop: &watch::Receiver<bool>,
    ) -> Vec<(&'static str, JoinHandle<()>)> {
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let cfg = &self.inner.config;
        let w = &self.inner.workers;
        let collector = collect::Collector {
            gw: self.clone(),
            interval: cfg.collect_interval,
        };
        let health = health::HealthWorker {
            gw: self.clone(),
            cfg: cfg.health.clone(),
            seen: nodes::Seen::new(),
            tracker: crate::repair::dirty::Tracker::new().away_marks(cfg.health.away_marks),
        };
        let audits = audits::Auditor {
            gw: self.clone(),
            cfg: cfg.health.clone(),
            round: 0,
        };
        let packer = pack::Packer {
            gw: self.clone(),
            cfg: cfg.packing.clone(),
        };
        let term = term::Term {
            meta: self.inner.meta.clone(),
            hub: self.inner.nodes.hub().clone(),
            registry: self.inner.nodes.registry().clone(),
            id: self.inner.id.clone(),
            started_at: self.inner.started_at,
            lease: cfg.lease,
            held: self.inner.work_lease.clone(),
        };
        let lease = || term::Term::lease(&self.inner.work_lease);
        vec![
            ("lease", tokio::spawn(term.run(until(stop.clone())))),
            ("collector", spawn(collector, &w.collector, lease(), stop)),
            ("health", spawn(health, &w.health, lease(), stop)),
            ("audits", spawn(audits, &w.audits, lease(), stop)),
            ("packer", spawn(packer, &w.packer, lease(), stop)),
        ]
    }

    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// What the health worker is doing and found last, with every worker's status.
    pub fn health_status(&self) -> HealthStatus {
        let w = &self.inner.workers;
        let health = w.health.status();
        HealthStatus {
            state: health.state,
            last_error: health.last_error.clone(),
            workers: vec![
                w.collector.status(),
                health,
                w.audits.status(),
                w.packer.status(),
            ],
            gateway: self.inner.id.clone(),
            work_lease: *self.inner.work_lease.borrow(),
            ..self.inner.findings.borrow().clone()
        }
    }

    /// Scores of the nodes as of the health worker's latest pass (empty before the first).
    pub fn scores(&self) -> Arc<HashMap<NodeId, Score>> {
        self.inner.nodes.scores()
    }

    /// Wakes the health worker now (a copy failed an audit, a node left).
    /// Bytes piece reads have received from nodes since the gateway started (hedged and
    /// rejected pieces included).
    pub fn piece_bytes_fetched(&self) -> u64 {
        self.inner.piece_bytes.load(Ordering::Relaxed)
    }

    pub fn wake_health(&self) {
        self.inner.workers.health.wake();
    }

    fn wake_collector(&self) {
        self.inner.workers.collector.wake();
    }

    pub async fn create_bucket(
        &self,
        name: &str,
        policy: Option<BucketPolicy>,
    ) -> Result<Bucket, GatewayError> {
        check_bucket_name(name)?;
        // The operator's default is trusted; what a client asks for stays within the limits.
        if let Some(p) = &policy {
            p.validate()?;
            p.within(&self.inner.config.policy_limits)?;
        }
        let policy = policy.unwrap_or(self.inner.config.default_policy);
        policy.validate()?;
        self.inner
            .meta
            .create_bucket(name, &policy, unix_now())
            .await
    }

    /// A client's bucket.
    pub async fn bucket(&self, name: &str) -> Result<Bucket, GatewayError> {
        self.inner.meta.bucket(name).await
    }

    /// Deletes a bucket that holds no objects and no multipart uploads.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), GatewayError> {
        self.inner.meta.delete_bucket(name).await
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
        body: impl AsyncRead + Send + Unpin + 'static,
        size_hint: Option<u64>,
    ) -> Result<ObjectInfo, GatewayError> {
        self.put_with(bucket, key, body, size_hint, PutAttrs::default())
            .await
    }

    /// [`Gateway::put`] with the headers and metadata to store beside the bytes, and the MD5 the
    /// client announced: the object is committed with its ETag (the MD5 of what was read), and
    /// not at all if that differs from the announced one (`BadDigest`).
    pub async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: impl AsyncRead + Send + Unpin + 'static,
        size_hint: Option<u64>,
        put: PutAttrs,
    ) -> Result<ObjectInfo, GatewayError> {
        let b = self.inner.meta.bucket(bucket).await?;
        check_key(key)?;
        put.attrs.check()?;
        let _turn = self.inner.admission.put().await?;
        let max = self.inner.config.max_object_size;
        if let Some(size) = size_hint.filter(|s| *s > max) {
            return Err(GatewayError::TooLarge { size, max });
        }
        let (body, md5) = attrs::Md5Reader::new(body);
        let tags = attrs::Tags { put, md5 };
        // Read up to one byte past what the metadata store takes to learn which path the object
        // takes.
        let kept = self.kept_max(&b.policy, size_hint);
        let mut upload = upload::Upload::new(body, self.inner.config.body_timeout, max, |max| {
            GatewayError::TooLarge { size: max + 1, max }
        });
        let head = upload.head(kept as usize + 1).await?;
        let stored = if head.len() as u64 > kept {
            let source = write::Source {
                head,
                body: upload.into_body(),
                size_hint,
            };
            write::put_swarm(self, &b, key, source, Some(&tags)).await
        } else {
            let by = tags.put.placed_by.as_deref();
            self.put_kept(&b, key, &head, &tags.commit()?, by).await
        };
        if let Ok(info) = &stored {
            metrics().bytes("in", info.size);
        }
        stored
    }

    /// Bytes up to which an object is kept in the metadata store: for good up to the bucket's
    /// `inline_max`, until it is packed up to `packing.max_object` while there is room to wait.
    fn kept_max(&self, policy: &BucketPolicy, size_hint: Option<u64>) -> u64 {
        let p = &self.inner.config.packing;
        let waiting = self.inner.waiting_bytes.load(Ordering::Relaxed);
        let packable = p.max_object > policy.inline_max
            && waiting.saturating_add(p.max_object) <= p.max_waiting
            && size_hint.map_or(true, |s| s <= p.max_object);
        if packable {
            p.max_object
        } else {
            policy.inline_max
        }
    }

    /// Stores an object in the metadata store, sealed: inline for good, or waiting for a pack.
    async fn put_kept(
        &self,
        b: &Bucket,
        key: &str,
        data: &[u8],
        attrs: &ObjectAttrs,
        placed_by: Option<&str>,
    ) -> Result<ObjectInfo, GatewayError> {
        let sha: [u8; 32] = Sha256::digest(data).into();
        let sealed = self.seal(data)?;
        let len = data.len() as u64;
        let waits = len > b.policy.inline_max;
        let object = NewObject {
            bucket: &b.name,
            key,
            size: len,
            sha256: &sha,
            attrs: Some(attrs),
            body: if waits {
                StoredBody::Waiting(&sealed)
            } else {
                StoredBody::Inline(&sealed)
            },
            placed_by,
        };
        let info = self.inner.meta.commit_object(&object, unix_now()).await?;
        if waits {
            let waiting = self.inner.waiting_bytes.fetch_add(len, Ordering::Relaxed) + len;
            if waiting >= self.inner.config.packing.target {
                self.inner.workers.packer.wake();
            }
        }
        Ok(info)
    }

    /// Seals bytes kept in the metadata store under the master key.
    pub(super) fn seal(&self, data: &[u8]) -> Result<Vec<u8>, GatewayError> {
        raidtorrent_codec::sealed::seal(&self.inner.master, data)
            .map_err(|e| GatewayError::Internal(format!("sealing a small object: {e}")))
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
        // Counted as the read starts: a client that hangs up early is counted in full.
        metrics().bytes("out", range.end - range.start);
        if let Some(data) = &row.inline_data {
            let data = self.open_inline(data, row.inline_sealed)?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let part = Bytes::from(data).slice(range.start as usize..range.end as usize);
            if !part.is_empty() {
                tx.try_send(Ok(part)).expect("a fresh channel has room");
            }
            return Ok((row.info, rx));
        }
        let body = match row.pack {
            Some((pack, at)) => {
                let pack = self.inner.meta.object_by_id(pack).await?;
                self.read_swarm(&pack, at + range.start..at + range.end)
                    .await?
            }
            None => self.read_swarm(&row, range).await?,
        };
        Ok((row.info, body))
    }

    /// Reads `range` of a swarm object (an object of its own, or a pack): from its shards, or
    /// from its parts if grouped.
    pub(super) async fn read_swarm(
        &self,
        row: &ObjectRow,
        range: Range<u64>,
    ) -> Result<Body, GatewayError> {
        if row.info.storage == model::Storage::Grouped {
            return groups::get_grouped(self, row, range).await;
        }
        self.read_shards(row, range).await
    }

    /// Reads `range` of an object with shards of its own.
    pub(super) async fn read_shards(
        &self,
        row: &ObjectRow,
        range: Range<u64>,
    ) -> Result<Body, GatewayError> {
        // The hours objects are read at steer repair toward nodes that are online then.
        let hour = (unix_now() / 3600 % 24) as u32;
        if let Err(e) = self.inner.meta.note_read(row.id, hour).await {
            tracing::debug!(error = %e, "read hour not noted");
        }
        read::get_swarm(self, row, range).await
    }

    /// A small object's bytes, unsealed (plaintext only in a row written before sealing, until
    /// the next start seals it).
    pub(super) fn open_inline(&self, data: &[u8], sealed: bool) -> Result<Vec<u8>, GatewayError> {
        if !sealed {
            return Ok(data.to_vec());
        }
        raidtorrent_codec::sealed::open(&self.inner.master, data)
            .map_err(|e| GatewayError::Internal(format!("opening a small object: {e}")))
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

/// What a start finds and settles before any request: this gateway's uploads cut short by its
/// restart (and those of gateways gone meanwhile) are abandoned to the collector, and small
/// objects an older version stored in plaintext are sealed.
async fn recover_at_start(
    meta: &Meta,
    id: &str,
    alive_since: i64,
    master: &MasterKey,
) -> Result<(), GatewayError> {
    let ours = meta::Abandon::AtStart {
        own: id,
        alive_since,
    };
    let abandoned = meta.abandon_pending(ours).await?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "shards of uploads cut short by a restart will be collected"
        );
    }
    let loose = meta.drop_loose_parts(ours).await?;
    if loose > 0 {
        tracing::warn!(
            loose,
            "parts of large uploads cut short by a restart will be collected"
        );
    }
    let sealed = meta.seal_plain_inline(master).await?;
    if sealed > 0 {
        tracing::info!(sealed, "small objects stored in plaintext are now sealed");
    }
    Ok(())
}

/// Runs `worker` under `lease` until `stop` turns true.
fn spawn<W: worker::Worker>(
    worker: W,
    handle: &WorkerHandle,
    lease: term::Lease,
    stop: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut stop = stop.clone();
    let until = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::spawn(worker::run(worker, handle.clone(), lease, until))
}
