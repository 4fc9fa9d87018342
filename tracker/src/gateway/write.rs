//! The write path: encode into a staging folder, seed from the gateway's session, place copies in
//! rounds (`rounds`), hold them (`copies`), and make the object visible once every shard has all
//! its copies confirmed.

use raidtorrent_codec::{
    DataKey, EncodeError, Encoded, Geometry, KeyRef, Layout, SegmentEncoder, ShardInfo,
};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::admission::Reserved;
use super::copies::HoldJob;
use super::meta::{NewObject, ShardRow, StoredBody};
use super::model::{Bucket, ObjectInfo};
use super::rounds::{Next, Rounds};
use super::staging::{blocking, Staging};
use super::upload::Upload;
use super::{Gateway, GatewayError};
use crate::placement::{self, Policy, ShardNeed};
use crate::registry::unix_now;
use crate::scoring::TransferKind;

/// Rounds of placement attempts before an upload gives up: a node that refuses or fails is left
/// out of the next round.
const PLACEMENT_ROUNDS: usize = 3;

/// An upload's body: the bytes already read (to tell it from an inline object) and the rest.
pub(super) struct Source<B> {
    pub head: Vec<u8>,
    pub body: B,
    pub size_hint: Option<u64>,
}

pub(super) async fn put_swarm<B>(
    gw: &Gateway,
    bucket: &Bucket,
    key: &str,
    source: Source<B>,
) -> Result<ObjectInfo, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let mut staging = Staging::create(&gw.inner.config.data_dir, &gw.inner.local).await?;
    let result = stage_and_place(gw, &mut staging, bucket, key, source).await;
    // Placement met (or failed): the staging copies go either way.
    staging.finish().await;
    result
}

async fn stage_and_place<B>(
    gw: &Gateway,
    staging: &mut Staging,
    bucket: &Bucket,
    key: &str,
    source: Source<B>,
) -> Result<ObjectInfo, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let inner = &gw.inner;
    let data_key = DataKey::generate().map_err(|e| GatewayError::Internal(e.to_string()))?;
    let (encoded, infos) = encode_staged(gw, staging, bucket, &data_key, source).await?;
    let wrapped = inner
        .master
        .wrap(&data_key)
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    let manifest = encoded
        .manifest(KeyRef::Wrapped(wrapped), &infos)
        .to_bytes();
    let rows: Vec<ShardRow> = infos
        .iter()
        .enumerate()
        .map(|(idx, s)| ShardRow {
            info_hash: s.info_hash(),
            idx: idx as u32,
            length: s.length,
            info: s.info_bytes(),
        })
        .collect();
    let hashes: Vec<_> = rows.iter().map(|r| r.info_hash).collect();
    // Recorded before any node hears of them, so a failure from here on leaves orphans to collect.
    inner.meta.begin_shards(&rows, unix_now()).await?;
    let object = NewObject {
        bucket: &bucket.name,
        key,
        size: encoded.layout.size,
        sha256: &encoded.sha256,
        body: StoredBody::Swarm {
            manifest: &manifest,
            shards: &hashes,
        },
    };
    let committed = match seed_and_place(gw, staging, &bucket.policy.placement(), &infos).await {
        Ok(()) => inner.meta.commit_object(&object, unix_now()).await,
        Err(e) => Err(e),
    };
    if committed.is_err() {
        // Copies may be on nodes but no object refers to them: hand them to the collector now
        // rather than leaving them pending until the next restart.
        inner.meta.abandon_shards(&hashes).await?;
        gw.wake_collector();
    }
    committed
}

/// Encodes the body into the staging folder, one file per shard named as its torrent names it.
/// Segments are read on the runtime and encoded on a blocking thread one at a time, the next read
/// while the previous is coded, so a slow client holds no thread; the shards' disk space is
/// reserved first.
async fn encode_staged<B>(
    gw: &Gateway,
    staging: &Staging,
    bucket: &Bucket,
    data_key: &DataKey,
    source: Source<B>,
) -> Result<(Encoded, Vec<ShardInfo>), GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let config = &gw.inner.config;
    let p = bucket.policy;
    let geometry = Geometry::choose(p.k, p.m, config.segment_target, source.size_hint)
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let budget = reserve_staging(gw, geometry, source.size_hint)?;
    let body = std::io::Cursor::new(source.head).chain(source.body);
    let mut upload = Upload::new(body, config.body_timeout, budget.limit, budget.over);
    let parts: Vec<String> = (0..geometry.shard_count())
        .map(|i| format!("{i}.part"))
        .collect();
    let mut outs = staging.open_files(&parts).await?;
    let mut encoder = SegmentEncoder::new(geometry, data_key).map_err(internal)?;
    let mut plain = vec![0u8; encoder.segment_size()];
    let mut next = vec![0u8; encoder.segment_size()];
    let (mut len, mut last) = upload.segment(&mut plain).await?;
    loop {
        // The next segment arrives from the client while this one is coded and written.
        let coding = blocking(move || {
            encoder
                .push(&plain[..len], last, &mut outs)
                .map_err(internal)?;
            Ok((encoder, outs, plain))
        });
        let reading = async {
            match last {
                true => None,
                false => Some(upload.segment(&mut next).await),
            }
        };
        let (coded, read) = tokio::join!(coding, reading);
        (encoder, outs, plain) = coded?;
        let Some(read) = read else { break };
        (len, last) = read?;
        std::mem::swap(&mut plain, &mut next);
    }
    staging.close_files(outs).await?;
    let encoded = encoder.finish().map_err(internal)?;
    let infos = encoded.shard_infos();
    for (part, info) in parts.iter().zip(&infos) {
        staging.rename(part, &info.name).await?;
    }
    Ok((encoded, infos))
}

