//! The write path: encode a group of segments into a staging folder, seed it from the gateway's
//! session, place copies in rounds (`rounds`), hold them (`copies`), and make the object visible
//! once every shard has all its copies confirmed. An object bigger than one group is a run of
//! such groups (`groups`).

use raidtorrent_codec::{
    DataKey, EncodeError, Encoded, Geometry, KeyRef, Layout, SegmentEncoder, ShardInfo,
};
use std::net::SocketAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::admission::Reserved;
use super::attrs::{ObjectAttrs, Tags};
use super::copies::HoldJob;
use super::meta::{NewObject, ShardRow, StoredBody};
use super::model::{Bucket, BucketPolicy, ObjectInfo};
use super::rounds::{Next, Rounds};
use super::staging::{blocking, Staging};
use super::upload::Upload;
use super::{Gateway, GatewayError};
use crate::metrics::metrics;
use crate::placement::{self, Policy, ShardNeed};
use crate::registry::{unix_now, NodeId};
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

/// Stores an upload in the swarm: as one object when it fits in one group, else as a run of
/// parts placed while the next is encoded (`groups`).
pub(super) async fn put_swarm<B>(
    gw: &Gateway,
    bucket: &Bucket,
    key: &str,
    source: Source<B>,
    tags: Option<&Tags>,
) -> Result<ObjectInfo, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let mut reader = GroupReader::new(gw, bucket, source);
    let first = encode_group(gw, &mut reader).await?;
    if reader.ended() {
        let attrs = match tags.map(Tags::commit).transpose() {
            Ok(attrs) => attrs,
            Err(e) => {
                first.staging.finish().await;
                return Err(e);
            }
        };
        let by = tags.and_then(|t| t.put.placed_by.as_deref());
        return place(gw, first, bucket, key, attrs.as_ref(), by).await;
    }
    super::groups::put_grouped(gw, bucket, key, reader, first, tags).await
}

/// A group of an upload encoded into its staging folder, its disk space reserved until it is
/// placed.
pub(super) struct Staged {
    staging: Staging,
    data_key: DataKey,
    encoded: Encoded,
    infos: Vec<ShardInfo>,
    _space: Reserved,
}

impl Staged {
    /// SHA-256 of the group's plaintext.
    pub(super) fn sha256(&self) -> [u8; 32] {
        self.encoded.sha256
    }

    /// Plaintext bytes of the group.
    pub(super) fn size(&self) -> u64 {
        self.encoded.layout.size
    }
}

/// Places a staged group's shards and commits it as object `bucket`/`key` (with `attrs`, for
/// access key `placed_by`); the staging copies go either way.
pub(super) async fn place(
    gw: &Gateway,
    mut staged: Staged,
    bucket: &Bucket,
    key: &str,
    attrs: Option<&ObjectAttrs>,
    placed_by: Option<&str>,
) -> Result<ObjectInfo, GatewayError> {
    let result = place_staged(gw, &mut staged, bucket, key, attrs, placed_by).await;
    staged.staging.finish().await;
    result
}

