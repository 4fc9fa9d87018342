//! Carrying out one repair task: new copies fetched from surviving copies (every source named to
//! every target, so they all upload at once), shards rebuilt by the gateway from k others, and
//! copies dropped. A new copy counts only once its node confirms it; a drop happens only after the
//! copies that make it safe are confirmed, and is checked again just before it is sent.

use std::collections::HashMap;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::time::Instant;

use raidtorrent_codec::{rebuild, InfoHash, Manifest, RebuildTarget, ShardInfo, ShardInput};
use raidtorrent_proto::{Hold, MetainfoSource};
use tokio::task::JoinSet;

use super::health::HealthConfig;
use super::{Gateway, GatewayError};
use crate::control::Outcome;
use crate::registry::{unix_now, NodeId};
use crate::repair::{Action, ShardRef, Task, Why};
use crate::scoring::TransferKind;

impl Gateway {
    /// Runs one task; returns the bytes of new copies confirmed.
    pub(super) async fn run_task(&self, cfg: &HealthConfig, task: Task) -> Result<u64, String> {
        let what = format!("{:?} of object {}", task.why, task.object);
        let result = match task.action {
            Action::Copy {
                shard,
                sources,
                targets,
            } => {
                let peers = self.data_addrs(&sources);
                if peers.is_empty() {
                    return Err(format!("{what}: no source is connected any more"));
                }
                self.swarm_repair(cfg, &shard, peers, &targets).await
            }
            Action::Rebuild { shards, .. } => self.rebuild_shards(cfg, task.object, &shards).await,
            Action::Drop { shard, node } => self.drop_copy(task.why, &shard, node).await,
        };
        result.map_err(|e| format!("{what}: {e}"))
    }

    fn data_addrs(&self, nodes: &[NodeId]) -> Vec<SocketAddr> {
        let connected: HashMap<NodeId, SocketAddr> = self
            .inner
            .hub
            .connected()
            .into_iter()
            .filter_map(|c| Some((c.node, c.data_addr?)))
            .collect();
        nodes
            .iter()
            .filter_map(|n| connected.get(n).copied())
            .collect()
    }

    /// Tells each target to hold the shard, fetching it from `peers`, and records each outcome
    /// against its node; returns the targets that confirmed. The caller records their copies.
    async fn copy_to(
        &self,
        cfg: &HealthConfig,
        shard: &ShardRef,
        peers: Vec<SocketAddr>,
        targets: &[NodeId],
    ) -> Result<(Vec<NodeId>, Vec<String>), GatewayError> {
        let inner = &self.inner;
        let row = inner
            .meta
            .live_shard(&shard.info_hash)
            .await?
            .ok_or_else(|| {
                GatewayError::NoSuchKey(format!("shard {} is no longer stored", shard.info_hash))
            })?;
        let info = row.shard_info()?;
        // Everything that can fail before a directive leaves goes first: once one is sent, the
        // answers are awaited to the end, so no copy is made on a node without being recorded.
        let mut directives = Vec::with_capacity(targets.len());
        for &node in targets {
            let passkey = inner.meta.passkey(node).await?;
            directives.push((
                node,
                Hold {
                    ih: info.info_hash(),
                    source: MetainfoSource::Torrent(
                        info.to_torrent(&[vec![self.announce_url(&passkey)]]),
                    ),
                    peers: peers.clone(),
                },
            ));
        }
        let mut holds = JoinSet::new();
        for (node, hold) in directives {
            let hub = inner.hub.clone();
            let timeout = inner.config.hold_timeout;
            self.add_load(node, 1);
            holds.spawn(async move {
                let started = Instant::now();
                let outcome = hub.hold_with(node, hold, timeout).await;
                (node, outcome, started.elapsed())
            });
        }
        let mut confirmed = Vec::new();
        let mut failures = Vec::new();
        while let Some(joined) = holds.join_next().await {
            let Ok((node, outcome, took)) = joined else {
                failures.push("a hold task failed".to_owned());
                continue;
            };
            self.add_load(node, -1);
            let ok = matches!(outcome, Ok(Outcome::Acked));
            self.record_transfer(
                node,
                TransferKind::Repair,
                &shard.info_hash,
                ok,
                shard.length,
                took,
            )
            .await;
            let mut backoff = inner.backoff.lock().expect("backoff lock");
            if ok {
                backoff.succeeded(node);
                confirmed.push(node);
            } else {
                backoff.failed(node, cfg);
                failures.push(format!("node {node}: {outcome:?}"));
            }
        }
        Ok((confirmed, failures))
    }

