//! Audits against real librqbit sessions and against raw fake peers on 127.0.0.1.
//!
//! The shard torrents carry no tracker at all: the gateway dials the node directly, as the audit
//! worker does.

use crate::common::*;
use librqbit::Session;
use raidtorrent_codec::ShardInfo;
use raidtorrent_proto::{Handshake, Parsed};
use raidtorrent_tracker::audit::wire::{self, Message};
use raidtorrent_tracker::audit::{pick_pieces, probe, Probe};
use sha1::{Digest, Sha1};
use std::io::{Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PIECE: u64 = 32 << 10;
const GENEROUS: Duration = Duration::from_secs(30);

/// A shard of 12 whole pieces and a short 13th, and its bytes.
fn shard(seed: u64) -> (ShardInfo, Vec<u8>) {
    let data = random_bytes(12 * PIECE as usize + 5_000, seed);
    let pieces = data
        .chunks(PIECE as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let s = ShardInfo {
        name: ShardInfo::random_name(),
        length: data.len() as u64,
        piece_length: PIECE,
        pieces,
    };
    (s, data)
}

/// A session seeding `shard` from `dir`, once its initial check is done.
async fn seeder(dir: &Path, shard: &ShardInfo, data: &[u8]) -> (Arc<Session>, SocketAddr) {
    std::fs::write(dir.join(&shard.name), data).unwrap();
    let (s, addr) = swarm::session(dir, Ipv4Addr::LOCALHOST).await;
    swarm::seed(&s, &shard.to_torrent(&[]), GENEROUS).await;
    (s, addr)
}

fn piece_len(s: &ShardInfo, p: u32) -> u64 {
    PIECE.min(s.length - p as u64 * PIECE)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_librqbit_seeder_passes() {
    let (s, data) = shard(11);
    let dir = tempfile::tempdir().unwrap();
    let (session, addr) = seeder(dir.path(), &s, &data).await;

    let chosen = pick_pieces(&s, 4, 7);
    let whole: Vec<u32> = chosen.iter().copied().filter(|&p| p < 12).collect();
    match probe(addr, &s, &whole, GENEROUS).await {
        Probe::Pass { bytes, elapsed } => {
            assert_eq!(bytes, whole.len() as u64 * PIECE);
            assert!(elapsed > Duration::ZERO);
            eprintln!(
                "audit of {} pieces ({bytes} bytes): {elapsed:?}",
                whole.len()
            );
        }
        other => panic!("{other:?}"),
    }
    // Every piece, the short last one included.
    let all: Vec<u32> = (0..13).collect();
    match probe(addr, &s, &all, GENEROUS).await {
        Probe::Pass { bytes, elapsed } => {
            assert_eq!(bytes, s.length);
            eprintln!("audit of every piece ({bytes} bytes): {elapsed:?}");
        }
        other => panic!("{other:?}"),
    }
    session.stop().await;
}

/// librqbit unchokes a peer that never said `interested`, with no tracker involved: measured
/// here from the end of our handshake.
#[tokio::test(flavor = "multi_thread")]
async fn librqbit_unchokes_without_interest_or_tracker() {
    let (s, data) = shard(12);
    let dir = tempfile::tempdir().unwrap();
    let (session, addr) = seeder(dir.path(), &s, &data).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: s.info_hash().0,
        peer_id: *b"-RA0001-measure00000",
    };
    let start = Instant::now();
    c.write_all(&hs.to_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut handshaken = false;
    let unchoked = tokio::time::timeout(GENEROUS, async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {seen:?}");
            buf.extend_from_slice(&chunk[..n]);
            loop {
                if !handshaken {
                    match Handshake::parse(&buf).unwrap() {
                        Parsed::Done(h, used) => {
                            assert_eq!(h.info_hash, s.info_hash().0);
                            buf.drain(..used);
                            handshaken = true;
                        }
                        Parsed::Incomplete(_) => break,
                    }
                }
                match wire::decode(&buf).unwrap() {
                    Parsed::Done(Message::Unchoke, _) => return start.elapsed(),
                    Parsed::Done(m, used) => {
                        seen.push(m);
                        buf.drain(..used);
                    }
                    Parsed::Incomplete(_) => break,
                }
            }
        }
    })
    .await
    .expect("librqbit unchokes without `interested`");
    assert!(
        matches!(seen.as_slice(), [Message::Bitfield(b)] if b.as_slice() == [0xff, 0xf8]),
        "{seen:?}"
    );
    eprintln!("librqbit unchoked {unchoked:?} after the handshake was sent");
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_changed_on_disk_after_the_check_fail_the_audit() {
    let (s, data) = shard(13);
    let dir = tempfile::tempdir().unwrap();
    let (session, addr) = seeder(dir.path(), &s, &data).await;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(&s.name))
        .unwrap();
    f.seek(SeekFrom::Start(5 * PIECE + 1_000)).unwrap();
    f.write_all(&[!data[5 * PIECE as usize + 1_000]]).unwrap();
    f.sync_all().unwrap();
    drop(f);

    // librqbit serves the changed bytes without checking them again.
    match probe(addr, &s, &[2, 5, 9], GENEROUS).await {
        Probe::Fail { piece, reason } => {
            assert_eq!(piece, 5, "{reason}");
            assert!(reason.contains("hash"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let p = probe(addr, &s, &[4, 6], GENEROUS).await;
    assert!(
        matches!(p, Probe::Pass { bytes, .. } if bytes == piece_len(&s, 4) + piece_len(&s, 6)),
        "the other pieces still pass: {p:?}"
    );
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_without_the_torrent_or_a_closed_port_is_unreachable() {
    let (s, _) = shard(14);
    let (other, _) = shard(15);
    let dir = tempfile::tempdir().unwrap();
    // A live session seeding something else.
    let (session, addr) =
        seeder(dir.path(), &other, &random_bytes(other.length as usize, 15)).await;
    let p = probe(addr, &s, &[0], GENEROUS).await;
    // librqbit closes on a handshake for a torrent it lacks: as a full peer list would, so it is
    // no evidence about the data.
    assert!(
        matches!(&p, Probe::Unreachable { reason } if reason.contains("closed")),
        "{p:?}"
    );
    session.stop().await;
    // Nothing listening at all.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let p = probe(nobody, &s, &[0], GENEROUS).await;
    assert!(
        matches!(&p, Probe::Unreachable { reason } if reason.contains("refused")),
        "{p:?}"
    );
}

/// A node that holds only the first half of a shard: it passes on what it has and is missing the
/// rest, as its (partial) bitfield says, before any request is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_partial_holder_is_missing_the_pieces_it_lacks() {
    let (s, data) = shard(18);
    let dir = tempfile::tempdir().unwrap();
    let half = 6 * PIECE as usize;
    std::fs::write(dir.path().join(&s.name), &data[..half]).unwrap();
    let (session, addr) = swarm::session(dir.path(), Ipv4Addr::LOCALHOST).await;
    let handle = swarm::add_existing(&session, &s.to_torrent(&[])).await;
    wait_until(
        Duration::from_secs(30),
        "the initial check of the half shard is done",
        || {
            let st = handle.stats();
            async move { st.live.is_some() && st.progress_bytes == half as u64 }
        },
    )
    .await;
    let p = probe(addr, &s, &[1, 4], GENEROUS).await;
    assert!(matches!(p, Probe::Pass { .. }), "{p:?}");
    let p = probe(addr, &s, &[4, 10], GENEROUS).await;
    assert_eq!(
        p,
        Probe::Missing {
            reason: "does not have piece 10".into()
        }
    );
    session.stop().await;
}

/// A fake node on port 0: answers the handshake for `info_hash`, then hands the stream to `then`.
async fn fake_node<F, Fut>(info_hash: [u8; 20], then: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut hs = [0u8; 68];
        c.read_exact(&mut hs).await.unwrap();
        let ours = Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id: *b"-XX0000-fakefakefake",
        };
        c.write_all(&ours.to_bytes()).await.unwrap();
        then(c).await;
    });
    addr
}

/// Reads frames until the first request; returns it.
async fn first_request(c: &mut TcpStream) -> wire::BlockRef {
    let mut buf = Vec::new();
    loop {
        if let Parsed::Done(m, used) = wire::decode(&buf).unwrap() {
            buf.drain(..used);
            if let Message::Request(b) = m {
                return b;
            }
            continue;
        }
        let mut chunk = [0u8; 1024];
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_node_that_never_answers_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (s, _) = shard(16);
    let hold = tokio::spawn(async move {
        let (c, _) = l.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(c);
    });
    let start = Instant::now();
    let p = probe(addr, &s, &[0], Duration::from_millis(300)).await;
    assert_eq!(p, Probe::Timeout { stage: "handshake" });
    assert!(start.elapsed() < Duration::from_secs(5));

    // Handshakes, then never unchokes.
    let addr = fake_node(s.info_hash().0, |c| async move {
        std::future::pending::<()>().await;
        drop(c);
    })
    .await;
    let p = probe(addr, &s, &[0], Duration::from_millis(300)).await;
    assert_eq!(p, Probe::Timeout { stage: "unchoke" });
    hold.abort();
}

fn full_bitfield_and_unchoke() -> Vec<u8> {
    let mut out = Message::Bitfield(vec![0xff, 0xf8]).to_bytes();
    Message::Unchoke.encode(&mut out);
    out
}

#[tokio::test]
async fn hostile_frames_fail_the_audit() {
    let (s, _) = shard(17);

    // A 4 GiB "frame" announced after the unchoke: refused from its prefix, nothing allocated.
    let addr = fake_node(s.info_hash().0, |mut c| async move {
        c.write_all(&full_bitfield_and_unchoke()).await.unwrap();
        first_request(&mut c).await;
        c.write_all(&[0xff, 0xff, 0xff, 0xf0, 7]).await.unwrap();
        std::future::pending::<()>().await;
    })
    .await;
    match probe(addr, &s, &[3], GENEROUS).await {
        Probe::Fail { piece, reason } => {
            assert_eq!(piece, 3);
            assert!(reason.contains("above"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // A block at an offset that was not asked for.
    let addr = fake_node(s.info_hash().0, |mut c| async move {
        c.write_all(&full_bitfield_and_unchoke()).await.unwrap();
        let b = first_request(&mut c).await;
        let wrong = Message::Piece {
            index: b.index,
            begin: b.begin + 1,
            data: vec![0; b.length as usize],
        };
        c.write_all(&wrong.to_bytes()).await.unwrap();
        std::future::pending::<()>().await;
    })
    .await;
    match probe(addr, &s, &[7], GENEROUS).await {
        Probe::Fail { piece, reason } => {
            assert_eq!(piece, 7);
            assert!(reason.contains("offset 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // Another info-hash in the answer is a refusal, not a failure.
    let addr = fake_node([0x42; 20], |c| async move {
        std::future::pending::<()>().await;
        drop(c);
    })
    .await;
    let p = probe(addr, &s, &[0], GENEROUS).await;
    assert!(
        matches!(&p, Probe::Missing { reason } if reason.contains("4242")),
        "{p:?}"
    );
}
