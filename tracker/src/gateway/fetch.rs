//! Fetching any `k` shards of an object from the nodes that hold them, for reads and rebuilds.
//!
//! Candidates are the shards with a holder that may serve (connected, not disqualified, copy not
//! failed), better-scored holders named first (librqbit dials initial peers in order); which to
//! fetch next is [`FetchPlan`]'s call. Every fetch holds a lease on its shard's file from before
//! it starts, so releasing the unfinished ones never takes another read's lease. What a fetch
//! says about the nodes it used is recorded: a node librqbit dropped becomes an audit suspect.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_codec::{InfoHash, Manifest, ShardInfo, ShardInput};
use tokio::task::JoinSet;

use super::fetch_plan::{FetchPlan, Progress};
use super::meta::{Meta, ObjectRow};
use super::nodes::{NodeSnapshot, TransferRecord};
use super::session::PeerReport;
use super::{Gateway, GatewayError};
use crate::registry::NodeId;
use crate::scoring::TransferKind;

/// A stored object's manifest and the facts of each of its shards (by shard index).
pub(super) struct ObjectShards {
    pub manifest: Manifest,
    pub infos: Vec<Option<ShardInfo>>,
}

impl ObjectShards {
    pub(super) async fn load(meta: &Meta, row: &ObjectRow) -> Result<Self, GatewayError> {
        let bytes = row
            .manifest
            .as_deref()
            .ok_or_else(|| GatewayError::Internal(format!("object {} has no manifest", row.id)))?;
        let manifest = Manifest::parse(bytes)
            .map_err(|e| GatewayError::Internal(format!("stored manifest: {e}")))?;
        let mut infos = vec![None; manifest.shards.len()];
        for r in meta.shards_of(row.id).await? {
            if let Some(slot) = infos.get_mut(r.idx as usize) {
                *slot = Some(r.shard_info()?);
            }
        }
        Ok(ObjectShards { manifest, infos })
    }

    /// The codec's inputs: the fetched shards' files, opened, and `None` for the others.
    pub(super) fn inputs(
        &self,
        paths: &HashMap<usize, PathBuf>,
    ) -> Vec<Option<ShardInput<'_, File>>> {
        (0..self.infos.len())
            .map(|i| {
                let file = File::open(paths.get(&i)?).ok()?;
                Some(ShardInput {
                    info: self.infos[i].as_ref()?,
                    reader: file,
                })
            })
            .collect()
    }

    fn info_hash(&self, i: usize) -> Option<InfoHash> {
        self.infos.get(i)?.as_ref().map(ShardInfo::info_hash)
    }
}

/// `k` fetched shards, leased: their files stay until [`Fetched::release`].
pub(super) struct Fetched {
    pub paths: HashMap<usize, PathBuf>,
    leased: Vec<InfoHash>,
}

impl Fetched {
    pub(super) async fn release(self, gw: &Gateway) {
        for ih in self.leased {
            gw.release_lease(ih).await;
        }
    }
}

impl Gateway {
    /// Fetches shards of `shards` until `k` are complete, leaving out the shard indices in `skip`.
    pub(super) async fn fetch_k(
        &self,
        shards: &ObjectShards,
        skip: &[usize],
    ) -> Result<Fetched, GatewayError> {
        let snapshot = self.inner.nodes.snapshot();
        let candidates = self.fetch_candidates(&snapshot, shards, skip).await?;
        let order: Vec<usize> = candidates.iter().map(|(i, _)| *i).collect();
        let mut peers: HashMap<usize, Vec<SocketAddr>> = candidates.into_iter().collect();
        let k = shards.manifest.layout.k();
        let mut plan = FetchPlan::new(order, k, self.inner.config.read_hedge)
            .map_err(GatewayError::Unavailable)?;
        let by_addr = Arc::new(snapshot.by_addr());
        let mut running = JoinSet::new();
        let mut tasks = HashMap::new();
        let mut paths = HashMap::new();
        loop {
            for i in plan.start() {
                let info = shards.infos[i].clone().expect("candidates have infos");
                let folder = self.take_lease(info.info_hash()).await;
                paths.insert(i, folder.join(&info.name));
                let fetch = self.fetch_one(
                    info,
                    peers.remove(&i).unwrap_or_default(),
                    folder,
                    by_addr.clone(),
                );
                tasks.insert(running.spawn(fetch).id(), i);
            }
            if plan.progress() != Progress::Running {
                break;
            }
            let Some(joined) = running.join_next_with_id().await else {
                break;
            };
            let (id, result) = match joined {
                Ok((id, r)) => (id, r.map_err(|e| format!("{e:#}"))),
                Err(e) => (e.id(), Err(format!("fetch task: {e}"))),
            };
            let i = tasks[&id];
            match result {
                Ok(()) => plan.completed(i),
                Err(why) => {
                    plan.failed(i, format!("shard {i}: {why}"));
                    self.release_shard(shards, i).await;
                }
            }
        }
        // The slowest hedged fetches are not needed any more.
        running.abort_all();
        while running.join_next().await.is_some() {}
        for &i in plan.running() {
            self.release_shard(shards, i).await;
        }
        let fetched = Fetched {
            paths: plan.done().iter().map(|i| (*i, paths[i].clone())).collect(),
            leased: plan
                .done()
                .iter()
                .filter_map(|i| shards.info_hash(*i))
                .collect(),
        };
        match plan.progress() {
            Progress::Done => Ok(fetched),
            Progress::Failed(why) => {
                fetched.release(self).await;
                Err(GatewayError::Unavailable(why))
            }
            Progress::Running => {
                fetched.release(self).await;
                Err(GatewayError::Internal(
                    "a read stopped with fetches pending".into(),
                ))
            }
        }
    }

