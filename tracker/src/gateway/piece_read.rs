//! Piece reads: the gateway's own BEP 3 leecher fetches exactly the pieces a read needs, from every
//! holder of the shards at once, each piece verified against its hash as it arrives, and the
//! decoder works on segments while later pieces are still in flight.
//!
//! One read is one [`Board`] (`piece_board.rs`) behind a mutex, one connection task per (shard,
//! holder) (`piece_conn.rs`), and one [`PieceReader`] per shard, through which the blocking
//! decoder asks for bytes: it waits for their pieces, starts the holders of a shard it needs for
//! the first time (a parity shard, when a data shard failed), and moves the board's window on.
//!
//! Why not librqbit: its 9.1 session fetches whole files into the gateway's disk before the
//! decoder may start, and cannot fetch single pieces; the audit already speaks the peer wire, so
//! reads reuse its conversation (`audit::exchange`) in read mode.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raidtorrent_codec::{Geometry, Layout, ShardInfo, ShardInput, ShardReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fetch::ObjectShards;
use super::nodes::TransferRecord;
use super::piece_board::{Board, ConnId, Lookup};
use super::piece_conn::{self, ConnOutcome};
use super::Gateway;
use crate::registry::NodeId;
use crate::scoring::TransferKind;

/// The longest a read waits for holders to come online, and for one piece.
const MAX_PATIENCE: Duration = Duration::from_secs(30);
/// Bytes of pieces one connection is given to fetch at once.
const BYTES_PER_CONN: u64 = 2 << 20;

/// One read's state, shared by its decoder and its connections.
pub(super) struct Shared {
    board: Mutex<Board>,
    /// Wakes the decoder when a piece arrives or a shard fails.
    decoder: Condvar,
    /// Bumped on every change connections care about (pieces pending, the window, the end).
    changed: watch::Sender<u64>,
    /// Bytes received from nodes, hedges and failed pieces included.
    pub(super) fetched: AtomicU64,
    /// The board's clock starts here.
    epoch: Instant,
}

impl Shared {
    pub(super) fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().expect("board lock")
    }

    /// Wakes connections (after a change to pending pieces, the window or the end).
    pub(super) fn poke(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Milliseconds since the read started: the board's clock.
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of board time `ms`.
    pub(super) fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// A verified piece from connection `conn`.
    pub(super) fn deliver(&self, s: usize, conn: ConnId, p: u32, data: Vec<u8>) {
        let now = self.now();
        if self.board().delivered(s, conn, p, Bytes::from(data), now) {
            self.decoder.notify_all();
        }
    }

    /// Connection `conn` gave up on its holder.
    pub(super) fn gave_up(&self, s: usize, conn: ConnId, why: String) {
        self.board().gave_up(s, conn, why);
        self.decoder.notify_all();
        self.poke();
    }
}

/// A piece read in progress.
pub(super) struct PieceRead {
    gw: Gateway,
    pub(super) shared: Arc<Shared>,
    infos: Vec<Option<Arc<ShardInfo>>>,
    /// Each shard's holders that may serve, better first.
    holders: Vec<Vec<SocketAddr>>,
    layout: Layout,
    /// Every piece index the range touches, in any shard: what a shard started late fetches.
    span: Vec<u32>,
    runtime: tokio::runtime::Handle,
    conns: Mutex<Vec<JoinHandle<ConnOutcome>>>,
    next_conn: AtomicUsize,
    /// How long the decoder waits for one piece, and a holder is dialled again.
    patience: Duration,
    /// Which node listens at each data address.
    by_addr: HashMap<SocketAddr, NodeId>,
    started: Instant,
}

/// Pieces a read fetches of each shard ahead of the decoder: two blocks (at least 8 pieces).
pub(super) fn window_pieces(g: &Geometry) -> u64 {
    (2 * (g.block_size / g.piece_length)).max(8)
}

