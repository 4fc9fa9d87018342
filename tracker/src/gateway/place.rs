//! Client placements (RT-0004): a client that encrypted and coded an object itself hands the
//! gateway its manifest (without the key) and its shards' info dicts; the gateway checks them,
//! chooses nodes, sends the holds naming the client as the source, and commits the object once
//! every copy is confirmed, exactly as for its own uploads (`write::place_copies`). The gateway
//! never sees a byte of the object. A read capability's holder gets the manifest and the
//! holders' addresses back ([`Gateway::capability_read`]) and reads from the nodes.
//!
//! A client that gives up (its user pressed Ctrl-C) cancels its placement
//! ([`Gateway::cancel_placement`]): the holds still out are dropped, the shards become orphans the
//! collector removes from the nodes, and nothing becomes visible. A placement that already
//! reached its commit is not undone: it ends `stored`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use raidtorrent_codec::{KeyRef, Manifest, Metainfo, ShardInfo};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::meta::{NewObject, StoredBody};
use super::model::{check_key, Bucket, ObjectInfo};
use super::write::{place_copies, shard_rows, Placed};
use super::{ActiveKey, Gateway, GatewayError};
use crate::registry::{unix_now, NodeId};

/// Most addresses a client may name as its own.
pub const MAX_CLIENT_PEERS: usize = 8;
/// How long a placement's outcome is kept after it ended.
const KEPT_AFTER_END: Duration = Duration::from_secs(600);
/// Longest a status request waits for a change.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A client's placement request: its manifest, each shard's info dict, where it listens.
#[derive(Debug, Clone)]
pub struct ClientShards {
    pub manifest: Vec<u8>,
    pub infos: Vec<Vec<u8>>,
    pub peers: Vec<SocketAddr>,
}

/// Where a placement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaceState {
    Placing,
    Stored,
    Failed,
}

/// One shard of a placement: the nodes asked to hold it and how many confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct ShardPlacement {
    pub info_hash: String,
    pub nodes: Vec<String>,
    pub confirmed: usize,
}

/// A placement as its client follows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementStatus {
    pub placement: String,
    pub state: PlaceState,
    pub copies: usize,
    pub shards: Vec<ShardPlacement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectInfo>,
}

/// A placement as the gateway keeps it: its status and the token its client cancels it with.
#[derive(Clone)]
struct Entry {
    status: watch::Receiver<PlacementStatus>,
    cancel: CancellationToken,
    /// The access key that started it (None: the operator).
    owner: Option<String>,
}

/// The placements in progress or recently ended, by id.
#[derive(Default)]
pub(super) struct Placements {
    by_id: Mutex<HashMap<String, Entry>>,
}

impl Placements {
    fn insert(&self, id: String, entry: Entry) {
        self.by_id
            .lock()
            .expect("placements lock")
            .insert(id, entry);
    }

    fn get(&self, id: &str) -> Option<Entry> {
        self.by_id.lock().expect("placements lock").get(id).cloned()
    }

    fn remove(&self, id: &str) {
        self.by_id.lock().expect("placements lock").remove(id);
    }
}

/// What a capability's holder needs to read an object from the nodes.
#[derive(Debug, Clone)]
pub struct CapabilityRead {
    pub manifest: Vec<u8>,
    /// Each shard's info dict and the addresses of its holders that may serve, best first.
    pub shards: Vec<(Vec<u8>, Vec<SocketAddr>)>,
    /// Some shard has fewer holders able to serve than the policy's copies.
    pub at_risk: bool,
}

