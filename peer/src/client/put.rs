//! `put`: RT-0004 §1-2 from the client's side. The object is encrypted and erasure-coded here,
//! a segment at a time, into one file per shard in a temporary directory; the gateway is asked
//! where the shards go; the client seeds them to those nodes until the placement is `stored` (or
//! `failed`), then prints the read capability.
//!
//! Memory stays bounded by the codec's segments whatever the object's size; the disk holds the
//! object's k + m shards ((k + m) / k of its size) until the command ends.
//!
//! An interrupted `put` (Ctrl-C, SIGTERM: [`PutOptions::interrupt`]) undoes what it began: the
//! encoder stops at its next read, a placement already asked for is cancelled at the gateway
//! (which leaves its shards to its collector, so nothing becomes visible), and the temporary
//! directory is removed. Running the same `put` again starts over.
//!
//! A `put` stopped outright (SIGKILL, power loss) cannot undo anything: its journal
//! ([`super::journal`]) tells the next `put` what it left. The same `put` run again resumes its
//! placement from the shards already encoded; any `put` cleans up after the others
//! ([`super::resume`]).

use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use raidtorrent_codec::{
    encode, DataKey, Encoded, Geometry, KeyRef, ShardInfo, DEFAULT_SEGMENT_TARGET,
};
use ring::digest::{digest, SHA256};
use tokio_util::sync::CancellationToken;

use super::api::{Api, Credentials, PlaceRequest, PlaceState, Placement, Policy, FOLLOW_WAIT_SECS};
use super::cap::Capability;
use super::journal::{Journal, Journals, Prepared, Slot, SourceStamp, Target};
use super::progress::{Counter, CountingRead, Progress};
use super::session::{parse_nodes, ClientSession};
use super::{resume, ClientError, ObjectName};

/// Where the object's bytes come from.
#[derive(Debug, Clone)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    /// `-` is standard input.
    pub fn from_arg(arg: &str) -> Self {
        match arg {
            "-" => Input::Stdin,
            path => Input::File(path.into()),
        }
    }

    /// The reader and, for a file, its size.
    fn open(&self) -> io::Result<(Box<dyn Read>, Option<u64>)> {
        match self {
            Input::Stdin => Ok((Box::new(io::stdin()), None)),
            Input::File(p) => {
                let f = File::open(p)?;
                let size = f.metadata()?.len();
                Ok((Box::new(f), Some(size)))
            }
        }
    }
}

/// How `put` reaches the gateway and the nodes.
#[derive(Debug, Clone)]
pub struct PutOptions {
    pub gateway: String,
    pub credentials: Credentials,
    /// The client's BitTorrent listener.
    pub listen: SocketAddr,
    /// Name the listener in the placement so nodes may dial it (off behind NAT).
    pub advertise: bool,
    pub progress: Progress,
    /// Cancelled when the user interrupts the command.
    pub interrupt: CancellationToken,
    /// Where unfinished puts keep their journals.
    pub journals: Journals,
}

/// What a successful `put` made.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub cap: Capability,
    pub size: u64,
    pub sha256: [u8; 32],
    pub placement: String,
    /// An earlier run of the same `put`, stopped outright, was taken over: nothing was encoded.
    pub resumed: bool,
}

impl PutOutcome {
    pub(super) fn of(prepared: Prepared, placement: String, resumed: bool) -> Self {
        PutOutcome {
            cap: prepared.cap,
            size: prepared.size,
            sha256: prepared.sha256,
            placement,
            resumed,
        }
    }
}

/// A shard file that does not match its torrent's piece hashes.
#[derive(Debug, thiserror::Error)]
#[error("shard {0} did not pass its own hash check")]
pub struct DamagedShard(String);

impl DamagedShard {
    /// Whether `e` is this error.
    pub fn is(e: &ClientError) -> bool {
        matches!(e, ClientError::Other(a) if a.is::<DamagedShard>())
    }
}

/// An object encoded into a directory: one file per shard, named as its torrent names it.
struct EncodedObject {
    encoded: Encoded,
    infos: Vec<ShardInfo>,
    manifest: Vec<u8>,
}

/// Stores `input` as `name` and returns its capability. An earlier run of the same `put`
/// stopped outright is resumed when it can be, and every dead `put`'s leftovers are cleaned up.
pub async fn put(
    opts: &PutOptions,
    input: Input,
    name: &ObjectName,
) -> Result<PutOutcome, ClientError> {
    let api = Api::new(&opts.gateway, opts.credentials.clone())?;
    let target = target(&input, name, &api)?;
    if let Some(done) = resume::take_over(&api, &target, name, opts).await? {
        return Ok(done);
    }
    let policy = api.bucket(&name.bucket).await?.policy;
    let folder = ClientSession::dir()?;
    let journal = Journal::begin(&target, &folder);
    let slot = match opts.journals.begin(&journal) {
        Ok(slot) => slot,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&folder);
            return Err(e.into());
        }
    };
    let done = encode_and_place(&api, &slot, journal, input, policy, name, opts).await;
    slot.discard();
    done
}

