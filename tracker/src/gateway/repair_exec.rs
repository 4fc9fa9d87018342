//! Carrying out one repair task: new copies fetched from surviving copies (every source named to
//! every target, so they all upload at once), shards rebuilt by the gateway from k others, and
//! copies dropped. A new copy counts only once its node confirms it; a drop happens only after the
//! copies that make it safe are confirmed, and is checked again just before it is sent.

use std::net::SocketAddr;

use raidtorrent_codec::{rebuild, RebuildTarget, ShardInfo};

use super::copies::HoldJob;
use super::fetch::{Fetched, ObjectShards};
use super::nodes::Reported;
use super::staging::Staging;
use super::{Gateway, GatewayError};
use crate::registry::NodeId;
use crate::repair::{Action, ShardRef, Task, Why};
use crate::scoring::TransferKind;

impl Gateway {
    /// Runs one task; returns the bytes of new copies confirmed.
    pub(super) async fn run_task(&self, task: Task) -> Result<u64, String> {
        let what = format!("{:?} of object {}", task.why, task.object);
        let result = match task.action {
            Action::Copy {
                shard,
                sources,
                targets,
            } => self.swarm_repair(&shard, &sources, &targets).await,
            Action::Rebuild { shards, .. } => self.rebuild_shards(task.object, &shards).await,
            Action::Drop { shard, node } => self.drop_copy(task.why, &shard, node).await,
        };
        result.map_err(|e| format!("{what}: {e}"))
    }

    /// Copies a shard to `targets` from its surviving copies on `sources`.
    async fn swarm_repair(
        &self,
        shard: &ShardRef,
        sources: &[NodeId],
        targets: &[NodeId],
    ) -> Result<u64, GatewayError> {
        let peers = self.inner.nodes.snapshot().data_addrs(sources);
        if peers.is_empty() {
            return Err(GatewayError::Unavailable(
                "no source is connected any more".into(),
            ));
        }
        let row = self
            .inner
            .meta
            .live_shard(&shard.info_hash)
            .await?
            .ok_or_else(|| {
                GatewayError::NoSuchKey(format!("shard {} is no longer stored", shard.info_hash))
            })?;
        self.copy_to(&row.shard_info()?, &peers, targets, async {})
            .await
    }

    /// Holds a shard on `targets`, fetched from `peers`; `before_recording` runs once every
    /// answer is in. Returns the bytes of the copies confirmed, or every failure.
    async fn copy_to(
        &self,
        info: &ShardInfo,
        peers: &[SocketAddr],
        targets: &[NodeId],
        before_recording: impl std::future::Future<Output = ()>,
    ) -> Result<u64, GatewayError> {
        let jobs = targets
            .iter()
            .map(|&node| HoldJob {
                shard: info.clone(),
                node,
            })
            .collect();
        let held = self
            .inner
            .copies
            .hold_then(jobs, peers, TransferKind::Repair, before_recording)
            .await?;
        let confirmed = held.iter().filter(|h| h.outcome.is_ok()).count() as u64;
        let failures: Vec<String> = held.into_iter().filter_map(|h| h.outcome.err()).collect();
        if failures.is_empty() {
            Ok(confirmed * info.length)
        } else {
            Err(GatewayError::InsufficientNodes(failures.join("; ")))
        }
    }