    /// Shards (not in `skip`) with holders that may serve, data shards first, each with its
    /// holders' data addresses, better-scored first.
    pub(super) async fn fetch_candidates(
        &self,
        snapshot: &NodeSnapshot,
        shards: &ObjectShards,
        skip: &[usize],
    ) -> Result<Vec<(usize, Vec<SocketAddr>)>, GatewayError> {
        let meta = &self.inner.meta;
        let mut out = Vec::new();
        for (i, info) in shards.infos.iter().enumerate() {
            let Some(info) = info.as_ref().filter(|_| !skip.contains(&i)) else {
                continue;
            };
            let ih = info.info_hash();
            let failed = meta.failed_copies(&ih).await?;
            let mut holders = meta.holders(&ih).await?;
            holders.retain(|h| !failed.contains(h));
            let sources = snapshot.sources(&holders);
            if !sources.is_empty() {
                out.push((i, sources));
            }
        }
        Ok(out)
    }

    /// One shard's fetch into `folder`, judged by what its peers did.
    fn fetch_one(
        &self,
        info: ShardInfo,
        peers: Vec<SocketAddr>,
        folder: PathBuf,
        by_addr: Arc<HashMap<SocketAddr, NodeId>>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
        let gw = self.clone();
        async move {
            let local = &gw.inner.local;
            let started = Instant::now();
            let timeout = gw.inner.config.fetch_timeout;
            let (result, reports) = local
                .session
                .fetch(&folder, local.torrent(&info), peers, timeout)
                .await;
            let took = started.elapsed();
            gw.judge_fetch(&info, &by_addr, &reports, result.is_ok(), took)
                .await;
            result
        }
    }

    /// What a fetch says about the nodes it used: a node librqbit dropped (a piece that failed its
    /// hash, or a broken connection) becomes a suspect the audit worker checks first; a node that
    /// delivered, on a fetch that completed, gets a successful transfer with its bytes.
    async fn judge_fetch(
        &self,
        info: &ShardInfo,
        by_addr: &HashMap<SocketAddr, NodeId>,
        peers: &[PeerReport],
        completed: bool,
        took: Duration,
    ) {
        let ih = info.info_hash();
        for p in peers {
            let Some(&node) = by_addr.get(&p.addr) else {
                continue;
            };
            if p.errors > 0 {
                tracing::info!(node, info_hash = %ih, errors = p.errors, "a read dropped this node; auditing it");
                self.suspect(node, &ih);
            } else if completed && p.fetched_bytes > 0 {
                let record = TransferRecord {
                    node,
                    kind: TransferKind::Fetch,
                    info_hash: &ih,
                    ok: true,
                    bytes: p.fetched_bytes,
                    took,
                };
                self.inner.nodes.record_transfer(record).await;
            }
        }
    }

    async fn take_lease(&self, ih: InfoHash) -> PathBuf {
        let data_dir = &self.inner.config.data_dir;
        self.inner.local.leases.acquire(ih, data_dir).await
    }

    pub(super) async fn release_lease(&self, ih: InfoHash) {
        let local = &self.inner.local;
        local.leases.release(&local.session, ih).await;
    }

    async fn release_shard(&self, shards: &ObjectShards, i: usize) {
        if let Some(ih) = shards.info_hash(i) {
            self.release_lease(ih).await;
        }
    }
}
