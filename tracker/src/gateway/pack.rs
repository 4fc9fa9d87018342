//! The packer: small objects (above their bucket's `inline_max`, up to `packing.max_object`)
//! wait in the metadata store, sealed, until enough of one bucket's make a pack
//! (`packing.target` bytes) or the oldest has waited `packing.linger`; the pack is then written
//! through the ordinary write path as one object of the bucket's pack bucket, and its members
//! are pointed at it. So a thousand small objects cost one set of shard torrents, not a
//! thousand.
//!
//! Space of deleted members is reclaimed by compaction: a pack mostly dead
//! (`packing.compact_below`), or one of several small packs, has its live members turned back
//! into waiting objects and is deleted (its shards go to the collector); the next pass packs
//! them again with whatever else waits. Each step keeps a member's bytes somewhere durable: in a
//! pack, or sealed in the metadata store.

use std::sync::atomic::Ordering;
use std::time::Duration;

use raidtorrent_codec::ShardInfo;
use sha2::{Digest, Sha256};

use super::config::PackConfig;
use super::meta::{pack_bucket_name, Member, PackStats, Waiting};
use super::worker::{Worker, WorkerHandle};
use super::write::{self, Source};
use super::{Gateway, GatewayError};
use crate::registry::unix_now;

/// Small packs of one bucket merged at once: each merge makes a pack about this many times
/// bigger, so a byte is rewritten a few times at most on its way into a full pack.
const MERGE_FANIN: usize = 4;

/// The packer.
pub(super) struct Packer {
    pub gw: Gateway,
    pub cfg: PackConfig,
}

impl Worker for Packer {
    fn name(&self) -> &'static str {
        "packer"
    }

    fn between_steps(&self) -> Duration {
        (self.cfg.linger / 2).max(Duration::from_millis(100))
    }

    async fn step(&mut self, _: &WorkerHandle) -> Result<(), GatewayError> {
        let packed = pack_due(&self.gw, &self.cfg).await?;
        let compacted = compact(&self.gw, &self.cfg).await?;
        if packed + compacted > 0 {
            tracing::info!(packed, compacted, "small objects packed");
        }
        Ok(())
    }
}

/// Writes a pack for every bucket whose waiting objects are due; returns how many were packed.
async fn pack_due(gw: &Gateway, cfg: &PackConfig) -> Result<u64, GatewayError> {
    let now = unix_now();
    let linger = cfg.linger.as_secs() as i64;
    let mut packed = 0;
    let mut first_error = None;
    for w in gw.inner.meta.waiting_buckets().await? {
        let (mut bytes, mut oldest) = (w.bytes, w.oldest);
        // A full pack at once; what is left waits for more company, up to the linger.
        while bytes >= cfg.target || (bytes > 0 && now - oldest >= linger) {
            match pack_once(gw, &w.bucket, cfg.target).await {
                Ok(n) => packed += n,
                Err(e) => {
                    tracing::warn!(bucket = %w.bucket, error = %e, "a pack was not written");
                    first_error.get_or_insert(e);
                    break;
                }
            }
            let left = gw.inner.meta.waiting_buckets().await?;
            let now_left = left.iter().find(|l| l.bucket == w.bucket);
            (bytes, oldest) = now_left.map_or((0, now), |l| (l.bytes, l.oldest));
        }
    }
    recount_waiting(gw).await?;
    first_error.map_or(Ok(packed), Err)
}

/// Sets the count of waiting bytes from the metadata store.
async fn recount_waiting(gw: &Gateway) -> Result<(), GatewayError> {
    let waiting: u64 = gw
        .inner
        .meta
        .waiting_buckets()
        .await?
        .iter()
        .map(|w| w.bytes)
        .sum();
    gw.inner.waiting_bytes.store(waiting, Ordering::Relaxed);
    Ok(())
}

/// Packs the oldest waiting objects of `bucket`, up to `target` bytes; returns how many objects
/// now live in the new pack.
async fn pack_once(gw: &Gateway, bucket: &str, target: u64) -> Result<u64, GatewayError> {
    let meta = &gw.inner.meta;
    let client_bucket = meta.bucket(bucket).await?;
    let waiting = meta.waiting(bucket, target).await?;
    let (plain, members) = concat(gw, &waiting)?;
    let pack_bucket = meta.pack_bucket(&client_bucket).await?;
    let key = format!("{}-{}", unix_now(), ShardInfo::random_name());
    let source = Source {
        size_hint: Some(plain.len() as u64),
        head: plain,
        body: tokio::io::empty(),
    };
    write::put_swarm(gw, &pack_bucket, &key, source, None).await?;
    let pack = meta.object(&pack_bucket.name, &key).await?;
    let settled = meta.settle_pack(pack.id, &members).await?;
    if settled == 0 {
        // Every member went while the pack was written.
        drop_pack(gw, pack.id, &[]).await?;
    }
    Ok(settled)
}

/// The plaintext of a pack made of `waiting`, and where each member's bytes are in it.
fn concat(gw: &Gateway, waiting: &[Waiting]) -> Result<(Vec<u8>, Vec<Member>), GatewayError> {
    let mut plain = Vec::with_capacity(waiting.iter().map(|w| w.size as usize).sum());
    let mut members = Vec::with_capacity(waiting.len());
    for w in waiting {
        let data = gw.open_inline(&w.sealed, true)?;
        if data.len() as u64 != w.size {
            return Err(GatewayError::Internal(format!(
                "object {} holds {} bytes, not its {}",
                w.id,
                data.len(),
                w.size
            )));
        }
        let start = plain.len() as u64;
        plain.extend_from_slice(&data);
        members.push((w.id, start..plain.len() as u64));
    }
    Ok((plain, members))
}