async fn place_staged(
    gw: &Gateway,
    staged: &mut Staged,
    bucket: &Bucket,
    key: &str,
    attrs: Option<&ObjectAttrs>,
    placed_by: Option<&str>,
) -> Result<ObjectInfo, GatewayError> {
    let inner = &gw.inner;
    let wrapped = inner
        .master
        .wrap(&staged.data_key)
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    let infos = &staged.infos;
    let manifest = staged
        .encoded
        .manifest(KeyRef::Wrapped(wrapped), infos)
        .to_bytes();
    let rows = shard_rows(infos);
    let hashes: Vec<_> = rows.iter().map(|r| r.info_hash).collect();
    // Recorded before any node hears of them, so a failure from here on leaves orphans to collect.
    inner.meta.begin_shards(&rows, unix_now()).await?;
    let object = NewObject {
        bucket: &bucket.name,
        key,
        size: staged.encoded.layout.size,
        sha256: &staged.encoded.sha256,
        attrs,
        body: StoredBody::Swarm {
            manifest: &manifest,
            shards: &hashes,
        },
        placed_by,
    };
    let placed = seed_and_place(gw, &mut staged.staging, &bucket.policy.placement(), infos).await;
    let committed = match placed {
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

/// The metadata rows of an object's shards, in shard order.
pub(super) fn shard_rows(infos: &[ShardInfo]) -> Vec<ShardRow> {
    infos
        .iter()
        .enumerate()
        .map(|(idx, s)| ShardRow {
            info_hash: s.info_hash(),
            idx: idx as u32,
            length: s.length,
            info: s.info_bytes(),
        })
        .collect()
}

type UploadBody<B> = tokio::io::Chain<std::io::Cursor<Vec<u8>>, B>;

/// An upload read group by group: up to `group_size` bytes each.
pub(super) struct GroupReader<B> {
    upload: Upload<UploadBody<B>>,
    policy: BucketPolicy,
    /// Bytes not read yet, when the upload's length is known.
    left: Option<u64>,
    /// SHA-256 of the whole upload, kept when it may take more than one group.
    whole: Option<Sha256>,
    read: u64,
    ended: bool,
}

impl<B: AsyncRead + Unpin> GroupReader<B> {
    pub(super) fn new(gw: &Gateway, bucket: &Bucket, source: Source<B>) -> Self {
        let config = &gw.inner.config;
        let too_large: fn(u64) -> GatewayError =
            |max| GatewayError::TooLarge { size: max + 1, max };
        let limit = source.size_hint.unwrap_or(config.max_object_size);
        let body = std::io::Cursor::new(source.head).chain(source.body);
        let grouped = source.size_hint.map_or(true, |s| s > config.group_size);
        GroupReader {
            upload: Upload::new(body, config.body_timeout, limit, too_large),
            policy: bucket.policy,
            left: source.size_hint,
            whole: grouped.then(Sha256::new),
            read: 0,
            ended: false,
        }
    }

    /// Whether the whole upload has been read.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes read so far.
    pub(super) fn read(&self) -> u64 {
        self.read
    }

    /// SHA-256 of the whole upload, once it [`ended`](GroupReader::ended).
    pub(super) fn sha256(&mut self) -> [u8; 32] {
        self.whole.take().unwrap_or_default().finalize().into()
    }

    /// Sizes `buf` for the next segment: a whole `segment`, or the rest of an upload of known
    /// length when that is less (an S3 part far smaller than a segment allocates its own size).
    fn fit(&self, buf: &mut Vec<u8>, segment: usize) {
        let len = self.left.map_or(segment, |l| {
            usize::try_from(l).unwrap_or(usize::MAX).min(segment)
        });
        buf.resize(len, 0);
    }

    /// Reads the next segment into `buf`: its length and whether the upload ends with it.
    async fn segment(&mut self, buf: &mut [u8]) -> Result<(usize, bool), GatewayError> {
        let (n, last) = self.upload.segment(buf).await?;
        self.read += n as u64;
        self.left = self.left.map(|l| l.saturating_sub(n as u64));
        self.ended = last;
        Ok((n, last))
    }
}

/// Encodes the next group of the upload into a new staging folder, one file per shard named as
/// its torrent names it; the folder's disk space is reserved first.
pub(super) async fn encode_group<B>(
    gw: &Gateway,
    reader: &mut GroupReader<B>,
) -> Result<Staged, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let config = &gw.inner.config;
    let p = reader.policy;
    let hint = reader
        .left
        .map_or(config.group_size, |l| l.min(config.group_size));
    let geometry = Geometry::choose(p.k, p.m, config.segment_target, Some(hint))
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let segments = group_segments(config.group_size, geometry.segment_size, reader.left);
    let most = segments * geometry.segment_size;
    let most = reader.left.map_or(most, |l| l.min(most));
    let space = gw.inner.admission.reserve(staged_len(geometry, most)?)?;
    let staging = Staging::create(&config.data_dir, &gw.inner.local).await?;
    let data_key = DataKey::generate().map_err(|e| GatewayError::Internal(e.to_string()))?;
    match encode_staged(&staging, reader, geometry, &data_key, segments).await {
        Ok((encoded, infos)) => Ok(Staged {
            staging,
            data_key,
            encoded,
            infos,
            _space: space,
        }),
        Err(e) => {
            staging.finish().await;
            Err(e)
        }
    }
}

/// Segments in the next group: the whole rest of an upload of known length up to `group_size`
/// (so such an object is one group), else the whole segments closest to `group_size`.
fn group_segments(group_size: u64, segment_size: u64, left: Option<u64>) -> u64 {
    match left {
        Some(left) if left <= group_size => left.div_ceil(segment_size).max(1),
        _ => ((group_size + segment_size / 2) / segment_size).max(1),
    }
}

/// Bytes of the shards of `plain` bytes coded with `geometry`.
fn staged_len(geometry: Geometry, plain: u64) -> Result<u64, GatewayError> {
    Layout::new(geometry, plain)
        .map(|l| l.shard_len().saturating_mul(geometry.shard_count() as u64))
        .map_err(|e| GatewayError::BadRequest(e.to_string()))
}

/// Encodes up to `segments` segments of the upload into the staging folder. Segments are read on
/// the runtime and encoded on a blocking thread one at a time, the next read while the previous
/// is coded (and hashed whole, beside it), so a slow client holds no thread.
async fn encode_staged<B>(
    staging: &Staging,
    reader: &mut GroupReader<B>,
    geometry: Geometry,
    data_key: &DataKey,
    segments: u64,
) -> Result<(Encoded, Vec<ShardInfo>), GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let parts: Vec<String> = (0..geometry.shard_count())
        .map(|i| format!("{i}.part"))
        .collect();
    let mut outs = staging.open_files(&parts).await?;
    let mut encoder = SegmentEncoder::new(geometry, data_key).map_err(internal)?;
    let encoder_segment = encoder.segment_size();
    let mut whole = reader.whole.take();
    let (mut plain, mut next) = (Vec::new(), Vec::new());
    reader.fit(&mut plain, encoder_segment);
    let (mut len, mut last) = reader.segment(&mut plain).await?;
    for segment in 1.. {
        let last_here = last || segment == segments;
        // The next segment arrives from the client while this one is coded and written.
        let shared = Arc::new(plain);
        let coding = blocking({
            let plain = shared.clone();
            move || {
                encoder
                    .push(&plain[..len], last_here, &mut outs)
                    .map_err(internal)?;
                Ok((encoder, outs))
            }
        });
        let hashing = blocking({
            let plain = shared.clone();
            move || {
                if let Some(w) = whole.as_mut() {
                    w.update(&plain[..len]);
                }
                Ok(whole)
            }
        });
        let reading = async {
            match last_here {
                true => None,
                false => {
                    reader.fit(&mut next, encoder_segment);
                    Some(reader.segment(&mut next).await)
                }
            }
        };
        let (coded, hashed, read) = tokio::join!(coding, hashing, reading);
        ((encoder, outs), whole) = (coded?, hashed?);
        plain = Arc::try_unwrap(shared).expect("the coding and hashing tasks are done");
        let Some(read) = read else { break };
        (len, last) = read?;
        std::mem::swap(&mut plain, &mut next);
    }
    reader.whole = whole;
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
    // The gateway's seeder is a peer the node can dial at once, before any announce.
    let peers = [inner.local.data_addr()];
    place_copies(gw, policy, infos, &peers, &mut |_| {}).await
}