/// What this `put` is, for its journal.
fn target(input: &Input, name: &ObjectName, api: &Api) -> Result<Target, ClientError> {
    let source = match input {
        Input::Stdin => None,
        Input::File(p) => {
            Some(SourceStamp::of(p).with_context(|| format!("reading {}", p.display()))?)
        }
    };
    Ok(Target {
        source,
        gateway: api.base().to_owned(),
        bucket: name.bucket.clone(),
        key: name.key.clone(),
    })
}

/// Encodes into the journal's folder, asks for the placement and seeds it to its end, writing
/// the journal before each step that a later run could take over.
async fn encode_and_place(
    api: &Api,
    slot: &Slot,
    mut journal: Journal,
    input: Input,
    policy: Policy,
    name: &ObjectName,
    opts: &PutOptions,
) -> Result<PutOutcome, ClientError> {
    let key = DataKey::generate().map_err(|e| ClientError::Other(e.into()))?;
    let object = encode_into(&journal.folder, input, policy.k, policy.m, &key, opts).await?;
    let prepared = Prepared {
        cap: Capability {
            gateway: api.base().to_owned(),
            bucket: name.bucket.clone(),
            key: name.key.clone(),
            manifest_sha256: sha256(&object.manifest),
            data_key: *key.expose(),
        },
        size: object.encoded.layout.size,
        sha256: object.encoded.sha256,
        infos: object.infos.clone(),
    };
    journal.encoded = Some(prepared.record());
    slot.write(&journal)?;
    let session = ClientSession::start(&journal.folder, opts.listen).await?;
    let placed = async {
        let placement = place(api, &session, &object, name, opts).await?;
        journal.placement = Some(placement.placement.clone());
        journal.listen = Some(session.engine.listen_addr());
        slot.write(&journal)?;
        seed_to_end(api, &session, &prepared.infos, name, placement, opts).await
    }
    .await;
    session.stop().await;
    Ok(PutOutcome::of(prepared, placed?, false))
}

/// Encodes on a blocking thread, reporting bytes read.
async fn encode_into(
    dir: &Path,
    input: Input,
    k: u16,
    m: u16,
    key: &DataKey,
    opts: &PutOptions,
) -> Result<EncodedObject, ClientError> {
    let total = match &input {
        Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        Input::Stdin => None,
    };
    let count = Counter::default();
    let reporter = opts.progress.start("encode", total, {
        let count = count.clone();
        move || count.load(Ordering::Relaxed)
    });
    let fingerprint = key.fingerprint();
    let (dir, key, interrupt) = (dir.to_owned(), key.clone(), opts.interrupt.clone());
    let job = tokio::task::spawn_blocking(move || {
        encode_files(&dir, &input, k, m, &key, count, interrupt)
    });
    let result = job.await.context("the encoder thread panicked");
    reporter.finish().await;
    if opts.interrupt.is_cancelled() {
        return Err(ClientError::Interrupted(
            "nothing was sent to the gateway; the shards encoded so far were removed".into(),
        ));
    }
    let (encoded, infos) = result??;
    let manifest = encoded
        .manifest(KeyRef::Client { fingerprint }, &infos)
        .to_bytes();
    Ok(EncodedObject {
        encoded,
        infos,
        manifest,
    })
}

/// Writes shard `i` to `{i}.part`, then renames each to its torrent's name.
fn encode_files(
    dir: &Path,
    input: &Input,
    k: u16,
    m: u16,
    key: &DataKey,
    count: Counter,
    interrupt: CancellationToken,
) -> anyhow::Result<(Encoded, Vec<ShardInfo>)> {
    let (reader, size) = input.open().context("opening the input")?;
    let geometry = Geometry::choose(k, m, DEFAULT_SEGMENT_TARGET, size)?;
    let parts: Vec<PathBuf> = (0..geometry.shard_count())
        .map(|i| dir.join(format!("{i}.part")))
        .collect();
    let mut outs = parts
        .iter()
        .map(File::create)
        .collect::<io::Result<Vec<_>>>()
        .context("creating shard files")?;
    let reader = CountingRead {
        inner: Interruptible {
            inner: reader,
            interrupt,
        },
        count,
    };
    let encoded = encode(geometry, key, reader, &mut outs)?;
    drop(outs);
    let infos = encoded.shard_infos();
    for (part, info) in parts.iter().zip(&infos) {
        std::fs::rename(part, dir.join(&info.name)).context("naming a shard file")?;
    }
    Ok((encoded, infos))
}

