//! One connection of a piece read: a plain BitTorrent leecher (the gateway or a client) fetches
//! the pieces the read's board hands it from one holder of one shard, and hands back each
//! verified piece.
//!
//! The connection tells the board how its holder fares: up once it unchokes us (only then does
//! it take pieces), down as soon as a session fails, so the read can turn to another holder or
//! shard at once. A holder that refuses, closes, lacks a piece (it may be re-checking its files
//! after a restart) or goes quiet is dialled again after a growing pause, until the read's
//! patience runs out or the read no longer needs the shard; one that serves a piece that fails
//! its hash is given up at once and reported. The conversation itself is [`Exchange`] in read
//! mode; this file only moves its bytes.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raidtorrent_codec::ShardInfo;
use raidtorrent_proto::Handshake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::board::ConnId;
use crate::exchange::{Exchange, Verdict};
use crate::peer::{absorb, peer_id, quick_ack};
use crate::read::Shared;

/// How long a holder may take from our dial to its unchoke (connect, handshake, `interested`).
const ANSWER: Duration = Duration::from_secs(3);
/// How long a connection with pieces in flight may go without a byte.
const STALL: Duration = Duration::from_secs(10);
/// The first pause before dialling a holder again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// What one connection task is to do.
pub(crate) struct Job {
    pub shared: Arc<Shared>,
    pub info: Arc<ShardInfo>,
    pub shard: usize,
    pub addr: SocketAddr,
    pub id: ConnId,
    /// Pieces in flight at once.
    pub per_conn: usize,
    /// How long a holder that fails is dialled again.
    pub patience: Duration,
}

/// What a connection did, for the node's records.
pub struct ConnOutcome {
    pub shard: usize,
    pub addr: SocketAddr,
    /// Bytes received.
    pub bytes: u64,
    /// The holder served a bad piece or broke the protocol: why.
    pub bad: Option<String>,
}

/// How one session with the holder ended.
enum End {
    /// The read is over.
    Closed,
    /// The holder served wrong data or broke the protocol.
    Bad(String),
    /// Refused, closed, lacked a piece or went quiet: worth another dial.
    Retry(String),
}

