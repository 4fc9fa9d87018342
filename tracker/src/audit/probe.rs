//! One audit over TCP: dial the node, speak the BEP 3 peer wire as a plain leecher on the shard's
//! info-hash, fetch the chosen pieces and judge them. The conversation itself is
//! [`super::exchange::Exchange`]; this file only moves its bytes under one deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use raidtorrent_codec::ShardInfo;
use raidtorrent_fetch::peer::{absorb, peer_id, quick_ack};
use raidtorrent_proto::Handshake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::exchange::{Exchange, Verdict};
use super::rng::XorShift;

/// The outcome of one audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Every requested piece arrived and matched its hash.
    Pass { bytes: u64, elapsed: Duration },
    /// The node served data that does not match (or violated the protocol in a way only a
    /// broken or dishonest node would): a failed audit.
    Fail { piece: u32, reason: String },
    /// The node did not answer in time (connect, handshake, unchoke or a block).
    Timeout { stage: &'static str },
    /// The node answered our handshake but does not have the shard: another info-hash, a
    /// bitfield or `have` without a chosen piece, or a close after the handshake.
    Missing { reason: String },
    /// The node could not be reached: the connection was refused, or closed before the node's
    /// handshake (librqbit does that for a torrent it lacks, but also at its peer limit or while
    /// starting). Not evidence about the data: it weighs like a timeout.
    Unreachable { reason: String },
}

/// Audits `pieces` of `shard` on the node at `addr`, all within `timeout`.
///
/// Never panics on anything the node sends, and buffers at most one frame of the size the shard
/// allows (its bitfield or a 16 KiB block); a longer frame is a [`Probe::Fail`].
///
/// `pieces` should come from [`pick_pieces`]: indices outside the shard are left out, and when
/// none is left the probe checks only the handshake and the unchoke and passes with `bytes: 0`.
pub async fn probe(
    addr: SocketAddr,
    shard: &ShardInfo,
    pieces: &[u32],
    timeout: Duration,
) -> Probe {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut ex = Exchange::new(shard, pieces);
    let (verdict, handshaken) = match run(addr, &mut ex, deadline).await {
        Ok(v) => v,
        Err(stage) => return Probe::Timeout { stage },
    };
    match verdict {
        Verdict::Missing { reason } if !handshaken => Probe::Unreachable { reason },
        Verdict::Pass { bytes } => Probe::Pass {
            bytes,
            elapsed: start.elapsed(),
        },
        Verdict::Fail { piece, reason } => Probe::Fail { piece, reason },
        Verdict::Missing { reason } => Probe::Missing { reason },
    }
}

/// Runs the exchange to a verdict, or returns the stage at which the deadline passed.
async fn run(
    addr: SocketAddr,
    ex: &mut Exchange,
    deadline: Instant,
) -> Result<(Verdict, bool), &'static str> {
    // Whether the node's handshake came: a close before it says nothing about the data.
    let mut handshaken = false;
    let mut stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err("connect"),
        Ok(Err(e)) => {
            return Ok((
                Verdict::Missing {
                    reason: format!("connection refused: {e}"),
                },
                false,
            ))
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let ours = Handshake {
        reserved: [0; 8],
        info_hash: ex.info_hash(),
        peer_id: peer_id(),
    };
    if let Some(v) = send(&mut stream, &ours.to_bytes(), ex, deadline).await? {
        return Ok((v, handshaken));
    }
    let mut buf = BytesMut::with_capacity(64 << 10);
    loop {
        if let Some(v) = absorb(ex, &mut buf, &mut handshaken) {
            return Ok((v, handshaken));
        }
        let mut out = Vec::new();
        for m in ex.take_outgoing() {
            m.encode(&mut out);
        }
        if !out.is_empty() {
            if let Some(v) = send(&mut stream, &out, ex, deadline).await? {
                return Ok((v, handshaken));
            }
        }
        buf.reserve(64 << 10);
        quick_ack(&stream);
        match timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Err(ex.stage()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((ex.on_closed(), handshaken)),
            Ok(Ok(_)) => {}
        }
    }
}

/// Writes `bytes`; `Some` when the node closed the connection.
async fn send(
    stream: &mut TcpStream,
    bytes: &[u8],
    ex: &Exchange,
    deadline: Instant,
) -> Result<Option<Verdict>, &'static str> {
    match timeout_at(deadline, stream.write_all(bytes)).await {
        Err(_) => Err(ex.stage()),
        Ok(Err(_)) => Ok(Some(ex.on_closed())),
        Ok(Ok(())) => Ok(None),
    }
}

/// `count` distinct piece indices of `shard` in ascending order, deterministic in `seed` (all of
/// them when the shard has no more than `count`).
pub fn pick_pieces(shard: &ShardInfo, count: usize, seed: u64) -> Vec<u32> {
    let n = u32::try_from(shard.pieces.len()).unwrap_or(u32::MAX) as u64;
    if count as u64 >= n {
        return (0..n as u32).collect();
    }
    // Floyd's algorithm: `count` draws, each distinct, without a table of all pieces.
    let mut rng = XorShift::new(seed);
    let mut set = std::collections::HashSet::with_capacity(count);
    for j in n - count as u64..n {
        let t = rng.below(j + 1) as u32;
        if !set.insert(t) {
            set.insert(j as u32);
        }
    }
    let mut out: Vec<u32> = set.into_iter().collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(pieces: usize) -> ShardInfo {
        ShardInfo {
            name: "0".repeat(32),
            length: pieces as u64 * 16384,
            piece_length: 16384,
            pieces: vec![[0; 20]; pieces],
        }
    }

    #[test]
    fn picked_pieces_are_distinct_in_range_and_replayable() {
        let s = shard(50);
        for seed in 0..200 {
            let p = pick_pieces(&s, 7, seed);
            assert_eq!(p.len(), 7);
            assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
            assert!(p.iter().all(|&i| i < 50));
            assert_eq!(p, pick_pieces(&s, 7, seed));
        }
        assert_ne!(pick_pieces(&s, 7, 1), pick_pieces(&s, 7, 2));
        assert_eq!(pick_pieces(&s, 60, 3), (0..50).collect::<Vec<_>>());
        assert!(pick_pieces(&shard(0), 3, 3).is_empty());
    }

    #[test]
    fn every_piece_is_picked_about_equally() {
        let s = shard(20);
        let mut counts = [0u32; 20];
        for seed in 0..20_000 {
            for p in pick_pieces(&s, 3, seed) {
                counts[p as usize] += 1;
            }
        }
        // 3000 expected per piece; five standard deviations is about 260.
        for c in counts {
            assert!((2_740..3_260).contains(&c), "{counts:?}");
        }
    }
}
