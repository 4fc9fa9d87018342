//! `get` and `stat`: RT-0004 §3 from the reader's side. The gateway's `_cap` answer is checked
//! against the capability ([`check_answer`], pure): the manifest's SHA-256, the data key's
//! fingerprint, and every shard's info-hash. Then any k shards are fetched straight from their
//! holders in a short-lived session and decoded here; a whole read also checks the plaintext's
//! SHA-256 (the codec's [`decode`] does).
//!
//! The read is the gateway's own piece read (`raidtorrent-fetch`): a plain BEP 3 leecher dials
//! every holder of the data shards at once and fetches exactly the pieces the range needs, each
//! checked against its hash as it arrives; the decoder works on a segment as soon as its pieces
//! are in, and a parity shard starts only when a data shard fails: a holder whose port refuses
//! or that does not answer within a second or two is passed over at once for another holder of
//! its shard, or for a parity shard, while it is dialled again in the background. Nothing is
//! written to disk but the output. A piece that does not arrive within the stall timeout, or a
//! holder that does not come back within it, is given up.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use raidtorrent_codec::{
    decode, decode_range, DataKey, DecodeError, KeyRef, Layout, Manifest, Metainfo, ShardInfo,
};
use raidtorrent_fetch::{PieceRead, Sources};

use super::api::{base64_field, Api, CapAnswer, Credentials};
use super::cap::{CapError, Capability};
use super::progress::{Counter, CountingWrite, Progress};
use super::put::sha256;
use super::session::parse_nodes;
use super::{ClientError, ObjectName};

/// Where the object goes.
#[derive(Debug, Clone)]
pub enum Output {
    File(PathBuf),
    Stdout,
}

#[derive(Debug, Clone)]
pub struct GetOptions {
    /// Give up on a holder, and on a piece, when it does not arrive for this long.
    pub stall: Duration,
    pub progress: Progress,
}

/// One shard as the verified answer describes it.
#[derive(Debug, Clone)]
pub struct Shard {
    pub info: ShardInfo,
    pub nodes: Vec<SocketAddr>,
}

/// A `_cap` answer checked against its capability.
#[derive(Debug, Clone)]
pub struct Object {
    pub manifest: Manifest,
    pub shards: Vec<Shard>,
    pub at_risk: bool,
}

/// Fetches the object's manifest and holders and checks them against `cap`.
pub async fn lookup(cap: &Capability) -> Result<Object, ClientError> {
    // No API key: `_cap` needs none, and the capability's gateway may be anyone's.
    let api = Api::new(&cap.gateway, Credentials::None)?;
    let name = ObjectName {
        bucket: cap.bucket.clone(),
        key: cap.key.clone(),
    };
    let answer = api.cap(&name, &cap.manifest_sha256).await?;
    check_answer(cap, &answer)
}

/// The checks of RT-0004 §3 and §4: manifest hash, key fingerprint, shard info-hashes.
pub fn check_answer(cap: &Capability, answer: &CapAnswer) -> Result<Object, ClientError> {
    let bytes = base64_field("the manifest", &answer.manifest)?;
    if sha256(&bytes) != cap.manifest_sha256 {
        return Err(untrusted(
            "its manifest is not the one the capability names",
        ));
    }
    let manifest = Manifest::parse(&bytes).map_err(|e| untrusted(&format!("manifest: {e}")))?;
    match manifest.key {
        KeyRef::Client { fingerprint }
            if fingerprint == DataKey::from_bytes(cap.data_key).fingerprint() => {}
        KeyRef::Client { .. } => {
            return Err(
                CapError::Damaged("its data key does not match the object's manifest").into(),
            )
        }
        KeyRef::Wrapped(_) => return Err(untrusted("the object is not client-keyed")),
    }
    if answer.shards.len() != manifest.shards.len() {
        return Err(untrusted(
            "it lists a different number of shards than the manifest",
        ));
    }
    let shards = answer
        .shards
        .iter()
        .zip(&manifest.shards)
        .map(|(s, r)| check_shard(&s.info, &s.nodes, &r.info_hash))
        .collect::<Result<_, _>>()?;
    Ok(Object {
        manifest,
        shards,
        at_risk: answer.at_risk,
    })
}

