//! Piece reads: a plain BEP 3 leecher fetches exactly the pieces a read needs, from every holder
//! of the shards at once, each piece verified against its hash as it arrives, and the decoder
//! works on segments while later pieces are still in flight. The gateway reads objects this way
//! for its clients, and the client CLI reads its own objects straight from the nodes.
//!
//! One read is one [`Board`] (`board.rs`) behind a mutex, one connection task per (shard,
//! holder) (`conn.rs`), and one [`PieceReader`] per shard, through which the blocking decoder
//! asks for bytes: it waits for their pieces, starts the holders of a shard it needs for the
//! first time (a parity shard, when a data shard failed), and moves the board's window on. A
//! shard none of whose holders answers fails at once when other shards can stand in (the board
//! decides), so a dead holder costs a read a refused dial or [`crate::board::ANSWER_MS`], not
//! its patience.
//!
//! Why not librqbit: its 9.1 session fetches whole files to disk before the decoder may start,
//! and cannot fetch single pieces; the audit already speaks the peer wire, so reads reuse its
//! conversation ([`crate::exchange`]) in read mode.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raidtorrent_codec::{Geometry, Layout, ShardInfo, ShardInput, ShardReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::board::{Board, ConnId, Lookup};
use crate::conn::{self, ConnOutcome};

/// Bytes of pieces one connection is given to fetch at once.
const BYTES_PER_CONN: u64 = 2 << 20;

/// What a read fetches from: each shard's info (`None` when unknown) and the holders that may
/// serve it, better first.
pub struct Sources {
    pub infos: Vec<Option<ShardInfo>>,
    pub holders: Vec<Vec<SocketAddr>>,
    pub layout: Layout,
    /// How long the decoder waits for one piece, and a holder is dialled again.
    pub patience: Duration,
}

/// One read's state, shared by its decoder and its connections.
pub(crate) struct Shared {
    board: Mutex<Board>,
    /// Wakes the decoder when a piece arrives or a shard fails.
    decoder: Condvar,
    /// Bumped on every change connections care about (pieces pending, the window, the end).
    changed: watch::Sender<u64>,
    /// Bytes received from nodes, hedges and failed pieces included.
    pub(crate) fetched: AtomicU64,
    /// The board's clock starts here.
    epoch: Instant,
}

impl Shared {
    pub(crate) fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().expect("board lock")
    }

    /// Wakes connections (after a change to pending pieces, the window or the end).
    pub(crate) fn poke(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Milliseconds since the read started: the board's clock.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of board time `ms`.
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// A verified piece from connection `conn`.
    pub(crate) fn deliver(&self, s: usize, conn: ConnId, p: u32, data: Vec<u8>) {
        let now = self.now();
        if self.board().delivered(s, conn, p, Bytes::from(data), now) {
            self.decoder.notify_all();
        }
    }

    /// Connection `conn`'s holder unchoked us: it takes pieces now, and a shard the decoder
    /// waits on may no longer be the only one left to serve.
    pub(crate) fn up(&self, s: usize, conn: ConnId) {
        let now = self.now();
        self.board().up(s, conn, now);
        self.decoder.notify_all();
    }

    /// Connection `conn`'s session failed (`why`); it dials its holder again.
    pub(crate) fn down(&self, s: usize, conn: ConnId, why: String) {
        self.board().down(s, conn, why);
        self.decoder.notify_all();
        self.poke();
    }

    /// Connection `conn` gave up on its holder.
    pub(crate) fn gave_up(&self, s: usize, conn: ConnId, why: String) {
        self.board().gave_up(s, conn, why);
        self.decoder.notify_all();
        self.poke();
    }
}

/// How a read went, for the holders' records.
pub struct Finished {
    /// What each connection did.
    pub outcomes: Vec<ConnOutcome>,
    /// Bytes received from holders, hedges and failed pieces included.
    pub fetched: u64,
    /// From the start of the read to its end.
    pub took: Duration,
}

/// A piece read in progress.
pub struct PieceRead {
    shared: Arc<Shared>,
    infos: Vec<Option<Arc<ShardInfo>>>,
    holders: Vec<Vec<SocketAddr>>,
    layout: Layout,
    /// Every piece index the range touches, in any shard: what a shard started late fetches.
    span: Vec<u32>,
    runtime: tokio::runtime::Handle,
    conns: Mutex<Vec<JoinHandle<ConnOutcome>>>,
    patience: Duration,
    started: Instant,
}

/// Pieces a read fetches of each shard ahead of the decoder: two blocks (at least 8 pieces).
pub fn window_pieces(g: &Geometry) -> u64 {
    (2 * (g.block_size / g.piece_length)).max(8)
}

