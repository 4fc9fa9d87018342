//! Piece reads that route around dead holders (issue 14): a holder the read was given whose
//! process is gone (its port refuses) or whose host is silent (it accepts, then never answers)
//! must not hold a read back while another holder of the shard, or a parity shard, can serve;
//! nor may one that served part of the read and then froze (its socket open, nothing sent).
//!
//! The holders that serve are real: a librqbit session on loopback seeding the shard torrents.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_codec::{
    decode, encode, DataKey, DecodeError, Geometry, KeyRef, Manifest, ShardInfo,
};
use raidtorrent_fetch::{PieceRead, Sources};
use raidtorrent_testkit::{random_bytes, swarm, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a read is given to wait for a piece: as the client CLI's default stall timeout.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a read that has other sources may take, at most, with a dead holder listed.
const PROMPT: Duration = Duration::from_secs(6);
const GENEROUS: Duration = Duration::from_secs(60);

/// An object coded k = 2, m = 1 and a librqbit session seeding its three shards.
struct Cloud {
    object: Vec<u8>,
    key: DataKey,
    manifest: Manifest,
    infos: Vec<ShardInfo>,
    seeder: SocketAddr,
    session: Arc<librqbit::Session>,
    _dir: tempfile::TempDir,
}

impl Cloud {
    async fn start() -> Cloud {
        Self::of(700_000).await
    }

    /// As [`Cloud::start`], for an object of `size` bytes.
    async fn of(size: usize) -> Cloud {
        let object = random_bytes(size, 14);
        let key = DataKey::generate().unwrap();
        let g = Geometry::choose(2, 1, 256 << 10, Some(object.len() as u64)).unwrap();
        let mut shards = vec![Vec::new(); 3];
        let encoded = encode(g, &key, &object[..], &mut shards).unwrap();
        let infos = encoded.shard_infos();
        let manifest = encoded.manifest(
            KeyRef::Client {
                fingerprint: key.fingerprint(),
            },
            &infos,
        );
        let dir = tempfile::tempdir().unwrap();
        for (info, bytes) in infos.iter().zip(&shards) {
            std::fs::write(dir.path().join(&info.name), bytes).unwrap();
        }
        let (session, seeder) = swarm::session(dir.path(), Ipv4Addr::LOCALHOST).await;
        for info in &infos {
            swarm::seed(&session, &info.to_torrent(&[]), GENEROUS).await;
        }
        Cloud {
            object,
            key,
            manifest,
            infos,
            seeder,
            session,
            _dir: dir,
        }
    }

    /// Reads the whole object from `holders` (one list per shard) and checks it; returns how
    /// long the read took.
    async fn read(&self, holders: Vec<Vec<SocketAddr>>) -> Duration {
        let (decoded, took) = self.try_read(holders, PATIENCE).await;
        let back = decoded.unwrap_or_else(|e| panic!("the read failed after {took:?}: {e}"));
        assert!(back == self.object, "the object read back differs");
        took
    }

    /// Reads the whole object from `holders`, each piece waited for up to `patience`: what the
    /// decoder made of it, and how long the read took.
    async fn try_read(
        &self,
        holders: Vec<Vec<SocketAddr>>,
        patience: Duration,
    ) -> (Result<Vec<u8>, DecodeError>, Duration) {
        let sources = Sources {
            infos: self.infos.iter().cloned().map(Some).collect(),
            holders,
            layout: self.manifest.layout,
            patience,
        };
        let started = Instant::now();
        let read = PieceRead::start(sources, 0..self.object.len() as u64);
        let (manifest, key, reading) = (self.manifest.clone(), self.key.clone(), read.clone());
        let decoded = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            decode(&manifest, &key, reading.inputs(), &mut out).map(|_| out)
        });
        let decoded = within(4 * patience, "the read", decoded).await.unwrap();
        let took = started.elapsed();
        within(patience, "the read's connections", read.finish()).await;
        (decoded, took)
    }
}