fn check_shard(
    info_b64: &str,
    nodes: &[String],
    expected: &raidtorrent_codec::InfoHash,
) -> Result<Shard, ClientError> {
    let info = base64_field("a shard's info dict", info_b64)?;
    let torrent = [&b"d4:info"[..], &info, b"e"].concat();
    let meta = Metainfo::parse(&torrent).map_err(|e| untrusted(&format!("shard info: {e}")))?;
    if meta.info_hash != *expected {
        return Err(untrusted("a shard's info dict is not the manifest's"));
    }
    let info = meta
        .shard()
        .map_err(|e| untrusted(&format!("shard info: {e}")))?;
    Ok(Shard {
        info,
        nodes: parse_nodes(nodes),
    })
}

fn untrusted(why: &str) -> ClientError {
    ClientError::Untrusted(why.to_owned())
}

/// Reads the object `cap` names (or `range` of it, end exclusive) into `out`; returns the
/// bytes written.
pub async fn get(
    cap: &Capability,
    out: Output,
    range: Option<Range<u64>>,
    opts: &GetOptions,
) -> Result<u64, ClientError> {
    let object = lookup(cap).await?;
    let key = DataKey::from_bytes(cap.data_key);
    read_to(object, key, range, out, opts).await
}

/// Fetches the pieces the read needs from every holder at once and decodes each segment as its
/// pieces arrive, on a blocking thread.
async fn read_to(
    object: Object,
    key: DataKey,
    range: Option<Range<u64>>,
    out: Output,
    opts: &GetOptions,
) -> Result<u64, ClientError> {
    let layout = object.manifest.layout;
    let want = range.clone().unwrap_or(0..layout.size);
    let want = want.start.min(layout.size)..want.end.min(layout.size);
    let listed = object.shards.iter().filter(|s| !s.nodes.is_empty()).count();
    let total = object.shards.len();
    let not_enough = |reachable| ClientError::NotEnoughShards {
        reachable,
        needed: layout.k(),
        listed,
        total,
    };
    if listed < layout.k() {
        return Err(not_enough(listed));
    }
    let read = PieceRead::start(sources(&object, opts.stall), want.clone());
    let count = Counter::default();
    let fetching = opts
        .progress
        .start("fetch", Some(fetch_bytes(&layout, &want)), {
            let read = read.clone();
            move || read.fetched()
        });
    let decoding = opts.progress.start("decode", Some(want.end - want.start), {
        let count = count.clone();
        move || count.load(Ordering::Relaxed)
    });
    let reading = read.clone();
    let job = tokio::task::spawn_blocking(move || {
        decode_pieces(&object, &key, &reading, range, out, count)
    });
    let result = job.await.context("the decoder thread panicked");
    let done = read.finish().await;
    fetching.finish().await;
    decoding.finish().await;
    tracing::debug!(fetched = done.fetched, took = ?done.took, "read from the holders");
    match result? {
        Err(Decoded::NotEnough(available)) => Err(not_enough(available)),
        Err(Decoded::Failed(e)) => Err(e),
        Ok(bytes) => Ok(bytes),
    }
}

/// The shards' infos and holders, each piece's wait bounded by the stall timeout.
fn sources(object: &Object, stall: Duration) -> Sources {
    Sources {
        infos: object.shards.iter().map(|s| Some(s.info.clone())).collect(),
        holders: object.shards.iter().map(|s| s.nodes.clone()).collect(),
        layout: object.manifest.layout,
        patience: stall,
    }
}

/// About the bytes a read of `want` fetches: its share of `k` shards, whole pieces.
fn fetch_bytes(layout: &Layout, want: &Range<u64>) -> u64 {
    let pieces: u64 = layout
        .plan_range(want.clone())
        .pieces(layout)
        .iter()
        .map(|(_, p)| p.end.saturating_sub(p.start))
        .sum();
    (pieces * layout.geometry.piece_length).min(layout.k() as u64 * layout.shard_len())
}

/// Why a decode ended without the object.
enum Decoded {
    /// Fewer than k shards could be read and verified for a segment.
    NotEnough(usize),
    Failed(ClientError),
}

fn decode_pieces(
    object: &Object,
    key: &DataKey,
    read: &Arc<PieceRead>,
    range: Option<Range<u64>>,
    out: Output,
    count: Counter,
) -> Result<u64, Decoded> {
    let failed = |e: anyhow::Error| Decoded::Failed(ClientError::Other(e));
    let (mut sink, finish) = open_output(out).map_err(Decoded::Failed)?;
    let mut writer = CountingWrite {
        inner: &mut sink,
        count: count.clone(),
    };
    let inputs = read.inputs();
    let decoded = match range {
        Some(r) => decode_range(&object.manifest, key, inputs, r, &mut writer),
        None => decode(&object.manifest, key, inputs, &mut writer),
    };
    match decoded {
        Err(DecodeError::NotEnoughShards { available, .. }) => {
            return Err(Decoded::NotEnough(available))
        }
        Err(e) => return Err(failed(e.into())),
        Ok(report) if !report.failed_shards.is_empty() || !report.bad_pieces.is_empty() => {
            tracing::warn!(?report, "the read worked around shards that failed");
        }
        Ok(_) => {}
    }
    writer
        .flush()
        .context("writing the object")
        .map_err(failed)?;
    drop(writer);
    finish(sink).map_err(Decoded::Failed)?;
    Ok(count.load(Ordering::Relaxed))
}