/// What a placement did, as it happens.
pub(super) enum Placed<'a> {
    /// A round asked these nodes to hold these shards (by shard index).
    Asked(&'a [(usize, NodeId)]),
    /// A node confirmed its copy of a shard.
    Confirmed(usize),
}

/// Gets every shard its copies, confirmed by the nodes, in rounds: each round's holds name
/// `peers` as the shards' sources; a node that refuses or fails is left out of the next round.
pub(super) async fn place_copies(
    gw: &Gateway,
    policy: &Policy,
    infos: &[ShardInfo],
    peers: &[SocketAddr],
    progress: &mut (dyn FnMut(Placed<'_>) + Send),
) -> Result<(), GatewayError> {
    let mut rounds = Rounds::new(infos.len(), policy.copies, PLACEMENT_ROUNDS);
    loop {
        let needs = match rounds.next() {
            Next::Done => return Ok(()),
            Next::GiveUp(why) => {
                metrics().placement_failures.inc();
                return Err(GatewayError::InsufficientNodes(why));
            }
            Next::Place(needs) => needs,
        };
        let (jobs, shard_of): (Vec<HoldJob>, Vec<usize>) =
            plan_round(gw, policy, infos, &needs, rounds.excluded())?
                .into_iter()
                .unzip();
        let asked: Vec<_> = jobs
            .iter()
            .zip(&shard_of)
            .map(|(j, s)| (*s, j.node))
            .collect();
        progress(Placed::Asked(&asked));
        let held = gw
            .inner
            .copies
            .hold(jobs, peers, TransferKind::Hold)
            .await?;
        for h in held {
            let shard = shard_of[h.job];
            match h.outcome {
                Ok(()) => {
                    rounds.confirmed(shard, h.node);
                    progress(Placed::Confirmed(shard));
                }
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
    excluded: &[NodeId],
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
        metrics().placement_failures.inc();
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

#[cfg(test)]
mod tests {
    use super::group_segments;

    #[test]
    fn a_group_is_the_rest_of_a_short_upload_or_the_segments_closest_to_its_size() {
        let (group, seg) = (1000, 255);
        // Known and up to a group: all of it, even past a whole number of segments.
        assert_eq!(group_segments(group, seg, Some(1000)), 4);
        assert_eq!(group_segments(group, seg, Some(1)), 1);
        // Longer or unknown: 1000 / 255 = 3.9 segments, so 4.
        assert_eq!(group_segments(group, seg, Some(1001)), 4);
        assert_eq!(group_segments(group, seg, None), 4);
        assert_eq!(group_segments(group, 300, None), 3);
        // Segments bigger than the group: one at a time.
        assert_eq!(group_segments(group, 4000, None), 1);
    }
}
