//! What an operator sees of one object: where its bytes are, each shard with its torrent facts,
//! where each copy lives and in what state (as the health worker's latest pass classes it), and
//! how close the object is to loss.

use raidtorrent_codec::InfoHash;

use super::meta::ShardRow;
use super::model::{ObjectInfo, Storage};
use super::{Gateway, GatewayError};
use crate::placement::Policy;
use crate::registry::NodeId;
use crate::repair::{self, CopyClass, Redundancy};

/// One object as the operator view shows it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub info: ObjectInfo,
    /// The worst redundancy of its swarm objects; `None` for bytes kept in the metadata store,
    /// or before the health worker's first pass since start (`assessed` is false then).
    pub redundancy: Option<Redundancy>,
    /// Whether copies were classed against a health pass's view of the nodes.
    pub assessed: bool,
    pub policy: Option<Policy>,
    /// The swarm objects holding its bytes: its own, its pack, or its parts in order.
    pub parts: Vec<InspectedPart>,
}

#[derive(Debug, Clone)]
pub struct InspectedPart {
    /// The swarm object's key (a pack's or a part's internal name, or the object's own).
    pub name: String,
    pub shards: Vec<InspectedShard>,
}

#[derive(Debug, Clone)]
pub struct InspectedShard {
    pub index: u32,
    pub info_hash: InfoHash,
    pub length: u64,
    /// A data shard (index below `k`), or parity.
    pub data: bool,
    /// The torrent's file name.
    pub name: String,
    /// Each recorded copy and its class.
    pub copies: Vec<(NodeId, CopyClass)>,
}

impl Gateway {
    /// The object at `bucket`/`key` with its shards and copies.
    pub async fn inspect(&self, bucket: &str, key: &str) -> Result<Inspection, GatewayError> {
        let meta = &self.inner.meta;
        let row = meta.object(bucket, key).await?;
        let swarm_objects = match row.info.storage {
            Storage::Inline | Storage::Waiting => Vec::new(),
            Storage::Packed => row.pack.map(|(p, _)| vec![p]).unwrap_or_default(),
            Storage::Swarm => vec![row.id],
            Storage::Grouped => meta.parts(row.id).await?.iter().map(|p| p.id).collect(),
        };
        let (statuses, assessed) = {
            let findings = self.inner.findings.borrow();
            (findings.statuses.clone(), findings.last_pass_at.is_some())
        };
        let grace = self.inner.config.health.plan.grace_secs;
        let mut out = Inspection {
            info: row.info,
            redundancy: None,
            assessed,
            policy: None,
            parts: Vec::new(),
        };
        let mut worst = |r: Redundancy| {
            out.redundancy = Some(match out.redundancy {
                Some(w) if rank(w) >= rank(r) => w,
                _ => r,
            })
        };
        let mut parts = Vec::new();
        for id in swarm_objects {
            let name = meta.object_by_id(id).await?.info.key;
            let Some(state) = meta.object_state(id).await? else {
                // A part without live shards: none of its bytes can be read.
                worst(Redundancy::Unreadable);
                parts.push(InspectedPart {
                    name,
                    shards: Vec::new(),
                });
                continue;
            };
            let classed = repair::assess(&state, &statuses, grace);
            worst(classed.redundancy);
            let rows = meta.shards_of(id).await?;
            let shards = state
                .shards
                .iter()
                .zip(classed.copies)
                .map(|(s, copies)| InspectedShard {
                    index: s.idx,
                    info_hash: s.info_hash,
                    length: s.length,
                    data: (s.idx as usize) < state.policy.k,
                    name: torrent_name(&rows, &s.info_hash),
                    copies,
                })
                .collect();
            out.policy = Some(state.policy);
            parts.push(InspectedPart { name, shards });
        }
        out.parts = parts;
        if !assessed {
            out.redundancy = None;
        }
        Ok(out)
    }

    /// The torrent of `shard` (from an [`Inspection`]), announcing with `token` (an
    /// inspector's): what a stock client needs to fetch and check the shard.
    pub async fn torrent_for(
        &self,
        shard: &InspectedShard,
        token: &str,
    ) -> Result<Vec<u8>, GatewayError> {
        let row = self
            .inner
            .meta
            .shard(&shard.info_hash)
            .await?
            .ok_or_else(|| GatewayError::NoSuchKey(format!("shard {}", shard.info_hash)))?;
        Ok(self.inner.local.announce.torrent(&row.shard_info()?, token))
    }

    /// The announce URL carrying `token`, as the gateway's torrents have it.
    pub fn announce_url(&self, token: &str) -> String {
        self.inner.local.announce.url(token)
    }

    /// Confirmed copies and their bytes per node.
    pub async fn held_by_node(&self) -> Result<Vec<(NodeId, u64, u64)>, GatewayError> {
        self.inner.meta.held_by_node().await
    }
}

/// Worse redundancy ranks higher.
fn rank(r: Redundancy) -> u8 {
    match r {
        Redundancy::Healthy => 0,
        Redundancy::Degraded => 1,
        Redundancy::AtRisk => 2,
        Redundancy::Unreadable => 3,
    }
}

fn torrent_name(rows: &[ShardRow], info_hash: &InfoHash) -> String {
    rows.iter()
        .find(|r| r.info_hash == *info_hash)
        .and_then(|r| r.shard_info().ok())
        .map_or_else(|| info_hash.to_hex(), |i| i.name)
}

impl Gateway {
    /// The gateway's own seeder's node id (registered as a node, but no volunteer).
    pub fn own_node(&self) -> NodeId {
        self.inner.local.own.id
    }
}