impl PieceRead {
    /// Starts fetching the pieces of plaintext `range` from the data shards' holders. Must be
    /// called within a Tokio runtime: the connections run on it.
    pub fn start(sources: Sources, range: Range<u64>) -> Arc<Self> {
        let Sources {
            infos,
            holders,
            layout,
            patience,
        } = sources;
        let plan = layout.plan_range(range).pieces(&layout);
        let mut span: Vec<u32> = plan
            .iter()
            .flat_map(|(_, r)| r.clone())
            .map(|p| p as u32)
            .collect();
        span.sort_unstable();
        span.dedup();
        // A shard the decoder cannot use (its info is unknown) has no holder that may serve.
        let serving: Vec<usize> = (holders.iter().zip(&infos))
            .map(|(h, i)| if i.is_some() { h.len() } else { 0 })
            .collect();
        let window = window_pieces(&layout.geometry) as u32;
        let board = Board::new(&serving, layout.k(), window);
        let read = Arc::new(PieceRead {
            shared: Arc::new(Shared {
                board: Mutex::new(board),
                decoder: Condvar::new(),
                changed: watch::channel(0).0,
                fetched: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            infos: infos.into_iter().map(|i| i.map(Arc::new)).collect(),
            holders,
            layout,
            span,
            runtime: tokio::runtime::Handle::current(),
            conns: Mutex::new(Vec::new()),
            patience,
            started: Instant::now(),
        });
        for (shard, pieces) in plan {
            let pieces: Vec<u32> = pieces.map(|p| p as u32).collect();
            read.need(shard, &pieces, false);
        }
        read
    }

    /// Shard `s`'s info, when the read has it.
    pub fn info(&self, s: usize) -> Option<&ShardInfo> {
        self.infos.get(s)?.as_deref()
    }

    /// Bytes received from holders so far.
    pub fn fetched(&self) -> u64 {
        self.shared.fetched.load(Ordering::Relaxed)
    }

    /// The decoder's inputs: a reader for every shard with a holder that may serve.
    pub fn inputs(self: &Arc<Self>) -> Vec<Option<ShardInput<'_, PieceReader>>> {
        (0..self.infos.len())
            .map(|i| {
                Some(ShardInput {
                    info: self.infos[i].as_deref()?,
                    reader: PieceReader {
                        read: self.clone(),
                        shard: i,
                    },
                })
                .filter(|_| !self.holders[i].is_empty())
            })
            .collect()
    }

    /// Shard `s` needs `pieces`; its holders' connections start the first time. A shard that
    /// starts `late` (the decoder needs it in place of one that failed) also fetches the rest of
    /// the range, as the shard it stands in for would have.
    fn need(&self, s: usize, pieces: &[u32], late: bool) {
        let now = self.shared.now();
        let start = self.shared.board().need(s, pieces, now);
        if let (Some(ids), Some(info)) = (start, self.infos[s].clone()) {
            let per_conn = (BYTES_PER_CONN / info.piece_length).max(2) as usize;
            if late {
                let from = pieces.first().copied().unwrap_or(0);
                let rest: Vec<u32> = self.span.iter().copied().filter(|&p| p > from).collect();
                self.shared.board().need(s, &rest, now);
            }
            let mut conns = self.conns.lock().expect("conns lock");
            for (id, &addr) in ids.zip(&self.holders[s]) {
                let job = conn::Job {
                    shared: self.shared.clone(),
                    info: info.clone(),
                    shard: s,
                    addr,
                    id,
                    per_conn,
                    patience: self.patience,
                };
                conns.push(self.runtime.spawn(conn::run(job)));
            }
        }
        self.shared.poke();
    }

    /// Bytes `buf.len()` of shard `s` from `offset`, waiting for their pieces.
    fn read_at(&self, s: usize, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let pl = self.layout.geometry.piece_length;
        let end = offset + buf.len() as u64;
        let pieces = (offset / pl) as u32..end.div_ceil(pl) as u32;
        let block = self.layout.geometry.block_size;
        let floor = (offset / block * block / pl) as u32;
        self.shared.board().advance(floor);
        self.need(s, &pieces.clone().collect::<Vec<_>>(), true);
        for p in pieces {
            let data = self.wait(s, p)?;
            let at = u64::from(p) * pl;
            let (a, b) = (offset.max(at), end.min(at + data.len() as u64));
            buf[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&data[(a - at) as usize..(b - at) as usize]);
        }
        Ok(())
    }

    /// Piece `p` of shard `s`, once it is in; an error once the shard failed (its connections
    /// then stop) or the piece did not come within the patience.
    fn wait(&self, s: usize, p: u32) -> io::Result<Bytes> {
        let deadline = Instant::now() + self.patience;
        let mut board = self.shared.board();
        loop {
            let recheck = match board.lookup(s, p, self.shared.now()) {
                Lookup::Ready(d) => return Ok(d),
                Lookup::Failed(why) => {
                    drop(board);
                    self.shared.poke();
                    return Err(io::Error::other(why));
                }
                Lookup::Wait(recheck) => recheck.map(|ms| self.shared.instant(ms)),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("piece {p} did not arrive within {:?}", self.patience),
                ));
            }
            let until = recheck.map_or(deadline, |r| r.min(deadline));
            board = self
                .shared
                .decoder
                .wait_timeout(board, until.saturating_duration_since(now))
                .expect("board lock")
                .0;
        }
    }

    /// Ends the read: stops its connections and says what they did.
    pub async fn finish(&self) -> Finished {
        self.shared.board().close();
        self.shared.poke();
        let conns = std::mem::take(&mut *self.conns.lock().expect("conns lock"));
        let took = self.started.elapsed();
        let mut outcomes = Vec::with_capacity(conns.len());
        for c in conns {
            if let Ok(outcome) = c.await {
                outcomes.push(outcome);
            }
        }
        Finished {
            outcomes,
            fetched: self.fetched(),
            took,
        }
    }
}

/// The decoder's view of one shard of a piece read.
pub struct PieceReader {
    read: Arc<PieceRead>,
    shard: usize,
}

impl ShardReader for PieceReader {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read.read_at(self.shard, offset, buf)
    }

    fn verified(&self) -> bool {
        true
    }
}