impl PieceRead {
    /// Starts fetching the pieces of plaintext `range` from the data shards' holders. Waits, up
    /// to the read's patience, until holders of `k` shards are online: right after nodes
    /// restart, they are reconnecting.
    pub(super) async fn start(
        gw: &Gateway,
        shards: &ObjectShards,
        range: Range<u64>,
    ) -> Result<Arc<Self>, super::GatewayError> {
        let layout = shards.manifest.layout;
        let patience = gw.inner.config.fetch_timeout.min(MAX_PATIENCE);
        let (by_addr, holders) = holders_online(gw, shards, patience).await?;
        let plan = layout.plan_range(range).pieces(&layout);
        let mut span: Vec<u32> = plan
            .iter()
            .flat_map(|(_, r)| r.clone())
            .map(|p| p as u32)
            .collect();
        span.sort_unstable();
        span.dedup();
        let board = Board::new(holders.len(), window_pieces(&layout.geometry) as u32);
        let read = Arc::new(PieceRead {
            gw: gw.clone(),
            shared: Arc::new(Shared {
                board: Mutex::new(board),
                decoder: Condvar::new(),
                changed: watch::channel(0).0,
                fetched: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            infos: shards
                .infos
                .iter()
                .map(|i| i.clone().map(Arc::new))
                .collect(),
            holders,
            layout,
            span,
            runtime: tokio::runtime::Handle::current(),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            patience,
            by_addr,
            started: Instant::now(),
        });
        for (shard, pieces) in plan {
            let pieces: Vec<u32> = pieces.map(|p| p as u32).collect();
            read.need(shard, &pieces, false);
        }
        Ok(read)
    }

    /// The decoder's inputs: a reader for every shard with a holder that may serve.
    pub(super) fn inputs<'a>(
        self: &Arc<Self>,
        shards: &'a ObjectShards,
    ) -> Vec<Option<ShardInput<'a, PieceReader>>> {
        (0..shards.infos.len())
            .map(|i| {
                Some(ShardInput {
                    info: shards.infos[i].as_ref()?,
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
        let holders = &self.holders[s];
        let start = self.shared.board().need(s, pieces, holders.len());
        if start {
            let Some(info) = self.infos[s].clone() else {
                return;
            };
            let per_conn = (BYTES_PER_CONN / info.piece_length).max(2) as usize;
            if late {
                let from = pieces.first().copied().unwrap_or(0);
                let rest: Vec<u32> = self.span.iter().copied().filter(|&p| p > from).collect();
                self.shared.board().need(s, &rest, holders.len());
            }
            let mut conns = self.conns.lock().expect("conns lock");
            for &addr in holders {
                let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
                let job = piece_conn::Job {
                    shared: self.shared.clone(),
                    info: info.clone(),
                    shard: s,
                    addr,
                    id,
                    per_conn,
                    patience: self.patience,
                };
                conns.push(self.runtime.spawn(piece_conn::run(job)));
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

    /// Piece `p` of shard `s`, once it is in.
    fn wait(&self, s: usize, p: u32) -> io::Result<Bytes> {
        let deadline = Instant::now() + self.patience;
        let mut board = self.shared.board();
        loop {
            match board.lookup(s, p) {
                Lookup::Ready(d) => return Ok(d),
                Lookup::Failed(why) => return Err(io::Error::other(why)),
                Lookup::Wait => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("piece {p} did not arrive within {:?}", self.patience),
                ));
            }
            board = self
                .shared
                .decoder
                .wait_timeout(board, left)
                .expect("board lock")
                .0;
        }
    }

    /// Ends the read: stops its connections and records what they did. Returns the bytes
    /// fetched.
    pub(super) async fn finish(&self) -> u64 {
        self.shared.board().close();
        self.shared.poke();
        let conns = std::mem::take(&mut *self.conns.lock().expect("conns lock"));
        let took = self.started.elapsed();
        for c in conns {
            let Ok(outcome) = c.await else { continue };
            self.judge(&outcome, took).await;
        }
        let fetched = self.shared.fetched.load(Ordering::Relaxed);
        self.gw
            .inner
            .piece_bytes
            .fetch_add(fetched, Ordering::Relaxed);
        fetched
    }

    /// A holder that served a bad piece is audited first; one that delivered gets a transfer.
    async fn judge(&self, o: &ConnOutcome, took: Duration) {
        let (Some(&node), Some(info)) = (self.by_addr.get(&o.addr), self.infos[o.shard].as_ref())
        else {
            return;
        };
        let ih = info.info_hash();
        if let Some(why) = &o.bad {
            tracing::warn!(node, info_hash = %ih, %why, "a read got a bad piece; auditing the node");
            self.gw.suspect(node, &ih);
        } else if o.bytes > 0 {
            let record = TransferRecord {
                node,
                kind: TransferKind::Fetch,
                info_hash: &ih,
                ok: true,
                bytes: o.bytes,
                took,
            };
            self.gw.inner.nodes.record_transfer(record).await;
        }
    }
}

/// Which node listens where, and each shard's holders that may serve (better first), once
/// holders of `k` shards are online; waits for nodes to connect up to `patience`.
async fn holders_online(
    gw: &Gateway,
    shards: &ObjectShards,
    patience: Duration,
) -> Result<(HashMap<SocketAddr, NodeId>, Vec<Vec<SocketAddr>>), super::GatewayError> {
    let k = shards.manifest.layout.k();
    let deadline = tokio::time::Instant::now() + patience;
    let mut changes = gw.inner.nodes.hub().changes();
    loop {
        changes.borrow_and_update();
        let snapshot = gw.inner.nodes.snapshot();
        let mut holders = vec![Vec::new(); shards.infos.len()];
        for (i, sources) in gw.fetch_candidates(&snapshot, shards, &[]).await? {
            holders[i] = sources;
        }
        let serving = holders.iter().filter(|h| !h.is_empty()).count();
        if serving >= k {
            return Ok((snapshot.by_addr(), holders));
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err(super::GatewayError::Unavailable(format!(
                "{serving} of the {k} shards needed have a holder online"
            )));
        }
    }
}

/// The decoder's view of one shard of a piece read.
pub(super) struct PieceReader {
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