    /// Records confirmed copies. A copy that cannot be recorded (its object was deleted meanwhile)
    /// is dropped from its node again rather than left there untracked.
    async fn record_copies(&self, shard: &ShardRef, nodes: &[NodeId]) -> Result<u64, GatewayError> {
        let inner = &self.inner;
        let mut bytes = 0;
        for &node in nodes {
            let live = inner.meta.live_shard(&shard.info_hash).await?.is_some();
            let recorded = if live {
                inner
                    .meta
                    .add_holding(&shard.info_hash, node, unix_now())
                    .await
            } else {
                Err(GatewayError::NoSuchKey(shard.info_hash.clone()))
            };
            match recorded {
                Ok(()) => bytes += shard.length,
                Err(e) => {
                    tracing::info!(node, info_hash = shard.info_hash, error = %e, "copy not recorded; dropping it");
                    if let Some(ih) = InfoHash::from_hex(&shard.info_hash) {
                        let _ = inner
                            .hub
                            .drop_shard(node, ih, inner.config.hold_timeout)
                            .await;
                    }
                }
            }
        }
        Ok(bytes)
    }

    /// Copies a shard to `targets` from its surviving copies and records the new copies.
    async fn swarm_repair(
        &self,
        cfg: &HealthConfig,
        shard: &ShardRef,
        peers: Vec<SocketAddr>,
        targets: &[NodeId],
    ) -> Result<u64, GatewayError> {
        let (confirmed, failures) = self.copy_to(cfg, shard, peers, targets).await?;
        let bytes = self.record_copies(shard, &confirmed).await?;
        if failures.is_empty() {
            Ok(bytes)
        } else {
            Err(GatewayError::InsufficientNodes(failures.join("; ")))
        }
    }

    /// Rebuilds shards that have no copy left from k others of their object, seeds them from the
    /// gateway's session, and gives each its targets.
    async fn rebuild_shards(
        &self,
        cfg: &HealthConfig,
        object: i64,
        shards: &[(ShardRef, Vec<NodeId>)],
    ) -> Result<u64, GatewayError> {
        let inner = &self.inner;
        let row = inner.meta.object_by_id(object).await?;
        let manifest_bytes = row
            .manifest
            .as_deref()
            .ok_or_else(|| GatewayError::Internal(format!("object {object} has no manifest")))?;
        let manifest = Manifest::parse(manifest_bytes)
            .map_err(|e| GatewayError::Internal(format!("stored manifest: {e}")))?;
        let rows = inner.meta.shards_of(object).await?;
        let mut infos: Vec<Option<ShardInfo>> = vec![None; manifest.shards.len()];
        for r in &rows {
            if let Some(slot) = infos.get_mut(r.idx as usize) {
                *slot = Some(r.shard_info()?);
            }
        }
        let lost: Vec<usize> = shards.iter().map(|(s, _)| s.idx as usize).collect();
        let fetched = self.fetch_k_except(&manifest, &infos, &lost).await?;
        let dir = inner
            .config
            .data_dir
            .join("staging")
            .join(ShardInfo::random_name());
        let result = async {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| GatewayError::Internal(format!("staging folder: {e}")))?;
            let targets_info: Vec<ShardInfo> = lost
                .iter()
                .map(|&i| {
                    infos[i]
                        .clone()
                        .ok_or_else(|| GatewayError::Internal(format!("shard {i} unknown")))
                })
                .collect::<Result<_, _>>()?;
            let paths: HashMap<usize, std::path::PathBuf> = fetched.clone();
            let out_dir = dir.clone();
            let all_infos = infos.clone();
            let rebuilt_infos = targets_info.clone();
            let lost_idx = lost.clone();
            tokio::task::spawn_blocking(move || -> Result<(), GatewayError> {
                let inputs = (0..manifest.shards.len())
                    .map(|i| {
                        let path = paths.get(&i)?;
                        let file = std::fs::File::open(path).ok()?;
                        Some(ShardInput {
                            info: all_infos[i].as_ref()?,
                            reader: file,
                        })
                    })
                    .collect();
                let targets: Vec<RebuildTarget> = lost_idx
                    .iter()
                    .zip(&rebuilt_infos)
                    .map(|(&index, info)| RebuildTarget { index, info })
                    .collect();
                let mut outs = rebuilt_infos
                    .iter()
                    .map(|info| std::fs::File::create(out_dir.join(&info.name)).map(BufWriter::new))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| GatewayError::Internal(format!("staging file: {e}")))?;
                rebuild(&manifest, inputs, &targets, &mut outs)
                    .map_err(|e| GatewayError::Internal(format!("rebuild: {e}")))?;
                for o in outs {
                    o.into_inner()
                        .map_err(|e| GatewayError::Internal(format!("staging file: {e}")))?;
                }
                Ok(())
            })
            .await
            .map_err(|e| GatewayError::Internal(format!("rebuild task: {e}")))??;
            let mut confirmed = 0;
            let mut failures = Vec::new();
            for ((shard, targets), info) in shards.iter().zip(&targets_info) {
                let torrent = info.to_torrent(&[vec![self.announce_url(&inner.self_node.1)]]);
                inner
                    .swarm
                    .seed(&dir, torrent, inner.config.hold_timeout)
                    .await
                    .map_err(|e| {
                        GatewayError::Internal(format!("seeding a rebuilt shard: {e:#}"))
                    })?;
                let copied = self
                    .copy_to(cfg, shard, vec![inner.swarm.data_addr()], targets)
                    .await;
                // The gateway stops seeding before the copies count, so a read of this shard
                // never finds it in the session under the staging folder.
                inner.swarm.forget(info.info_hash(), true).await;
                match copied {
                    Ok((nodes, failed)) => {
                        confirmed += self.record_copies(shard, &nodes).await?;
                        failures.extend(failed);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if failures.is_empty() {
                Ok(confirmed)
            } else {
                Err(GatewayError::InsufficientNodes(failures.join("; ")))
            }
        }
        .await;
        for info in infos
            .iter()
            .enumerate()
            .filter(|(i, _)| lost.contains(i))
            .filter_map(|(_, i)| i.as_ref())
        {
            inner.swarm.forget(info.info_hash(), true).await;
        }
        for (i, _) in fetched {
            if let Some(info) = &infos[i] {
                inner.leases.release(&inner.swarm, info.info_hash()).await;
            }
        }
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::debug!(dir = %dir.display(), error = %e, "rebuild staging not removed");
        }
        result
    }