fn internal(e: EncodeError) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

/// The staging space reserved for an upload, and the most bytes it may have.
struct StagingBudget {
    limit: u64,
    /// The error past `limit`.
    over: fn(u64) -> GatewayError,
    _space: Reserved,
}

/// Reserves the staging space of an upload: its shards' bytes when its size is known, else
/// room for the largest object that fits in half of the free space.
fn reserve_staging(
    gw: &Gateway,
    geometry: Geometry,
    size: Option<u64>,
) -> Result<StagingBudget, GatewayError> {
    let max = gw.inner.config.max_object_size;
    let admission = &gw.inner.admission;
    let staged = |plain: u64| {
        Layout::new(geometry, plain)
            .map(|l| l.shard_len().saturating_mul(geometry.shard_count() as u64))
            .map_err(|e| GatewayError::BadRequest(e.to_string()))
    };
    let too_large: fn(u64) -> GatewayError = |max| GatewayError::TooLarge { size: max + 1, max };
    let budget = |limit, over, bytes| {
        Ok(StagingBudget {
            limit,
            over,
            _space: admission.reserve(bytes)?,
        })
    };
    if let Some(size) = size {
        return budget(size, too_large, staged(size)?);
    }
    let (k, n) = (u64::from(geometry.k), geometry.shard_count() as u64);
    let fits = (admission.available()? / 2 / n * k).saturating_sub(geometry.segment_size);
    if fits >= max {
        return budget(max, too_large, staged(max)?);
    }
    let no_room: fn(u64) -> GatewayError = |fits| {
        GatewayError::InsufficientStorage(format!(
            "an upload of unknown length may take at most {fits} bytes now; send its \
             Content-Length"
        ))
    };
    budget(fits, no_room, staged(fits)?)
}

/// Seeds every staged shard, then gets every shard its copies, confirmed by the nodes.
async fn seed_and_place(
    gw: &Gateway,
    staging: &mut Staging,
    policy: &Policy,
    infos: &[ShardInfo],
) -> Result<(), GatewayError> {
    let inner = &gw.inner;
    for info in infos {
        staging.seed(info, inner.config.hold_timeout).await?;
    }
    let mut rounds = Rounds::new(infos.len(), policy.copies, PLACEMENT_ROUNDS);
    loop {
        let needs = match rounds.next() {
            Next::Done => return Ok(()),
            Next::GiveUp(why) => return Err(GatewayError::InsufficientNodes(why)),
            Next::Place(needs) => needs,
        };
        let (jobs, shard_of): (Vec<HoldJob>, Vec<usize>) =
            plan_round(gw, policy, infos, &needs, rounds.excluded())?
                .into_iter()
                .unzip();
        // The gateway's seeder is a peer the node can dial at once, before any announce.
        let peers = [inner.local.data_addr()];
        let held = inner.copies.hold(jobs, &peers, TransferKind::Hold).await?;
        for h in held {
            let shard = shard_of[h.job];
            match h.outcome {
                Ok(()) => rounds.confirmed(shard, h.node),
                Err(why) => rounds.failed(h.node, why),
            }
        }
    }
}

/// One round's holds: placement over the nodes the upload may use, preferring nodes that are not
/// backing off after failed directives. Each job comes with its shard's index.
fn plan_round(
    gw: &Gateway,
    policy: &Policy,
    infos: &[ShardInfo],
    needs: &[ShardNeed],
    excluded: &[crate::registry::NodeId],
) -> Result<Vec<(HoldJob, usize)>, GatewayError> {
    let snapshot = gw.inner.nodes.snapshot();
    let length = infos[0].length;
    let mut nodes = snapshot.placement(excluded, false);
    let mut plan = placement::place(&nodes, policy, length, needs);
    if !plan.is_complete() {
        nodes = snapshot.placement(excluded, true);
        plan = placement::place(&nodes, policy, length, needs);
    }
    if !plan.is_complete() {
        return Err(GatewayError::InsufficientNodes(format!(
            "{} connected node(s) with room for {length}-byte shards cannot hold {} copies of {} shards",
            nodes.len(),
            policy.copies,
            infos.len()
        )));
    }
    for r in &plan.relaxed {
        tracing::info!(rule = ?r, "placement: {}", r.explain());
    }
    Ok(plan
        .targets
        .iter()
        .enumerate()
        .flat_map(|(s, targets)| {
            targets.iter().map(move |&node| {
                let job = HoldJob {
                    shard: infos[s].clone(),
                    node,
                };
                (job, s)
            })
        })
        .collect())
}