/// An address whose listener is closed: connecting is refused.
fn refused() -> SocketAddr {
    TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A listener that accepts connections (the kernel completes them) and never answers; kept
/// alive as long as the returned value.
fn silent() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.3:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_silent_holder_gives_way_to_another_holder_of_its_shard() {
    let c = Cloud::start().await;
    let live = c.seeder;
    let healthy = c.read(vec![vec![live]; 3]).await;
    eprintln!("every holder live: {healthy:?}");
    let (_quiet, quiet) = silent();
    let took = c
        .read(vec![vec![refused(), live], vec![quiet, live], vec![live]])
        .await;
    eprintln!("a refusing and a silent holder listed before live ones: {took:?}");
    assert!(took < PROMPT, "took {took:?}");
    c.session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_shard_whose_only_holder_refuses_gives_way_to_parity() {
    let c = Cloud::start().await;
    let live = c.seeder;
    let took = c.read(vec![vec![refused()], vec![live], vec![live]]).await;
    eprintln!("a data shard's only holder refuses: {took:?}");
    assert!(took < PROMPT, "took {took:?}");
    c.session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_shard_whose_only_holder_is_silent_gives_way_to_parity() {
    let c = Cloud::start().await;
    let live = c.seeder;
    let (_quiet, quiet) = silent();
    let took = c.read(vec![vec![live], vec![quiet], vec![live]]).await;
    eprintln!("a data shard's only holder is silent: {took:?}");
    assert!(took < PROMPT, "took {took:?}");
    c.session.stop().await;
}

/// A holder that relays each connection to `live` until it has sent `budget` bytes, then
/// freezes, as a host that stops in mid-read: its sockets stay open and nothing more passes
/// either way. It keeps going as long as the runtime; `frozen` counts the connections that froze.
async fn freezing(live: SocketAddr, budget: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.4:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let frozen = Arc::new(AtomicUsize::new(0));
    let counted = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            tokio::spawn(relay_then_freeze(client, live, budget, counted.clone()));
        }
    });
    (addr, frozen)
}

async fn relay_then_freeze(
    client: TcpStream,
    live: SocketAddr,
    budget: usize,
    frozen: Arc<AtomicUsize>,
) {
    let Ok(upstream) = TcpStream::connect(live).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_live, mut to_live) = upstream.into_split();
    let up = tokio::io::copy(&mut from_client, &mut to_live);
    let down = async {
        let (mut left, mut buf) = (budget, vec![0; 16 << 10]);
        while left > 0 {
            let n = from_live.read(&mut buf[..left.min(16 << 10)]).await?;
            if n == 0 {
                break;
            }
            to_client.write_all(&buf[..n]).await?;
            left -= n;
        }
        std::io::Result::Ok(left == 0)
    };
    tokio::select! {
        _ = up => return,
        spent = down => if !matches!(spent, Ok(true)) { return },
    }
    frozen.fetch_add(1, Ordering::SeqCst);
    // Frozen: the halves stay open, and nobody reads or writes them.
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_shard_whose_only_holder_freezes_in_mid_read_gives_way_to_parity() {
    // 4 MB: a data shard of about 2 MB, 16 KiB pieces; the holder sends about a quarter of it.
    let c = Cloud::of(4_000_000).await;
    let live = c.seeder;
    let healthy = c.read(vec![vec![live]; 3]).await;
    eprintln!("every holder live: {healthy:?}");
    let (holder, frozen) = freezing(live, 512 << 10).await;
    let took = c.read(vec![vec![live], vec![holder], vec![live]]).await;
    eprintln!("a data shard's only holder freezes in mid-read: {took:?}");
    assert_eq!(frozen.load(Ordering::SeqCst), 1, "it served, then froze");
    // Its connection gives up only after 10 s without a byte; the read must not wait for that.
    assert!(took < PROMPT, "took {took:?}");
    c.session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_too_few_shards_left_a_read_waits_out_its_patience_then_fails() {
    let c = Cloud::start().await;
    let patience = Duration::from_secs(3);
    // Shard 0's holder refuses and parity shard 2's too: only one of the two shards needed
    // answers, so the read waits for a holder to come back, and gives up after its patience.
    let holders = vec![vec![refused()], vec![c.seeder], vec![refused()]];
    let (decoded, took) = c.try_read(holders, patience).await;
    eprintln!("two of three shards' holders refuse: {took:?}");
    assert!(
        matches!(decoded, Err(DecodeError::NotEnoughShards { .. })),
        "{:?}",
        decoded.map(|b| b.len())
    );
    assert!(took >= patience - Duration::from_secs(1), "took {took:?}");
    assert!(took < 2 * patience, "took {took:?}");
    c.session.stop().await;
}
