//! `get` and `stat`: RT-0004 §3 from the reader's side. The gateway's `_cap` answer is checked
//! against the capability ([`check_answer`], pure): the manifest's SHA-256, the data key's
//! fingerprint, and every shard's info-hash. Then any k shards are fetched straight from their
//! holders in a short-lived session and decoded here; a whole read also checks the plaintext's
//! SHA-256 (the codec's [`decode`] does).
//!
//! Every shard that has holders is fetched at once; as soon as k are complete the others are
//! dropped. The fetch gives up when no byte arrives for the stall timeout.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use raidtorrent_codec::{
    decode, decode_range, DataKey, KeyRef, Manifest, Metainfo, ShardInfo, ShardInput,
};
use tokio::task::JoinSet;

use super::api::{base64_field, Api, CapAnswer};
use super::cap::{CapError, Capability};
use super::progress::{Counter, CountingWrite, Progress};
use super::put::sha256;
use super::session::{parse_nodes, ClientSession};
use super::{ClientError, ObjectName};
use crate::engine::{Engine, TorrentHandle};

/// Where the object goes.
#[derive(Debug, Clone)]
pub enum Output {
    File(PathBuf),
    Stdout,
}

#[derive(Debug, Clone)]
pub struct GetOptions {
    /// The client's BitTorrent listener (it only dials out, but the session needs one).
    pub listen: SocketAddr,
    /// Give up when no shard byte arrives for this long.
    pub stall: Duration,
    pub progress: Progress,
}

/// One shard as the verified answer describes it.
#[derive(Debug, Clone)]
pub struct Shard {
    pub info: ShardInfo,
    /// The torrent to add: the gateway's info dict as it arrived, wrapped in `d4:info...e`.
    pub torrent: Vec<u8>,
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
    let api = Api::new(&cap.gateway, None)?;
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
        torrent,
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
    let session = ClientSession::start(ClientSession::dir()?, opts.listen).await?;
    let fetched = fetch(&session, &object, opts).await;
    session.stop().await;
    let done = fetched?;
    let key = DataKey::from_bytes(cap.data_key);
    decode_to(
        session.path(),
        &object,
        &key,
        &done,
        range,
        out,
        opts.progress,
    )
    .await
}

/// Fetches shards until k are complete; returns their indexes.
async fn fetch(
    session: &ClientSession,
    object: &Object,
    opts: &GetOptions,
) -> Result<Vec<usize>, ClientError> {
    let k = object.manifest.layout.k();
    let listed: Vec<usize> = (0..object.shards.len())
        .filter(|&i| !object.shards[i].nodes.is_empty())
        .collect();
    let not_enough = |reachable| ClientError::NotEnoughShards {
        reachable,
        needed: k,
        listed: listed.len(),
        total: object.shards.len(),
    };
    if listed.len() < k {
        return Err(not_enough(listed.len()));
    }
    let mut handles = Vec::with_capacity(listed.len());
    for &i in &listed {
        let s = &object.shards[i];
        handles.push((i, session.add(s.torrent.clone(), s.nodes.clone()).await?));
    }
    let total = k as u64 * object.manifest.layout.shard_len();
    let done = wait_for_k(&session.engine, &handles, k, total, opts).await;
    for &(i, _) in handles.iter().filter(|(i, _)| !done.contains(i)) {
        session.remove(&object.shards[i].info.info_hash()).await?;
    }
    match done.len() >= k {
        true => Ok(done),
        false => Err(not_enough(done.len())),
    }
}

/// Waits until `k` of `handles` are complete, all have failed, or nothing moved for the stall
/// timeout; returns the complete ones.
async fn wait_for_k(
    engine: &Arc<Engine>,
    handles: &[(usize, TorrentHandle)],
    k: usize,
    total: u64,
    opts: &GetOptions,
) -> Vec<usize> {
    let mut waits = JoinSet::new();
    for (i, h) in handles.iter().cloned() {
        let engine = engine.clone();
        waits.spawn(async move { (i, engine.wait_complete(&h).await) });
    }
    let all: Vec<TorrentHandle> = handles.iter().map(|(_, h)| h.clone()).collect();
    let bytes = move || all.iter().map(|h| h.stats().progress_bytes).sum::<u64>();
    let reporter = opts.progress.start("fetch", Some(total), bytes.clone());
    let mut done = Vec::new();
    let (mut last, mut moved) = (0, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while done.len() < k && !waits.is_empty() && moved.elapsed() < opts.stall {
        tokio::select! {
            Some(joined) = waits.join_next() => match joined {
                Ok((i, Ok(()))) => done.push(i),
                Ok((i, Err(e))) => tracing::warn!(shard = i, "fetching a shard failed: {e:#}"),
                Err(e) => tracing::warn!("a shard's wait ended: {e}"),
            },
            _ = tick.tick() => {
                let now = bytes();
                if now > last {
                    (last, moved) = (now, Instant::now());
                }
            }
        }
    }
    waits.abort_all();
    reporter.finish().await;
    done.sort_unstable();
    done
}

/// Decodes from the complete shards in `dir` on a blocking thread.
async fn decode_to(
    dir: &Path,
    object: &Object,
    key: &DataKey,
    done: &[usize],
    range: Option<Range<u64>>,
    out: Output,
    progress: Progress,
) -> Result<u64, ClientError> {
    let count = Counter::default();
    let total = range.clone().map_or(object.manifest.layout.size, |r| {
        r.end
            .min(object.manifest.layout.size)
            .saturating_sub(r.start)
    });
    let reporter = progress.start("decode", Some(total), {
        let count = count.clone();
        move || count.load(Ordering::Relaxed)
    });
    let (dir, object, key, done) = (dir.to_owned(), object.clone(), key.clone(), done.to_vec());
    let job = tokio::task::spawn_blocking(move || {
        decode_files(&dir, &object, &key, &done, range, out, count)
    });
    let result = job.await.context("the decoder thread panicked");
    reporter.finish().await;
    result?
}

fn decode_files(
    dir: &Path,
    object: &Object,
    key: &DataKey,
    done: &[usize],
    range: Option<Range<u64>>,
    out: Output,
    count: Counter,
) -> Result<u64, ClientError> {
    let mut inputs = Vec::with_capacity(object.shards.len());
    for (i, s) in object.shards.iter().enumerate() {
        let input = match done.contains(&i) {
            true => Some(ShardInput {
                info: &s.info,
                reader: File::open(dir.join(&s.info.name)).context("opening a fetched shard")?,
            }),
            false => None,
        };
        inputs.push(input);
    }
    let (mut sink, finish) = open_output(out)?;
    let mut writer = CountingWrite {
        inner: &mut sink,
        count: count.clone(),
    };
    let decoded = match range {
        Some(r) => decode_range(&object.manifest, key, inputs, r, &mut writer),
        None => decode(&object.manifest, key, inputs, &mut writer),
    };
    decoded.map_err(|e| ClientError::Other(e.into()))?;
    writer.flush().context("writing the object")?;
    drop(writer);
    finish(sink)?;
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