/// Asks the gateway where the shards go.
async fn place(
    api: &Api,
    session: &ClientSession,
    object: &EncodedObject,
    name: &ObjectName,
    opts: &PutOptions,
) -> Result<Placement, ClientError> {
    let peers = match opts.advertise {
        true => vec![advertised(&opts.gateway, session.engine.listen_addr()).await?],
        false => Vec::new(),
    };
    let infos: Vec<Vec<u8>> = object.infos.iter().map(ShardInfo::info_bytes).collect();
    let request = PlaceRequest::new(
        &object.manifest,
        &infos,
        peers.iter().map(|p| p.to_string()).collect(),
    );
    api.place(name, &request).await
}

/// Seeds every shard to its nodes and follows the placement to its end, or cancels it when the
/// user interrupts the command. The placement's id once stored.
pub(super) async fn seed_to_end(
    api: &Api,
    session: &ClientSession,
    infos: &[ShardInfo],
    name: &ObjectName,
    placement: Placement,
    opts: &PutOptions,
) -> Result<String, ClientError> {
    let id = placement.placement.clone();
    let seeded = seed_and_follow(api, session, infos, name, placement, opts);
    tokio::select! {
        biased;
        () = opts.interrupt.cancelled() => cancel(api, &id).await,
        done = seeded => done,
    }?;
    Ok(id)
}

/// The user interrupted a placement: the gateway cancels it and its shards leave the nodes. One
/// that had already been stored stands, and the command ends as if not interrupted.
async fn cancel(api: &Api, placement: &str) -> Result<(), ClientError> {
    match api.cancel(placement).await {
        Ok(status) if status.state == PlaceState::Stored => Ok(()),
        Ok(_) => Err(ClientError::Interrupted(format!(
            "placement {placement} was cancelled: nothing was stored, and the nodes drop its shards"
        ))),
        Err(e) => Err(ClientError::Interrupted(format!(
            "placement {placement} could not be cancelled ({e}); it fails on its own once its \
             holds time out, and its shards are then dropped"
        ))),
    }
}

/// Seeds every shard to the nodes the placement names and follows it to its end.
async fn seed_and_follow(
    api: &Api,
    session: &ClientSession,
    infos: &[ShardInfo],
    name: &ObjectName,
    placement: Placement,
    opts: &PutOptions,
) -> Result<(), ClientError> {
    check_placement(&placement, infos)?;
    opts.progress.note(format_args!(
        "placing {name}: placement {}, {} shards x {} copies",
        placement.placement,
        placement.shards.len(),
        placement.copies
    ));
    let copies = u64::from(placement.copies);
    let total: u64 = infos.iter().map(|i| i.length * copies).sum();
    let seeding = opts
        .progress
        .start("seed", Some(total), uploaded(session, infos, total));
    let confirmed = Counter::default();
    let confirming = opts.progress.start("confirm", Some(total), {
        let confirmed = confirmed.clone();
        move || confirmed.load(Ordering::Relaxed)
    });
    let followed = async {
        for (info, shard) in infos.iter().zip(&placement.shards) {
            seed(session, info, parse_nodes(&shard.nodes)).await?;
        }
        follow(api, session, infos, placement, &confirmed, opts).await
    }
    .await;
    seeding.finish().await;
    confirming.finish().await;
    followed
}

/// Bytes the client has sent the nodes so far, at most `total`.
fn uploaded(
    session: &ClientSession,
    infos: &[ShardInfo],
    total: u64,
) -> impl Fn() -> u64 + Send + 'static {
    let engine = session.engine.clone();
    let hashes: Vec<_> = infos.iter().map(ShardInfo::info_hash).collect();
    move || {
        let sent: u64 = hashes
            .iter()
            .flat_map(|ih| engine.transfers(ih))
            .map(|t| t.up)
            .sum();
        sent.min(total)
    }
}

/// A reader that fails once the user interrupted the command, so the encoder stops at its next
/// read.
struct Interruptible<R> {
    inner: R,
    interrupt: CancellationToken,
}

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt.is_cancelled() {
            // Not `ErrorKind::Interrupted`, which readers retry.
            return Err(io::Error::other("interrupted"));
        }
        self.inner.read(buf)
    }
}

/// The answer must name the shards asked for, in order.
fn check_placement(placement: &Placement, infos: &[ShardInfo]) -> Result<(), ClientError> {
    let same = placement.shards.len() == infos.len()
        && placement
            .shards
            .iter()
            .zip(infos)
            .all(|(s, i)| s.info_hash.eq_ignore_ascii_case(&i.info_hash().to_hex()));
    match same {
        true => Ok(()),
        false => Err(ClientError::Untrusted(
            "the placement does not list the shards sent, in order".into(),
        )),
    }
}