    /// Rebuilds shards that have no copy left from k others of their object, seeds them from the
    /// gateway's session, and gives each its targets.
    async fn rebuild_shards(
        &self,
        object: i64,
        shards: &[(ShardRef, Vec<NodeId>)],
    ) -> Result<u64, GatewayError> {
        let meta = &self.inner.meta;
        let stored = ObjectShards::load(meta, &meta.object_by_id(object).await?).await?;
        let lost: Vec<usize> = shards.iter().map(|(s, _)| s.idx as usize).collect();
        let rebuilt = lost
            .iter()
            .map(|&i| {
                let info = stored.infos.get(i).cloned().flatten();
                info.ok_or_else(|| GatewayError::Internal(format!("shard {i} unknown")))
            })
            .collect::<Result<Vec<ShardInfo>, _>>()?;
        let fetched = self.fetch_k(&stored, &lost).await?;
        let result = async {
            let local = &self.inner.local;
            let mut staging = Staging::create(&self.inner.config.data_dir, local).await?;
            let placed = self
                .rebuild_and_place(&mut staging, stored, &fetched, shards, &rebuilt)
                .await;
            staging.finish().await;
            placed
        }
        .await;
        fetched.release(self).await;
        result
    }

    async fn rebuild_and_place(
        &self,
        staging: &mut Staging,
        stored: ObjectShards,
        fetched: &Fetched,
        shards: &[(ShardRef, Vec<NodeId>)],
        rebuilt: &[ShardInfo],
    ) -> Result<u64, GatewayError> {
        let paths = fetched.paths.clone();
        let targets: Vec<(usize, ShardInfo)> = shards
            .iter()
            .map(|(s, _)| s.idx as usize)
            .zip(rebuilt.iter().cloned())
            .collect();
        let names = rebuilt.iter().map(|i| i.name.clone()).collect();
        staging
            .write(names, move |outs| {
                let targets: Vec<RebuildTarget> = targets
                    .iter()
                    .map(|(index, info)| RebuildTarget {
                        index: *index,
                        info,
                    })
                    .collect();
                rebuild(&stored.manifest, stored.inputs(&paths), &targets, outs)
                    .map(|_| ())
                    .map_err(|e| GatewayError::Internal(format!("rebuild: {e}")))
            })
            .await?;
        let mut bytes = 0;
        let mut failures = Vec::new();
        let source = [self.inner.local.data_addr()];
        for ((shard, targets), info) in shards.iter().zip(rebuilt) {
            if self
                .inner
                .meta
                .live_shard(&shard.info_hash)
                .await?
                .is_none()
            {
                failures.push(format!("shard {} is no longer stored", shard.info_hash));
                continue;
            }
            staging.seed(info, self.inner.config.hold_timeout).await?;
            // The gateway stops seeding before the copies count, so a read of this shard never
            // finds it in the session under the staging folder.
            let unseed = staging.unseed(info.info_hash());
            match self.copy_to(info, &source, targets, unseed).await {
                Ok(b) => bytes += b,
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(bytes)
        } else {
            Err(GatewayError::InsufficientNodes(failures.join("; ")))
        }
    }

    /// Drops one copy, checking first that what made it safe still holds.
    async fn drop_copy(
        &self,
        why: Why,
        shard: &ShardRef,
        node: NodeId,
    ) -> Result<u64, GatewayError> {
        if why == Why::Surplus {
            self.check_surplus(shard, node).await?;
        }
        self.inner.copies.drop(node, &shard.info_hash).await?;
        Ok(0)
    }

    /// The plan saw more live copies than wanted; make sure enough are still there without this
    /// one: recorded, not failed, on connected nodes that report holding the shard right now.
    async fn check_surplus(&self, shard: &ShardRef, node: NodeId) -> Result<(), GatewayError> {
        let meta = &self.inner.meta;
        let holders = meta.holders(&shard.info_hash).await?;
        let failed = meta.failed_copies(&shard.info_hash).await?;
        let snapshot = self.inner.nodes.snapshot();
        let others = holders
            .into_iter()
            .filter(|h| *h != node && !failed.contains(h))
            .filter(|h| snapshot.reported(*h, &shard.info_hash) == Reported::Holds)
            .filter(|h| snapshot.data_addr(*h).is_some())
            .count();
        let want = meta.copies_wanted(&shard.info_hash).await?;
        if others < want {
            return Err(GatewayError::Unavailable(format!(
                "only {others} other copies are connected now; keeping this one"
            )));
        }
        Ok(())
    }
}
