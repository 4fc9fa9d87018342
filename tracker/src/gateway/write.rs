//! The write path: encode into a staging folder, seed from the gateway's session, place copies,
//! send hold directives, and make the object visible once every shard has all its copies confirmed.

use std::collections::HashMap;
use std::io::{BufWriter, Read};
use std::path::Path;

use raidtorrent_codec::{encode, DataKey, EncodeError, Geometry, KeyRef, ShardInfo};
use tokio::io::AsyncRead;
use tokio::task::JoinSet;
use tokio_util::io::SyncIoBridge;

use super::api_types::{Bucket, GatewayError, ObjectInfo};
use super::health::placement_tier;
use super::meta::ShardRow;
use super::meta_health::placement_policy;
use super::Gateway;
use crate::control::Outcome;
use crate::placement::{self, NodeView, Policy, ShardNeed};
use crate::registry::{unix_now, NodeId};
use crate::scoring::TransferKind;
use raidtorrent_proto::{Hold, MetainfoSource};

pub(super) async fn put_swarm(
    gw: &Gateway,
    bucket: &Bucket,
    key: &str,
    head: Vec<u8>,
    body: impl AsyncRead + Send + Unpin + 'static,
    size_hint: Option<u64>,
) -> Result<ObjectInfo, GatewayError> {
    let inner = &gw.inner;
    let upload = ShardInfo::random_name();
    let dir = inner.config.data_dir.join("staging").join(&upload);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| GatewayError::Internal(format!("staging folder: {e}")))?;
    let mut seeded = Vec::new();
    let result = stage_and_place(gw, bucket, key, head, body, size_hint, &dir, &mut seeded).await;
    // Placement met (or failed): the staging copies go either way.
    for info in &seeded {
        inner.swarm.forget(info.info_hash(), true).await;
    }
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "staging folder not removed");
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn stage_and_place(
    gw: &Gateway,
    bucket: &Bucket,
    key: &str,
    head: Vec<u8>,
    body: impl AsyncRead + Send + Unpin + 'static,
    size_hint: Option<u64>,
    dir: &Path,
    seeded: &mut Vec<ShardInfo>,
) -> Result<ObjectInfo, GatewayError> {
    let inner = &gw.inner;
    let p = bucket.policy;
    let geometry = Geometry::choose(p.k, p.m, inner.config.segment_target, size_hint)
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let max = inner.config.max_object_size;
    let data_key = DataKey::generate().map_err(|e| GatewayError::Internal(e.to_string()))?;

    // Encode on a blocking thread, reading the body through a bridge.
    let reader = std::io::Cursor::new(head)
        .chain(SyncIoBridge::new(body))
        .take(max + 1);
    let paths: Vec<_> = (0..geometry.shard_count())
        .map(|i| dir.join(format!("{i}.part")))
        .collect();
    let encode_paths = paths.clone();
    let encode_key = data_key.clone();
    let encoded = tokio::task::spawn_blocking(move || -> Result<_, GatewayError> {
        let mut outs = encode_paths
            .iter()
            .map(|p| std::fs::File::create(p).map(BufWriter::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GatewayError::Internal(format!("staging file: {e}")))?;
        let encoded = encode(geometry, &encode_key, reader, &mut outs).map_err(|e| match e {
            EncodeError::Read(io) => GatewayError::Upload(io),
            other => GatewayError::Internal(other.to_string()),
        })?;
        for o in outs {
            o.into_inner()
                .map_err(|e| GatewayError::Internal(format!("staging file: {e}")))?;
        }
        Ok(encoded)
    })
    .await
    .map_err(|e| GatewayError::Internal(format!("encoder task: {e}")))??;
    if encoded.layout.size > max {
        return Err(GatewayError::TooLarge {
            size: encoded.layout.size,
            max,
        });
    }

    let infos = encoded.shard_infos();
    for (path, info) in paths.iter().zip(&infos) {
        tokio::fs::rename(path, dir.join(&info.name))
            .await
            .map_err(|e| GatewayError::Internal(format!("staging file: {e}")))?;
    }
    let wrapped = inner
        .master
        .wrap(&data_key)
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    let manifest = encoded.manifest(KeyRef::Wrapped(wrapped), &infos);
    let rows: Vec<ShardRow> = infos
        .iter()
        .enumerate()
        .map(|(idx, s)| ShardRow {
            info_hash: s.info_hash().to_hex(),
            idx: idx as u32,
            length: s.length,
            info: s.info_bytes(),
        })
        .collect();
    let hashes: Vec<String> = rows.iter().map(|r| r.info_hash.clone()).collect();
    // Recorded before any node hears of them, so a failure from here on leaves orphans to collect.
    inner.meta.begin_shards(&rows, unix_now()).await?;

    let placed = async {
        let own_torrent =
            |s: &ShardInfo| s.to_torrent(&[vec![gw.announce_url(&inner.self_node.1)]]);
        for info in &infos {
            inner
                .swarm
                .seed(dir, own_torrent(info), inner.config.hold_timeout)
                .await
                .map_err(|e| GatewayError::Internal(format!("seeding a staged shard: {e:#}")))?;
            seeded.push(info.clone());
        }
        place_copies(gw, &placement_policy(&bucket.policy), &infos).await
    }
    .await;
    if let Err(e) = placed {
        inner.meta.abandon_shards(&hashes).await?;
        gw.wake_collector();
        return Err(e);
    }
    let committed = inner
        .meta
        .commit_object(
            &bucket.name,
            key,
            encoded.layout.size,
            &encoded.sha256,
            None,
            Some(&manifest.to_bytes()),
            &hashes,
            unix_now(),
        )
        .await;
    if committed.is_err() {
        // The copies are on nodes but no object refers to them: hand them to the collector now
        // rather than leaving them pending until the next restart.
        inner.meta.abandon_shards(&hashes).await?;
        gw.wake_collector();
    }
    committed
}

/// Rounds of placement attempts before an upload gives up: a node that refuses or fails is left
/// out of the next round.
const PLACEMENT_ROUNDS: usize = 3;

/// Gets every shard its copies, confirmed by the nodes.
async fn place_copies(
    gw: &Gateway,
    policy: &Policy,
    infos: &[ShardInfo],
) -> Result<(), GatewayError> {
    let inner = &gw.inner;
    let mut holders: Vec<Vec<NodeId>> = vec![Vec::new(); infos.len()];
    let mut excluded: Vec<NodeId> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let scores = gw.scores();
    for _ in 0..PLACEMENT_ROUNDS {
        let needs: Vec<ShardNeed> = holders
            .iter()
            .map(|h| ShardNeed {
                holders: h.clone(),
                want: policy.copies.saturating_sub(h.len()),
            })
            .collect();
        if needs.iter().all(|n| n.want == 0) {
            return Ok(());
        }
        let nodes: Vec<NodeView> = inner
            .hub
            .connected()
            .into_iter()
            .filter(|c| !excluded.contains(&c.node) && c.data_addr.is_some())
            .filter_map(|c| {
                Some(NodeView {
                    id: c.node,
                    tier: placement_tier(scores.get(&c.node))?,
                    zone: c.zone,
                    free: c.free,
                    capacity: c.capacity,
                    load: 0,
                })
            })
            .collect();
        let plan = placement::place(&nodes, policy, infos[0].length, &needs);
        if !plan.is_complete() {
            return Err(GatewayError::InsufficientNodes(format!(
                "{} connected node(s) with room for {}-byte shards cannot hold {} copies of {} shards",
                nodes.len(),
                infos[0].length,
                policy.copies,
                infos.len()
            )));
        }
        for r in &plan.relaxed {
            tracing::info!(rule = ?r, "placement: {}", r.explain());
        }
        let mut holds = JoinSet::new();
        let mut passkeys: HashMap<NodeId, String> = HashMap::new();
        for (s, targets) in plan.targets.iter().enumerate() {
            for &node in targets {
                let passkey = match passkeys.get(&node) {
                    Some(p) => p.clone(),
                    None => {
                        let p = inner.meta.passkey(node).await?;
                        passkeys.insert(node, p.clone());
                        p
                    }
                };
                let torrent = infos[s].to_torrent(&[vec![gw.announce_url(&passkey)]]);
                let hub = inner.hub.clone();
                let ih = infos[s].info_hash();
                let timeout = inner.config.hold_timeout;
                // The gateway's seeder is a peer the node can dial at once, before any announce.
                let hold = Hold {
                    ih,
                    source: MetainfoSource::Torrent(torrent),
                    peers: vec![inner.swarm.data_addr()],
                };
                holds.spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = hub.hold_with(node, hold, timeout).await;
                    (s, node, outcome, started.elapsed())
                });
            }
        }
        while let Some(done) = holds.join_next().await {
            let (s, node, outcome, took) =
                done.map_err(|e| GatewayError::Internal(format!("hold task: {e}")))?;
            let ih = infos[s].info_hash().to_hex();
            let ok = matches!(outcome, Ok(Outcome::Acked));
            gw.record_transfer(node, TransferKind::Hold, &ih, ok, infos[s].length, took)
                .await;
            match outcome {
                Ok(Outcome::Acked) => {
                    inner
                        .meta
                        .add_holding(&infos[s].info_hash().to_hex(), node, unix_now())
                        .await?;
                    holders[s].push(node);
                }
                Ok(Outcome::Refused { code, reason }) => {
                    failures.push(format!("node {node} refused: {code:?} {reason}"));
                    excluded.push(node);
                }
                Err(e) => {
                    failures.push(e.to_string());
                    excluded.push(node);
                }
            }
        }
    }
    if holders.iter().all(|h| h.len() >= policy.copies) {
        return Ok(());
    }
    Err(GatewayError::InsufficientNodes(format!(
        "shards could not get {} confirmed copies: {}",
        policy.copies,
        failures.join("; ")
    )))
}
