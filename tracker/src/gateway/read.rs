//! The read path: fetch k verified shards from the nodes that hold them (starting a few more than k
//! and keeping the first k that complete), then decode, decrypt and stream.
//!
//! librqbit 9 fetches whole files only (no piece selection), so a ranged read fetches whole shards
//! and then decodes only the pieces the range needs from them.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;
use raidtorrent_codec::{decode_range, InfoHash, KeyRef, Manifest, ShardInfo, ShardInput};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::api_types::{Body, GatewayError};
use super::meta::ObjectRow;
use super::swarm::PeerReport;
use super::Gateway;
use crate::registry::NodeId;
use crate::scoring::NodeTier;
use crate::scoring::TransferKind;
use std::sync::Arc;

/// Bytes per chunk sent to the client.
const SEND_CHUNK: usize = 256 * 1024;

pub(super) async fn get_swarm(
    gw: &Gateway,
    row: &ObjectRow,
    range: Range<u64>,
) -> Result<Body, GatewayError> {
    let inner = &gw.inner;
    let manifest_bytes = row
        .manifest
        .as_deref()
        .expect("swarm objects have a manifest");
    let manifest = Manifest::parse(manifest_bytes)
        .map_err(|e| GatewayError::Internal(format!("stored manifest: {e}")))?;
    let key = match &manifest.key {
        KeyRef::Wrapped(w) => inner
            .master
            .unwrap(w)
            .map_err(|e| GatewayError::Internal(format!("unwrapping the object key: {e}")))?,
        KeyRef::Client { .. } => {
            return Err(GatewayError::BadRequest(
                "this object's key is held by its client; read it with the client".into(),
            ))
        }
    };
    let (tx, rx) = mpsc::channel(8);
    if range.is_empty() {
        return Ok(rx);
    }
    let rows = inner.meta.shards_of(row.id).await?;
    let mut infos: Vec<Option<ShardInfo>> = vec![None; manifest.shards.len()];
    for r in &rows {
        let info = r.shard_info()?;
        if let Some(slot) = infos.get_mut(r.idx as usize) {
            *slot = Some(info);
        }
    }
    let fetched = gw.fetch_k_except(&manifest, &infos, &[]).await?;

    let inputs_infos = infos.clone();
    let release = fetched.clone();
    let gw2 = gw.clone();
    tokio::spawn(async move {
        let decoded = tokio::task::spawn_blocking(move || {
            let inputs = (0..manifest.shards.len())
                .map(|i| {
                    let path = fetched.get(&i)?;
                    let file = std::fs::File::open(path).ok()?;
                    Some(ShardInput {
                        info: inputs_infos[i].as_ref()?,
                        reader: file,
                    })
                })
                .collect();
            let mut out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(SEND_CHUNK),
            };
            match decode_range(&manifest, &key, inputs, range, &mut out) {
                Ok(report) => {
                    if !report.bad_pieces.is_empty() || !report.failed_shards.is_empty() {
                        tracing::warn!(?report, "read worked around bad shards");
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                }
            }
        })
        .await;
        if let Err(e) = decoded {
            tracing::error!(error = %e, "decoder task failed");
        }
        for (i, _) in release {
            if let Some(info) = &infos[i] {
                gw2.inner
                    .leases
                    .release(&gw2.inner.swarm, info.info_hash())
                    .await;
            }
        }
    });
    Ok(rx)
}