/// Checks a client's manifest and info dicts against each other and the bucket's policy.
pub fn check_client_shards(
    bucket: &Bucket,
    req: &ClientShards,
    max_size: u64,
) -> Result<(Manifest, Vec<ShardInfo>), GatewayError> {
    let bad = |why: String| GatewayError::BadRequest(why);
    let manifest = Manifest::parse(&req.manifest).map_err(|e| bad(format!("manifest: {e}")))?;
    if !matches!(manifest.key, KeyRef::Client { .. }) {
        return Err(bad("the manifest's key must be of kind `client`".into()));
    }
    let (g, p) = (manifest.layout.geometry, bucket.policy);
    if (g.k, g.m) != (p.k, p.m) {
        return Err(bad(format!(
            "bucket {} stores objects as {} + {} shards; the manifest has {} + {}",
            bucket.name, p.k, p.m, g.k, g.m
        )));
    }
    if manifest.layout.size > max_size {
        let size = manifest.layout.size;
        return Err(GatewayError::TooLarge {
            size,
            max: max_size,
        });
    }
    if req.infos.len() != manifest.shards.len() {
        return Err(bad(format!(
            "{} info dicts for {} shards",
            req.infos.len(),
            manifest.shards.len()
        )));
    }
    if req.peers.len() > MAX_CLIENT_PEERS {
        return Err(bad(format!("at most {MAX_CLIENT_PEERS} peers")));
    }
    let infos = req
        .infos
        .iter()
        .zip(&manifest.shards)
        .enumerate()
        .map(|(i, (bytes, want))| {
            let info = shard_info(bytes).map_err(|e| bad(format!("shard {i}: {e}")))?;
            let same = info.info_hash() == want.info_hash
                && info.length == want.length
                && info.piece_length == want.piece_length;
            match same {
                true => Ok(info),
                false => Err(bad(format!("shard {i}'s info dict is not the manifest's"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((manifest, infos))
}

/// A shard's info dict, checked as RT-0001 defines it.
fn shard_info(info: &[u8]) -> Result<ShardInfo, raidtorrent_codec::MetainfoError> {
    Metainfo::parse(&[&b"d4:info"[..], info, b"e"].concat())?.shard()
}

/// A fresh placement id: 128 random bits in hex.
fn placement_id() -> String {
    ShardInfo::random_name()
}

impl Gateway {
    /// Starts placing a client's shards for `bucket`/`key`, for access key `by` (its quota holds
    /// the object's size until the placement ends); answers once the first round's nodes are
    /// asked (or the placement failed before any was).
    pub async fn place(
        &self,
        bucket: &str,
        key: &str,
        req: ClientShards,
        by: Option<&ActiveKey>,
    ) -> Result<PlacementStatus, GatewayError> {
        let b = self.inner.meta.bucket(bucket).await?;
        check_key(key)?;
        let max = self.inner.config.max_object_size;
        let (manifest, infos) = check_client_shards(&b, &req, max)?;
        let quota = match by {
            Some(k) => Some(self.reserve_quota(k, manifest.layout.size).await?),
            None => None,
        };
        for info in &infos {
            if self.inner.meta.shard(&info.info_hash()).await?.is_some() {
                return Err(GatewayError::BadRequest(format!(
                    "shard {} is already stored",
                    info.info_hash()
                )));
            }
        }
        let turn = self.inner.admission.put().await?;
        let rows = shard_rows(&infos);
        // Recorded before any node hears of them, so a failure from here on leaves orphans.
        self.inner.meta.begin_shards(&rows, unix_now()).await?;
        let id = placement_id();
        let (tx, rx) = watch::channel(first_status(&id, &b, &infos));
        let cancel = CancellationToken::new();
        let owner = by.map(|k| k.access_key.clone());
        let entry = Entry {
            status: rx.clone(),
            cancel: cancel.clone(),
            owner: owner.clone(),
        };
        self.inner.placements.insert(id.clone(), entry);
        let job = PlaceJob {
            gw: self.clone(),
            bucket: b,
            key: key.to_owned(),
            manifest: req.manifest,
            sha256: manifest.sha256,
            size: manifest.layout.size,
            infos,
            peers: req.peers,
            placed_by: owner,
        };
        let (started, first_round) = oneshot::channel();
        tokio::spawn(async move {
            job.run(&tx, started, &cancel).await;
            drop((turn, quota));
            tokio::time::sleep(KEPT_AFTER_END).await;
            job.gw.inner.placements.remove(&id);
        });
        match first_round.await {
            Ok(Ok(())) => Ok(rx.borrow().clone()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GatewayError::Internal("the placement task ended".into())),
        }
    }

    /// A placement's status: at once, or when it next changes within `wait`.
    pub async fn placement(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<PlacementStatus, GatewayError> {
        let mut rx = self.placement_entry(id)?.status;
        let now = rx.borrow_and_update().clone();
        if now.state != PlaceState::Placing || wait.is_zero() {
            return Ok(now);
        }
        let _ = tokio::time::timeout(wait.min(MAX_WAIT), rx.changed()).await;
        let latest = rx.borrow().clone();
        Ok(latest)
    }

    /// Cancels a placement for its client and answers its status once it ended (up to
    /// [`MAX_WAIT`]): `failed` with nothing visible and its shards left to the collector, or
    /// `stored` when it had already reached its commit. An ended placement is answered as is.
    pub async fn cancel_placement(&self, id: &str) -> Result<PlacementStatus, GatewayError> {
        let entry = self.placement_entry(id)?;
        entry.cancel.cancel();
        let mut rx = entry.status;
        let ended = rx.wait_for(|s| s.state != PlaceState::Placing);
        let _ = tokio::time::timeout(MAX_WAIT, ended).await;
        let latest = rx.borrow().clone();
        Ok(latest)
    }

    /// The access key that started a placement (None: the operator).
    pub fn placement_owner(&self, id: &str) -> Result<Option<String>, GatewayError> {
        Ok(self.placement_entry(id)?.owner)
    }

    fn placement_entry(&self, id: &str) -> Result<Entry, GatewayError> {
        self.inner
            .placements
            .get(id)
            .ok_or_else(|| GatewayError::NoSuchPlacement(id.to_owned()))
    }

    /// The manifest and holders of a client-keyed object whose manifest hashes to `manifest`;
    /// `NoSuchKey` otherwise, whatever the reason.
    pub async fn capability_read(
        &self,
        bucket: &str,
        key: &str,
        manifest: &[u8; 32],
    ) -> Result<CapabilityRead, GatewayError> {
        let missing = || GatewayError::NoSuchKey(key.to_owned());
        let row = self
            .inner
            .meta
            .object(bucket, key)
            .await
            .map_err(|_| missing())?;
        let bytes = row.manifest.as_deref().ok_or_else(missing)?;
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let parsed = Manifest::parse(bytes).map_err(|_| missing())?;
        if hash != *manifest || !matches!(parsed.key, KeyRef::Client { .. }) {
            return Err(missing());
        }
        let b = self.inner.meta.bucket(bucket).await?;
        let rows = self.inner.meta.shards_of(row.id).await?;
        let snapshot = self.inner.nodes.snapshot();
        let mut shards = Vec::with_capacity(rows.len());
        let mut at_risk = rows.len() < parsed.shards.len();
        for r in rows {
            let holders = self.inner.meta.holders(&r.info_hash).await?;
            let sources = snapshot.sources(&holders);
            at_risk |= sources.len() < usize::from(b.policy.copies);
            shards.push((r.info, sources));
        }
        Ok(CapabilityRead {
            manifest: bytes.to_vec(),
            shards,
            at_risk,
        })
    }
}

fn first_status(id: &str, b: &Bucket, infos: &[ShardInfo]) -> PlacementStatus {
    PlacementStatus {
        placement: id.to_owned(),
        state: PlaceState::Placing,
        copies: usize::from(b.policy.copies),
        shards: infos
            .iter()
            .map(|i| ShardPlacement {
                info_hash: i.info_hash().to_hex(),
                nodes: Vec::new(),
                confirmed: 0,
            })
            .collect(),
        error: None,
        object: None,
    }
}

/// One client placement, run to its end on its own task.
struct PlaceJob {
    gw: Gateway,
    bucket: Bucket,
    key: String,
    manifest: Vec<u8>,
    sha256: [u8; 32],
    size: u64,
    infos: Vec<ShardInfo>,
    peers: Vec<SocketAddr>,
    placed_by: Option<String>,
}

impl PlaceJob {
    /// Places and commits; `started` hears once the first round's nodes are asked, or why the
    /// placement failed before any was. `cancel` stops it before its commit, never during.
    async fn run(
        &self,
        tx: &watch::Sender<PlacementStatus>,
        started: oneshot::Sender<Result<(), GatewayError>>,
        cancel: &CancellationToken,
    ) {
        let policy = self.bucket.policy.placement();
        let snapshot = self.gw.inner.nodes.snapshot();
        let addr = |n: NodeId| snapshot.data_addr(n).map(|a| a.to_string());
        let mut started = Some(started);
        let mut progress = |p: Placed<'_>| {
            tx.send_modify(|s| match p {
                Placed::Asked(asked) => {
                    for &(shard, node) in asked {
                        s.shards[shard].nodes.extend(addr(node));
                    }
                }
                Placed::Confirmed(shard) => s.shards[shard].confirmed += 1,
            });
            if let Some(started) = started.take() {
                let _ = started.send(Ok(()));
            }
        };
        // Dropping the holds mid-way is safe: a copy not yet recorded is left to the collector.
        let placed = tokio::select! {
            placed = place_copies(&self.gw, &policy, &self.infos, &self.peers, &mut progress) => placed,
            () = cancel.cancelled() => Err(GatewayError::PlacementCancelled),
        };
        let outcome = match placed {
            Ok(()) => self.commit().await,
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            self.abandon().await;
        }
        let (state, object, error) = match outcome {
            Ok(info) => (PlaceState::Stored, Some(info), None),
            Err(e) => {
                tracing::info!(error = %e, key = self.key, "a client placement failed");
                (PlaceState::Failed, None, Some(e))
            }
        };
        tx.send_modify(|s| {
            s.state = state;
            s.object = object;
            s.error = error.as_ref().map(ToString::to_string);
        });
        if let (Some(started), Some(e)) = (started, error) {
            let _ = started.send(Err(e));
        }
    }

    /// The placement failed: its shards become orphans, collected from the nodes now.
    async fn abandon(&self) {
        let hashes: Vec<_> = self.infos.iter().map(ShardInfo::info_hash).collect();
        if let Err(e) = self.gw.inner.meta.abandon_shards(&hashes).await {
            tracing::error!(error = %e, "a failed placement's shards were not abandoned");
        }
        self.gw.wake_collector();
    }

    async fn commit(&self) -> Result<ObjectInfo, GatewayError> {
        let hashes: Vec<_> = self.infos.iter().map(ShardInfo::info_hash).collect();
        let object = NewObject {
            bucket: &self.bucket.name,
            key: &self.key,
            size: self.size,
            sha256: &self.sha256,
            attrs: None,
            body: StoredBody::Swarm {
                manifest: &self.manifest,
                shards: &hashes,
            },
            placed_by: self.placed_by.as_deref(),
        };
        self.gw.inner.meta.commit_object(&object, unix_now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::model::BucketPolicy;
    use raidtorrent_codec::{encode, DataKey, Geometry};

    fn bucket(k: u16, m: u16) -> Bucket {
        let policy = BucketPolicy {
            k,
            m,
            copies: 2,
            high_share: 0.0,
            inline_max: 0,
        };
        Bucket {
            name: "b".into(),
            policy,
            created_at: 0,
        }
    }

    fn client_shards(k: u16, m: u16, key: KeyRef) -> ClientShards {
        let data = vec![9u8; 100_000];
        let g = Geometry::choose(k, m, 1 << 16, Some(data.len() as u64)).unwrap();
        let dk = DataKey::generate().unwrap();
        let mut outs = vec![Vec::new(); g.shard_count()];
        let encoded = encode(g, &dk, &data[..], &mut outs).unwrap();
        let infos = encoded.shard_infos();
        ClientShards {
            manifest: encoded.manifest(key, &infos).to_bytes(),
            infos: infos.iter().map(ShardInfo::info_bytes).collect(),
            peers: Vec::new(),
        }
    }

    fn client_key() -> KeyRef {
        KeyRef::Client {
            fingerprint: [1; 16],
        }
    }

    #[test]
    fn matching_shards_are_accepted() {
        let req = client_shards(4, 2, client_key());
        let (manifest, infos) = check_client_shards(&bucket(4, 2), &req, u64::MAX).unwrap();
        assert_eq!(infos.len(), 6);
        assert_eq!(manifest.layout.size, 100_000);
    }

    #[test]
    fn mismatches_are_refused_with_the_reason() {
        let refused = |b: &Bucket, req: &ClientShards, max: u64| {
            check_client_shards(b, req, max).unwrap_err().to_string()
        };
        let req = client_shards(4, 2, client_key());
        assert!(refused(&bucket(3, 2), &req, u64::MAX).contains("3 + 2 shards"));
        assert!(refused(&bucket(4, 2), &req, 10).contains("larger"));
        let mut swapped = req.clone();
        swapped.infos.swap(0, 1);
        assert!(refused(&bucket(4, 2), &swapped, u64::MAX).contains("shard 0"));
        let mut short = req.clone();
        short.infos.pop();
        assert!(refused(&bucket(4, 2), &short, u64::MAX).contains("5 info dicts"));
        let mut garbage = req.clone();
        garbage.manifest.truncate(10);
        assert!(refused(&bucket(4, 2), &garbage, u64::MAX).contains("manifest"));
        let mut peers = req;
        peers.peers = vec!["127.0.0.1:1".parse().unwrap(); MAX_CLIENT_PEERS + 1];
        assert!(refused(&bucket(4, 2), &peers, u64::MAX).contains("peers"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A stranger's bytes anywhere in the request: refused with a reason, never a panic,
        /// and never accepted unless the request still matches itself.
        #[test]
        fn a_damaged_request_is_refused_not_trusted(
            in_manifest in proptest::bool::ANY,
            which in 0usize..6,
            at in 0usize..4096,
            byte in proptest::num::u8::ANY,
        ) {
            let mut req = client_shards(4, 2, client_key());
            let target = match in_manifest {
                true => &mut req.manifest,
                false => &mut req.infos[which],
            };
            let at = at % target.len();
            let changed = target[at] != byte;
            target[at] = byte;
            let checked = check_client_shards(&bucket(4, 2), &req, u64::MAX);
            if changed && !in_manifest {
                proptest::prop_assert!(checked.is_err());
            }
        }
    }

    #[test]
    fn a_wrapped_key_is_refused() {
        let master = raidtorrent_codec::MasterKey::new("m", &[3; 32]).unwrap();
        let wrapped = master.wrap(&DataKey::generate().unwrap()).unwrap();
        let req = client_shards(4, 2, KeyRef::Wrapped(wrapped));
        let e = check_client_shards(&bucket(4, 2), &req, u64::MAX).unwrap_err();
        assert!(e.to_string().contains("client"), "{e}");
    }
}