/// Adds one shard as a complete torrent, dialing `nodes`; its data must pass the hash check.
async fn seed(
    session: &ClientSession,
    info: &ShardInfo,
    nodes: Vec<SocketAddr>,
) -> Result<(), ClientError> {
    let handle = session.add(info.to_torrent(&[]), nodes).await?;
    if !session.engine.verified(&handle).await? {
        return Err(ClientError::Other(DamagedShard(info.name.clone()).into()));
    }
    Ok(())
}

/// Follows the placement until `stored` or `failed`. A node added in a later round is told the
/// client's address in its directive; a client that advertised none instead re-adds the shard
/// with the new nodes, so it dials them itself.
async fn follow(
    api: &Api,
    session: &ClientSession,
    infos: &[ShardInfo],
    placement: Placement,
    confirmed_bytes: &Counter,
    opts: &PutOptions,
) -> Result<(), ClientError> {
    let mut known: Vec<Vec<String>> = placement.shards.iter().map(|s| s.nodes.clone()).collect();
    loop {
        let status = api.follow(&placement.placement, FOLLOW_WAIT_SECS).await?;
        let confirmed: u64 = status
            .shards
            .iter()
            .zip(infos)
            .map(|(s, i)| u64::from(s.confirmed) * i.length)
            .sum();
        confirmed_bytes.store(confirmed, Ordering::Relaxed);
        match status.state {
            PlaceState::Stored => return Ok(()),
            PlaceState::Failed => {
                let why = status.error.unwrap_or_else(|| "no reason given".into());
                return Err(ClientError::PlacementFailed(why));
            }
            PlaceState::Placing | PlaceState::Unknown => {}
        }
        for (i, shard) in status.shards.iter().enumerate().take(known.len()) {
            if shard.nodes.iter().all(|n| known[i].contains(n)) {
                continue;
            }
            known[i] = shard.nodes.clone();
            if !opts.advertise {
                redial(session, &infos[i], &shard.nodes).await?;
            }
        }
    }
}

/// Re-adds a seeding shard with `nodes` as its peers (librqbit 9 adds peers only on add).
async fn redial(
    session: &ClientSession,
    info: &ShardInfo,
    nodes: &[String],
) -> Result<(), ClientError> {
    session.engine.close(&info.info_hash()).await?;
    seed(session, info, parse_nodes(nodes)).await
}

/// The address nodes can dial: the local IP this machine uses to reach the gateway (a connected
/// UDP socket reveals it; no packet is sent) and the listener's port. A listener bound to one
/// address is that address.
pub async fn advertised(gateway: &str, listen: SocketAddr) -> Result<SocketAddr, ClientError> {
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    let url = reqwest::Url::parse(gateway).with_context(|| format!("gateway URL {gateway}"))?;
    let host = url.host_str().context("the gateway URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port_or_known_default()
        .context("the gateway URL has no port")?;
    let unreachable = |reason: String| ClientError::Unreachable {
        url: gateway.to_owned(),
        reason,
    };
    let target = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .find(|a| a.is_ipv4() == listen.is_ipv4())
        .ok_or_else(|| unreachable(format!("{host} has no address of the listener's family")))?;
    let unspecified = SocketAddr::new(listen.ip(), 0);
    let socket = UdpSocket::bind(unspecified).context("binding a UDP socket")?;
    socket
        .connect(target)
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(SocketAddr::new(
        socket.local_addr().context("local address")?.ip(),
        listen.port(),
    ))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_listener_is_advertised_as_is() {
        let listen: SocketAddr = "192.0.2.7:51413".parse().unwrap();
        assert_eq!(
            advertised("http://127.0.0.1:1", listen).await.unwrap(),
            listen
        );
    }

    #[tokio::test]
    async fn the_route_to_a_loopback_gateway_is_loopback() {
        let listen: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let a = advertised("http://127.0.0.1:8080", listen).await.unwrap();
        assert_eq!(a, "127.0.0.1:4000".parse().unwrap());
    }

    #[test]
    fn files_are_encoded_into_named_shards() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("object");
        std::fs::write(&src, b"volunteer".repeat(10_000)).unwrap();
        let shards = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap();
        let count = Counter::default();
        let never = CancellationToken::new();
        let (encoded, infos) = encode_files(
            shards.path(),
            &Input::File(src.clone()),
            2,
            1,
            &key,
            count.clone(),
            never,
        )
        .unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 90_000);
        assert_eq!(encoded.layout.size, 90_000);
        for info in &infos {
            let len = std::fs::metadata(shards.path().join(&info.name))
                .unwrap()
                .len();
            assert_eq!(len, info.length);
        }
        assert_eq!(std::fs::read_dir(shards.path()).unwrap().count(), 3);

        let interrupted = CancellationToken::new();
        interrupted.cancel();
        let e = encode_files(
            shards.path(),
            &Input::File(src),
            2,
            1,
            &key,
            Counter::default(),
            interrupted,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("interrupted"), "{e:#}");
    }
}