/// Compacts the packs of every client bucket that need it; returns how many packs went.
async fn compact(gw: &Gateway, cfg: &PackConfig) -> Result<u64, GatewayError> {
    let meta = &gw.inner.meta;
    let mut gone = 0;
    for bucket in meta.buckets().await? {
        let packs = meta.packs(&pack_bucket_name(&bucket.name)).await?;
        let room = cfg
            .max_waiting
            .saturating_sub(gw.inner.waiting_bytes.load(Ordering::Relaxed));
        for pack in plan_compaction(&packs, cfg, room) {
            let live = unpack(gw, pack).await?;
            gw.inner.waiting_bytes.fetch_add(live, Ordering::Relaxed);
            gone += 1;
        }
    }
    Ok(gone)
}

/// Which packs to compact (by id): every pack nobody refers to; packs whose live share fell below
/// `compact_below`; and, when a bucket has [`MERGE_FANIN`] or more packs under half the target
/// size, those. Packs with live bytes are taken while their bytes fit in `room` (the waiting
/// space left).
pub(super) fn plan_compaction(packs: &[PackStats], cfg: &PackConfig, mut room: u64) -> Vec<i64> {
    let mostly_dead = |p: &PackStats| (p.live as f64) < cfg.compact_below * p.size as f64;
    let small = |p: &PackStats| p.size < cfg.target / 2;
    let merge_small = packs.iter().filter(|p| small(p)).count() >= MERGE_FANIN;
    let mut chosen = Vec::new();
    for p in packs {
        if p.members == 0 {
            chosen.push(p.id);
        } else if (mostly_dead(p) || (merge_small && small(p))) && p.live <= room {
            room -= p.live;
            chosen.push(p.id);
        }
    }
    chosen
}

/// Turns a pack's live members back into waiting objects and deletes it; returns their bytes.
async fn unpack(gw: &Gateway, pack: i64) -> Result<u64, GatewayError> {
    let meta = &gw.inner.meta;
    let members = meta.pack_members(pack).await?;
    if members.is_empty() {
        drop_pack(gw, pack, &[]).await?;
        return Ok(0);
    }
    let row = meta.object_by_id(pack).await?;
    let plain = read_all(gw, &row).await?;
    let mut sealed = Vec::with_capacity(members.len());
    let mut live = 0;
    for m in &members {
        let part = plain
            .get(m.at.start as usize..m.at.end as usize)
            .ok_or_else(|| GatewayError::Internal(format!("object {} lies past its pack", m.id)))?;
        if Sha256::digest(part)[..] != m.sha256[..] {
            return Err(GatewayError::Internal(format!(
                "object {} does not match its hash in pack {pack}; the pack is kept",
                m.id
            )));
        }
        sealed.push((m.id, gw.seal(part)?));
        live += part.len() as u64;
    }
    drop_pack(gw, pack, &sealed).await?;
    Ok(live)
}

/// Unpacks `members` (sealed bytes) of a pack and deletes the pack if that leaves it unused.
async fn drop_pack(
    gw: &Gateway,
    pack: i64,
    members: &[(i64, Vec<u8>)],
) -> Result<(), GatewayError> {
    if gw.inner.meta.unpack(pack, members).await? {
        gw.wake_collector();
    }
    Ok(())
}

/// A whole swarm object's bytes.
async fn read_all(gw: &Gateway, row: &super::meta::ObjectRow) -> Result<Vec<u8>, GatewayError> {
    let mut body = gw.read_swarm(row, 0..row.info.size).await?;
    let mut plain = Vec::with_capacity(row.info.size as usize);
    while let Some(chunk) = body.recv().await {
        plain.extend_from_slice(&chunk.map_err(GatewayError::Upload)?);
    }
    if plain.len() as u64 != row.info.size {
        return Err(GatewayError::Internal(format!(
            "pack {} read {} of its {} bytes",
            row.id,
            plain.len(),
            row.info.size
        )));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(id: i64, size: u64, live: u64, members: u64) -> PackStats {
        PackStats {
            id,
            size,
            live,
            members,
        }
    }

    fn cfg() -> PackConfig {
        PackConfig {
            target: 100,
            compact_below: 0.5,
            ..PackConfig::default()
        }
    }

    #[test]
    fn empty_and_mostly_dead_packs_go() {
        let packs = [
            pack(1, 100, 0, 0),
            pack(2, 100, 49, 3),
            pack(3, 100, 50, 3),
            pack(4, 100, 100, 9),
        ];
        assert_eq!(plan_compaction(&packs, &cfg(), 1000), vec![1, 2]);
    }

    #[test]
    fn small_packs_merge_only_when_enough_of_them() {
        let three: Vec<_> = (1..=3).map(|i| pack(i, 20, 20, 1)).collect();
        assert!(plan_compaction(&three, &cfg(), 1000).is_empty());
        let mut four = three.clone();
        four.push(pack(4, 49, 49, 2));
        four.push(pack(5, 100, 100, 5));
        assert_eq!(plan_compaction(&four, &cfg(), 1000), vec![1, 2, 3, 4]);
    }

    #[test]
    fn room_bounds_what_is_unpacked_but_not_what_is_dropped() {
        let packs = [pack(1, 100, 30, 1), pack(2, 100, 30, 1), pack(3, 100, 0, 0)];
        assert_eq!(plan_compaction(&packs, &cfg(), 40), vec![1, 3]);
        assert_eq!(plan_compaction(&packs, &cfg(), 0), vec![3]);
    }
}