    /// Drops one copy, checking first that what made it safe still holds.
    async fn drop_copy(
        &self,
        why: Why,
        shard: &ShardRef,
        node: NodeId,
    ) -> Result<u64, GatewayError> {
        let inner = &self.inner;
        if why == Why::Surplus {
            // The plan saw more live copies than wanted; make sure enough are still connected.
            // Count only copies that are recorded, not failed, and that their connected nodes
            // report holding right now.
            let holders = inner.meta.holders(&shard.info_hash).await?;
            let failed = inner.meta.failed_copies(&shard.info_hash).await?;
            let reported = self.reported_sets();
            let others: Vec<NodeId> = holders
                .into_iter()
                .filter(|h| *h != node && !failed.contains(h))
                .filter(|h| {
                    matches!(reported.get(h), Some(Some(held)) if held.contains(&shard.info_hash))
                })
                .collect();
            let connected = self.data_addrs(&others).len();
            let want = inner.meta.copies_wanted(&shard.info_hash).await?;
            if connected < want {
                return Err(GatewayError::Unavailable(format!(
                    "only {connected} other copies are connected now; keeping this one"
                )));
            }
        }
        let ih = InfoHash::from_hex(&shard.info_hash)
            .ok_or_else(|| GatewayError::Internal(format!("bad info-hash {}", shard.info_hash)))?;
        match inner
            .hub
            .drop_shard(node, ih, inner.config.hold_timeout)
            .await
        {
            Ok(Outcome::Acked) => {
                inner.meta.remove_holding(&shard.info_hash, node).await?;
                Ok(0)
            }
            Ok(Outcome::Refused { code, reason }) => Err(GatewayError::Unavailable(format!(
                "node {node} refused the drop: {code:?} {reason}"
            ))),
            Err(e) => Err(GatewayError::Unavailable(e.to_string())),
        }
    }

    /// Counts a transfer in flight to or from `node` (negative to finish it).
    pub(super) fn add_load(&self, node: NodeId, delta: i32) {
        let mut load = self.inner.load.lock().expect("load lock");
        let l = load.entry(node).or_default();
        *l = l.saturating_add_signed(delta);
    }

    /// Adds a transfer outcome to the node's record; a failure to record is logged, not fatal.
    pub(super) async fn record_transfer(
        &self,
        node: NodeId,
        kind: TransferKind,
        info_hash: &str,
        ok: bool,
        bytes: u64,
        took: std::time::Duration,
    ) {
        if let Err(e) = self
            .inner
            .registry
            .record_transfer(
                node,
                kind,
                info_hash,
                ok,
                bytes,
                took.as_millis() as u64,
                unix_now(),
            )
            .await
        {
            tracing::warn!(node, error = %e, "transfer outcome not recorded");
        }
    }
}