type Sink = BufWriter<Box<dyn Write + Send>>;
type Finish = Box<dyn FnOnce(Sink) -> Result<(), ClientError>>;

/// The writer for `out`, and what makes its bytes final: a file is written beside its target
/// and renamed into place only once the object decoded and checked, so a failed read never
/// leaves a partial file under the target's name.
fn open_output(out: Output) -> Result<(Sink, Finish), ClientError> {
    match out {
        Output::Stdout => {
            let sink: Sink = BufWriter::new(Box::new(std::io::stdout()));
            let finish: Finish = Box::new(|_| Ok(()));
            Ok((sink, finish))
        }
        Output::File(path) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            let tmp = tempfile::NamedTempFile::new_in(&parent)
                .with_context(|| format!("creating a file in {}", parent.display()))?;
            let (file, tmp_path) = tmp.into_parts();
            let sink: Sink = BufWriter::new(Box::new(file));
            let finish: Finish = Box::new(move |sink: Sink| {
                let inner = sink
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
                drop(inner);
                tmp_path
                    .persist(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(())
            });
            Ok((sink, finish))
        }
    }
}

/// Parses `--range FIRST-LAST` (inclusive, as HTTP ranges) into `FIRST..LAST+1`.
pub fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not FIRST-LAST"))?;
    let first: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a byte offset"))?;
    let last: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a byte offset"))?;
    if last < first {
        return Err(format!("the range {s} ends before it starts"));
    }
    Ok(first..last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use raidtorrent_codec::{encode, Geometry};

    use crate::client::api::CapShard;

    fn object() -> (Capability, CapAnswer) {
        let key = DataKey::generate().unwrap();
        let g = Geometry::choose(2, 1, 1 << 20, Some(1000)).unwrap();
        let mut shards = vec![Vec::new(); 3];
        let encoded = encode(g, &key, &[5u8; 1000][..], &mut shards).unwrap();
        let infos = encoded.shard_infos();
        let fingerprint = key.fingerprint();
        let manifest = encoded
            .manifest(KeyRef::Client { fingerprint }, &infos)
            .to_bytes();
        let cap = Capability {
            gateway: "http://127.0.0.1:1".into(),
            bucket: "b".into(),
            key: "k".into(),
            manifest_sha256: sha256(&manifest),
            data_key: *key.expose(),
        };
        let answer = CapAnswer {
            manifest: B64.encode(&manifest),
            shards: infos
                .iter()
                .map(|i| CapShard {
                    info: B64.encode(i.info_bytes()),
                    nodes: vec!["127.0.0.1:6881".into(), "not an address".into()],
                })
                .collect(),
            at_risk: false,
        };
        (cap, answer)
    }

    #[test]
    fn a_matching_answer_is_accepted() {
        let (cap, answer) = object();
        let o = check_answer(&cap, &answer).unwrap();
        assert_eq!(o.shards.len(), 3);
        assert_eq!(o.shards[0].nodes, vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(o.manifest.layout.size, 1000);
    }

    #[test]
    fn a_wrong_key_is_a_damaged_capability() {
        let (mut cap, answer) = object();
        cap.data_key[0] ^= 1;
        let e = check_answer(&cap, &answer).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    #[test]
    fn another_manifest_or_shard_is_refused() {
        let (mut cap, answer) = object();
        let mut swapped = answer.clone();
        swapped.shards.swap(0, 1);
        assert!(matches!(
            check_answer(&cap, &swapped),
            Err(ClientError::Untrusted(_))
        ));
        cap.manifest_sha256[0] ^= 1;
        assert!(matches!(
            check_answer(&cap, &answer),
            Err(ClientError::Untrusted(_))
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-9").unwrap(), 0..10);
        assert_eq!(parse_range("5-5").unwrap(), 5..6);
        assert!(parse_range("9-0").is_err());
        assert!(parse_range("-5").is_err());
        assert!(parse_range("a-b").is_err());
    }
}