/// Fetches pieces of `job.shard` from `job.addr` until the read ends or the holder is given up.
pub(crate) async fn run(job: Job) -> ConnOutcome {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut outcome = ConnOutcome {
        shard: job.shard,
        addr: job.addr,
        bytes: 0,
        bad: None,
    };
    let why = loop {
        let mut ex = Exchange::reader(&job.info);
        let end = session(&job, &mut ex).await;
        outcome.bytes += ex.bytes();
        match end {
            End::Closed => {
                job.shared.board().lost(job.shard, job.id);
                job.shared.poke();
                return outcome;
            }
            End::Bad(why) => {
                outcome.bad = Some(why.clone());
                break why;
            }
            End::Retry(why) if started.elapsed() + pause >= job.patience => break why,
            End::Retry(why) => {
                tracing::debug!(addr = %job.addr, %why, "dialling the holder again");
                job.shared
                    .down(job.shard, job.id, format!("{}: {why}", job.addr));
                if closed_within(&job, pause).await {
                    return outcome;
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    };
    let why = format!("shard {} from {}: {why}", job.shard, job.addr);
    job.shared.gave_up(job.shard, job.id, why);
    outcome
}

/// Waits `pause`; true when the read ended meanwhile.
async fn closed_within(job: &Job, pause: Duration) -> bool {
    let mut changes = job.shared.subscribe();
    tokio::time::timeout(pause, read_over(job, &mut changes))
        .await
        .is_ok()
}

/// Resolves once the read is over, or no longer needs the shard.
async fn read_over(job: &Job, changes: &mut tokio::sync::watch::Receiver<u64>) {
    while !job.shared.board().is_over(job.shard) {
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// One TCP session with the holder.
async fn session(job: &Job, ex: &mut Exchange) -> End {
    let mut changes = job.shared.subscribe();
    let answer_by = Instant::now() + ANSWER;
    let mut stream = match dial(job, &mut changes).await {
        Ok(s) => s,
        Err(end) => return end,
    };
    let ours = Handshake {
        reserved: [0; 8],
        info_hash: ex.info_hash(),
        peer_id: peer_id(),
    };
    let mut out = ours.to_bytes().to_vec();
    let mut buf = BytesMut::with_capacity(256 << 10);
    let mut handshaken = false;
    let mut up = false;
    // When the holder last sent anything.
    let mut heard = Instant::now();
    loop {
        if let Some(v) = absorb(ex, &mut buf, &mut handshaken) {
            return verdict(v);
        }
        if !up && ex.unchoked() {
            job.shared.up(job.shard, job.id);
            up = true;
        }
        let hedge_at = match step(job, ex, &mut out) {
            Ok(at) => at,
            Err(end) => return end,
        };
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return verdict(ex.on_closed());
        }
        out.clear();
        buf.reserve(256 << 10);
        quick_ack(&stream);
        // Until it unchokes us, the holder has `ANSWER` in all; then, while pieces are in
        // flight, it may not go `STALL` without a byte.
        let waiting = ex.pending() > 0;
        if !waiting {
            heard = Instant::now();
        }
        let quiet_until = if up { heard + STALL } else { answer_by };
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return verdict(ex.on_closed()),
                Ok(n) => {
                    job.shared.fetched.fetch_add(n as u64, Ordering::Relaxed);
                    heard = Instant::now();
                }
            },
            changed = changes.changed() => if changed.is_err() { return End::Closed },
            _ = sleep_until_some(hedge_at) => {}
            _ = tokio::time::sleep_until(quiet_until), if waiting || !up => {
                let within = if up { STALL } else { ANSWER };
                return End::Retry(format!("no data within {within:?} while waiting for {}", ex.stage()));
            }
        }
    }
}

/// Dials the holder; a dial that does not answer must not keep a finished read waiting.
async fn dial(
    job: &Job,
    changes: &mut tokio::sync::watch::Receiver<u64>,
) -> Result<TcpStream, End> {
    let dialled = tokio::select! {
        r = timeout(ANSWER, TcpStream::connect(job.addr)) => r,
        _ = read_over(job, changes) => return Err(End::Closed),
    };
    match dialled {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(End::Retry(format!("connection refused: {e}"))),
        Err(_) => Err(End::Retry(format!("no connection within {ANSWER:?}"))),
    }
}

/// Hands verified pieces to the board, takes new ones, and queues the messages to send in `out`.
/// Returns when to look for a hedge again, if one is not due yet.
fn step(
    job: &Job,
    ex: &mut Exchange,
    out: &mut Vec<u8>,
) -> Result<Option<std::time::Instant>, End> {
    for (p, data) in ex.take_completed() {
        job.shared.deliver(job.shard, job.id, p, data);
    }
    if job.shared.board().is_over(job.shard) {
        return Err(End::Closed);
    }
    let room = job.per_conn.saturating_sub(ex.pending());
    let now = job.shared.now();
    let (pieces, hedge_at) = job.shared.board().take(job.shard, job.id, room, now);
    if let Some(v) = ex.want(&pieces) {
        return Err(verdict(v));
    }
    for m in ex.take_outgoing() {
        m.encode(out);
    }
    Ok(hedge_at.map(|ms| job.shared.instant(ms)))
}

/// Sleeps until `at`, or forever.
async fn sleep_until_some(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn verdict(v: Verdict) -> End {
    match v {
        Verdict::Fail { reason, .. } => End::Bad(reason),
        Verdict::Missing { reason } => End::Retry(reason),
        // A read-mode exchange never passes; a pass only means it has nothing to do.
        Verdict::Pass { .. } => End::Retry("the exchange ended".into()),
    }
}