impl Gateway {
    /// Fetches shards until k are complete, leaving out the shards in `skip`; returns shard index →
    /// file path. The shards stay leased (kept on disk) until the caller releases them. Copies that
    /// failed an audit and nodes that are disqualified are never asked; trusted nodes come first.
    pub(super) async fn fetch_k_except(
        &self,
        manifest: &Manifest,
        infos: &[Option<ShardInfo>],
        skip: &[usize],
    ) -> Result<HashMap<usize, PathBuf>, GatewayError> {
        let gw = self;
        let inner = &gw.inner;
        let scores = gw.scores();
        let k = manifest.layout.k();
        let connected: HashMap<i64, SocketAddr> = inner
            .hub
            .connected()
            .into_iter()
            .filter_map(|c| Some((c.node, c.data_addr?)))
            .collect();
        let by_addr: Arc<HashMap<SocketAddr, NodeId>> =
            Arc::new(connected.iter().map(|(n, a)| (*a, *n)).collect());
        // Data shards first (no rebuild needed), then parity; only shards some live node holds.
        let mut candidates = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            let Some(info) = info else { continue };
            if skip.contains(&i) {
                continue;
            }
            let ih = info.info_hash().to_hex();
            let failed = inner.meta.failed_copies(&ih).await?;
            let mut holders: Vec<NodeId> = inner
                .meta
                .holders(&ih)
                .await?
                .into_iter()
                .filter(|h| !failed.contains(h))
                .filter(|h| {
                    scores
                        .get(h)
                        .map_or(true, |s| s.tier != NodeTier::Disqualified)
                })
                .collect();
            // Better-scored nodes first: librqbit dials the initial peers in order.
            holders.sort_by(|a, b| {
                let v = |n: &NodeId| scores.get(n).map_or(0.0, |s| s.value);
                v(b).total_cmp(&v(a))
            });
            let peers: Vec<SocketAddr> = holders
                .iter()
                .filter_map(|h| connected.get(h).copied())
                .collect();
            if !peers.is_empty() {
                candidates.push((i, peers));
            }
        }
        if candidates.len() < k {
            return Err(GatewayError::Unavailable(format!(
                "{} of the {} shards needed have a holder online",
                candidates.len(),
                k
            )));
        }
        let mut queue = candidates.into_iter();
        let mut running = JoinSet::new();
        let mut started: Vec<usize> = Vec::new();
        let mut done: HashMap<usize, PathBuf> = HashMap::new();
        let mut failures = Vec::new();
        let mut released: HashSet<usize> = HashSet::new();
        // The lease is taken before the fetch task starts, so every started fetch holds one and
        // releasing the unfinished ones below never takes another read's lease.
        let start =
            |running: &mut JoinSet<_>, (i, peers): (usize, Vec<SocketAddr>), folder: PathBuf| {
                let info: ShardInfo = infos[i].clone().expect("candidates have infos");
                let torrent = info.to_torrent(&[vec![gw.announce_url(&inner.self_node.1)]]);
                let gw = gw.clone();
                let by_addr = by_addr.clone();
                running.spawn(async move {
                    let started = std::time::Instant::now();
                    let (r, peers) = gw
                        .inner
                        .swarm
                        .fetch(&folder, torrent, peers, gw.inner.config.fetch_timeout)
                        .await;
                    gw.judge_fetch(&info, &by_addr, &peers, r.is_ok(), started.elapsed())
                        .await;
                    (i, folder.join(&info.name), r)
                });
                i
            };
        let lease = |i: usize| {
            let ih = infos[i]
                .as_ref()
                .expect("candidates have infos")
                .info_hash();
            inner.leases.acquire(ih, &inner.config.data_dir)
        };
        for _ in 0..(k + inner.config.read_hedge) {
            if let Some(c) = queue.next() {
                let folder = lease(c.0).await;
                started.push(start(&mut running, c, folder));
            }
        }
        while done.len() < k {
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (i, path, result) = match joined {
                Ok(r) => r,
                // A fetch task that panicked: its lease is released with the unfinished ones.
                Err(e) => {
                    failures.push(format!("fetch task: {e}"));
                    continue;
                }
            };
            match result {
                Ok(()) => {
                    done.insert(i, path);
                }
                Err(e) => {
                    failures.push(format!("shard {i}: {e:#}"));
                    if let Some(info) = &infos[i] {
                        inner.leases.release(&inner.swarm, info.info_hash()).await;
                    }
                    released.insert(i);
                    if let Some(c) = queue.next() {
                        let folder = lease(c.0).await;
                        started.push(start(&mut running, c, folder));
                    }
                }
            }
        }
        // The slowest hedged fetches are not needed any more.
        running.abort_all();
        while running.join_next().await.is_some() {}
        let finished: HashSet<usize> = done.keys().copied().collect();
        for i in started
            .iter()
            .filter(|i| !finished.contains(i) && !released.contains(i))
        {
            if let Some(info) = &infos[*i] {
                inner.leases.release(&inner.swarm, info.info_hash()).await;
            }
        }
        if done.len() < k {
            for i in finished {
                if let Some(info) = &infos[i] {
                    inner.leases.release(&inner.swarm, info.info_hash()).await;
                }
            }
            return Err(GatewayError::Unavailable(format!(
                "only {} of {k} shards could be fetched: {}",
                done.len(),
                failures.join("; ")
            )));
        }
        Ok(done)
    }
}

impl Gateway {
    /// What a fetch says about the nodes it used: a node librqbit dropped (a piece that failed its
    /// hash, or a broken connection) becomes a suspect the audit worker checks first; a node that
    /// delivered, on a fetch that completed, gets a successful transfer with its bytes.
    async fn judge_fetch(
        &self,
        info: &ShardInfo,
        by_addr: &HashMap<SocketAddr, NodeId>,
        peers: &[PeerReport],
        completed: bool,
        took: std::time::Duration,
    ) {
        let ih = info.info_hash().to_hex();
        for p in peers {
            let Some(&node) = by_addr.get(&p.addr) else {
                continue;
            };
            if p.errors > 0 {
                tracing::info!(node, info_hash = %ih, errors = p.errors, "a read dropped this node; auditing it");
                self.suspect(node, &ih);
            } else if completed && p.fetched_bytes > 0 {
                self.record_transfer(node, TransferKind::Fetch, &ih, true, p.fetched_bytes, took)
                    .await;
            }
        }
    }
}

/// Shards fetched for reads, shared by concurrent reads of the same object: the file stays while any
/// read holds a lease, and goes with the last.
#[derive(Default)]
pub(super) struct Leases {
    counts: tokio::sync::Mutex<HashMap<InfoHash, usize>>,
}

impl Leases {
    async fn acquire(&self, ih: InfoHash, data_dir: &std::path::Path) -> PathBuf {
        *self.counts.lock().await.entry(ih).or_default() += 1;
        data_dir.join("reads").join(ih.to_hex())
    }

    pub(super) async fn release(&self, swarm: &super::Swarm, ih: InfoHash) {
        let mut counts = self.counts.lock().await;
        let Some(c) = counts.get_mut(&ih) else { return };
        *c -= 1;
        if *c == 0 {
            counts.remove(&ih);
            // Still under the lock, so a new read cannot start on a file being deleted.
            swarm.forget(ih, true).await;
        }
    }
}

/// Sends what the decoder writes to the response, in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(SEND_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
