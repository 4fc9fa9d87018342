//! The leecher's side of one peer-wire conversation with a node, without sockets: what to send,
//! what the node's answers mean, and the verdict. The gateway's audit probe drives it over TCP
//! (a fixed set of pieces, then a verdict); piece reads ([`crate::read`]) drive it in *read mode*
//! ([`Exchange::reader`]): pieces are added as the read needs them ([`Exchange::want`]), each
//! verified piece is handed over ([`Exchange::take_completed`]), and only a failure ends it.
//!
//! States, in order (the [`Exchange::stage`] a timeout names):
//! - `handshake`: our handshake is sent; the node's must name the shard's info-hash;
//! - `unchoke`: `interested` is sent; the node's bitfield and `have`s say what it holds. At its
//!   `unchoke`, every chosen piece must be held, or the audit ends as [`Verdict::Missing`];
//! - `block`: requests for every 16 KiB block of the chosen pieces go out, at most
//!   [`PIPELINE`] at a time. Each `piece` must answer an outstanding request exactly (index, offset,
//!   length); each completed piece is SHA-1-checked. A `choke` puts outstanding requests back in the
//!   queue (BEP 3: a choke drops them) and returns to `unchoke`.
//!
//! Anything a broken or dishonest node sends (a bad bitfield, an unrequested block, wrong data) ends
//! the audit as [`Verdict::Fail`], naming the piece being fetched (the first chosen piece before any
//! request went out).

use std::collections::VecDeque;

use raidtorrent_codec::ShardInfo;
use raidtorrent_proto::Handshake;
use sha1::{Digest, Sha1};

use super::wire::{BlockRef, Message, WireError};

/// Block size requested, as every client does.
pub const BLOCK_LEN: u32 = 16 << 10;
/// Requests an audit keeps outstanding at once.
pub const PIPELINE: usize = 4;
/// Requests a read keeps outstanding at once: 1 MiB in flight, so one connection can fill a link
/// whose bandwidth-delay product is below that. librqbit queues every request it is sent.
pub const READ_PIPELINE: usize = 64;

/// How an exchange ended, short of a timeout (which only the driver can see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every chosen piece arrived and matched its hash.
    Pass { bytes: u64 },
    /// The node served wrong data or broke the protocol.
    Fail { piece: u32, reason: String },
    /// The node refused or does not hold a chosen piece.
    Missing { reason: String },
}

/// Progress of one audit conversation.
#[derive(Debug)]
pub struct Exchange {
    info_hash: [u8; 20],
    piece_count: u32,
    piece_length: u64,
    length: u64,
    hashes: Vec<[u8; 20]>,
    /// Chosen pieces, in request order, deduplicated and in range.
    chosen: Vec<u32>,
    stage: &'static str,
    /// Pieces the node says it holds.
    held: Vec<bool>,
    queue: VecDeque<BlockRef>,
    outstanding: Vec<BlockRef>,
    /// Pieces being assembled: index, bytes, bytes received so far. Pipelining spans at most
    /// [`PIPELINE`] pieces.
    assembling: Vec<(u32, Vec<u8>, u32)>,
    outbox: Vec<Message>,
    bytes: u64,
    verified: usize,
    /// Requests were queued (at the first unchoke).
    started: bool,
    /// Read mode: more pieces may come, verified pieces are kept, nothing but a failure ends it.
    open: bool,
    /// Requests kept outstanding at once.
    pipeline: usize,
    /// Read mode: verified pieces not yet taken.
    completed: Vec<(u32, Vec<u8>)>,
}

impl Exchange {
    /// A new exchange auditing `pieces` of `shard`. Indices outside the shard (or of pieces its
    /// length leaves empty) are the caller's mistake and are left out; repeated indices are
    /// checked once.
    pub fn new(shard: &ShardInfo, pieces: &[u32]) -> Self {
        let piece_count = u32::try_from(shard.pieces.len()).unwrap_or(u32::MAX);
        let mut seen = vec![false; piece_count as usize];
        let mut chosen = Vec::with_capacity(pieces.len());
        for &p in pieces {
            if p < piece_count
                && !std::mem::replace(&mut seen[p as usize], true)
                && piece_len(shard.length, shard.piece_length, p) > 0
            {
                chosen.push(p);
            }
        }
        Exchange {
            info_hash: shard.info_hash().0,
            piece_count,
            piece_length: shard.piece_length,
            length: shard.length,
            hashes: shard.pieces.clone(),
            chosen,
            stage: "handshake",
            held: vec![false; piece_count as usize],
            queue: VecDeque::new(),
            outstanding: Vec::new(),
            assembling: Vec::new(),
            outbox: Vec::new(),
            bytes: 0,
            verified: 0,
            started: false,
            open: false,
            pipeline: PIPELINE,
            completed: Vec::new(),
        }
    }

    /// An exchange in read mode: it starts with no piece chosen and ends only on a failure.
    pub fn reader(shard: &ShardInfo) -> Self {
        Exchange {
            open: true,
            pipeline: READ_PIPELINE,
            ..Exchange::new(shard, &[])
        }
    }

    /// Read mode: asks for `pieces` too. Indices outside the shard, empty pieces and pieces
    /// already chosen are left out. `Some` ends the exchange: once unchoked, a piece the node
    /// says it does not hold is [`Verdict::Missing`].
    pub fn want(&mut self, pieces: &[u32]) -> Option<Verdict> {
        for &p in pieces {
            if p >= self.piece_count || self.piece_len(p) == 0 || self.chosen.contains(&p) {
                continue;
            }
            if self.started && !self.held[p as usize] {
                return Some(Verdict::Missing {
                    reason: format!("does not have piece {p}"),
                });
            }
            self.chosen.push(p);
            if self.started {
                let blocks = self.blocks(p);
                self.queue.extend(blocks);
            }
        }
        if self.stage == "block" {
            self.refill();
        }
        None
    }

    /// Read mode: the pieces verified since the last call, with their bytes.
    pub fn take_completed(&mut self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut self.completed)
    }

    /// Pieces asked for and not yet verified.
    pub fn pending(&self) -> usize {
        self.chosen.len() - self.verified
    }

    /// Bytes of verified and unverified blocks received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The shard's info-hash, which our handshake names.
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }

    /// The node unchoked us and requests may go out (read mode: pieces may be added).
    pub fn unchoked(&self) -> bool {
        self.stage == "block"
    }

    /// What the exchange waits for: `handshake`, `unchoke` or `block`.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The largest frame the node has any reason to send: its bitfield, a 16 KiB block, or a
    /// modest extension message (librqbit's extended handshake is a few hundred bytes).
    pub fn max_frame(&self) -> u32 {
        let bitfield = 1 + self.piece_count.div_ceil(8);
        bitfield.max(9 + BLOCK_LEN).max(64 << 10)
    }

    /// Messages to send now, in order.
    pub fn take_outgoing(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.outbox)
    }

    /// The node's handshake arrived.
    pub fn on_handshake(&mut self, h: &Handshake) -> Result<(), Verdict> {
        if h.info_hash != self.info_hash {
            return Err(Verdict::Missing {
                reason: format!(
                    "answered with info-hash {}",
                    raidtorrent_codec::InfoHash(h.info_hash)
                ),
            });
        }
        self.stage = "unchoke";
        self.outbox.push(Message::Interested);
        Ok(())
    }

    /// One message from the node; `Some` ends the exchange.
    pub fn on_message(&mut self, m: Message) -> Option<Verdict> {
        match m {
            Message::Bitfield(bits) => self.on_bitfield(&bits),
            Message::Have(i) => {
                if i >= self.piece_count {
                    return Some(self.fail(format!(
                        "have for piece {i} of a shard of {} pieces",
                        self.piece_count
                    )));
                }
                self.held[i as usize] = true;
                None
            }
            Message::Unchoke => self.on_unchoke(),
            Message::Choke => {
                if self.stage == "block" {
                    for b in self.outstanding.drain(..).rev() {
                        self.queue.push_front(b);
                    }
                    self.stage = "unchoke";
                }
                None
            }
            Message::Piece { index, begin, data } => self.on_piece(index, begin, &data),
            // The node asking us for data, keep-alives, extension and unknown messages: nothing
            // for an audit to act on.
            _ => None,
        }
    }

    /// The stream broke at the wire level; the node is at fault.
    pub fn on_wire_error(&self, e: &WireError) -> Verdict {
        self.fail(format!("peer-wire violation: {e}"))
    }

    /// The node closed the connection before the exchange ended.
    pub fn on_closed(&self) -> Verdict {
        Verdict::Missing {
            reason: format!(
                "closed the connection while the audit waited for {}",
                self.stage
            ),
        }
    }

    fn fail(&self, reason: String) -> Verdict {
        let piece = self
            .assembling
            .first()
            .map(|a| a.0)
            .or_else(|| self.outstanding.first().map(|b| b.index))
            .or_else(|| self.chosen.first().copied())
            .unwrap_or(0);
        Verdict::Fail { piece, reason }
    }

    fn on_bitfield(&mut self, bits: &[u8]) -> Option<Verdict> {
        let want = self.piece_count.div_ceil(8) as usize;
        if bits.len() != want {
            return Some(self.fail(format!(
                "bitfield of {} bytes for {} pieces",
                bits.len(),
                self.piece_count
            )));
        }
        let spare = want * 8 - self.piece_count as usize;
        if spare > 0 && bits[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Some(self.fail("bitfield sets bits past the last piece".into()));
        }
        for (i, h) in self.held.iter_mut().enumerate() {
            *h = bits[i / 8] & (0x80 >> (i % 8)) != 0;
        }
        None
    }

    fn on_unchoke(&mut self) -> Option<Verdict> {
        if self.stage != "unchoke" {
            return None;
        }
        if !self.started {
            if let Some(p) = self.chosen.iter().find(|&&p| !self.held[p as usize]) {
                return Some(Verdict::Missing {
                    reason: format!("does not have piece {p}"),
                });
            }
            if self.chosen.is_empty() && !self.open {
                return Some(Verdict::Pass { bytes: 0 });
            }
            self.queue = self.chosen.iter().flat_map(|&p| self.blocks(p)).collect();
            self.started = true;
        }
        self.stage = "block";
        self.refill();
        None
    }

    fn piece_len(&self, p: u32) -> u64 {
        piece_len(self.length, self.piece_length, p)
    }

    fn blocks(&self, p: u32) -> Vec<BlockRef> {
        let len = self.piece_len(p);
        (0..len)
            .step_by(BLOCK_LEN as usize)
            .map(|begin| BlockRef {
                index: p,
                begin: begin as u32,
                length: (len - begin).min(BLOCK_LEN as u64) as u32,
            })
            .collect()
    }

    fn refill(&mut self) {
        while self.outstanding.len() < self.pipeline {
            let Some(b) = self.queue.pop_front() else {
                break;
            };
            self.outstanding.push(b);
            self.outbox.push(Message::Request(b));
        }
    }

    fn on_piece(&mut self, index: u32, begin: u32, data: &[u8]) -> Option<Verdict> {
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let wanted = BlockRef {
            index,
            begin,
            length,
        };
        if let Some(at) = self.outstanding.iter().position(|b| *b == wanted) {
            self.outstanding.remove(at);
        } else if let Some(at) = self.queue.iter().position(|b| *b == wanted) {
            // Requested before a choke dropped it (or about to be): still a block of a chosen
            // piece at its exact place, and the piece's hash judges it.
            self.queue.remove(at);
        } else {
            return Some(self.fail(format!(
                "sent a block that was not requested: piece {index}, offset {begin}, {length} bytes"
            )));
        }
        self.bytes += data.len() as u64;
        let piece_len = self.piece_len(index) as usize;
        let slot = match self.assembling.iter().position(|a| a.0 == index) {
            Some(slot) => slot,
            None => {
                self.assembling.push((index, vec![0; piece_len], 0));
                self.assembling.len() - 1
            }
        };
        let (_, buf, got) = &mut self.assembling[slot];
        // In range: the block matched a request, and requests lie inside the piece.
        buf[begin as usize..begin as usize + data.len()].copy_from_slice(data);
        *got += length;
        if *got as usize == piece_len {
            let (_, buf, _) = self.assembling.swap_remove(slot);
            let digest: [u8; 20] = Sha1::digest(&buf).into();
            if digest != self.hashes[index as usize] {
                return Some(Verdict::Fail {
                    piece: index,
                    reason: format!("piece {index} does not match its hash"),
                });
            }
            self.verified += 1;
            if self.open {
                self.completed.push((index, buf));
            } else if self.verified == self.chosen.len() {
                return Some(Verdict::Pass { bytes: self.bytes });
            }
        }
        self.refill();
        None
    }
}

/// Length of piece `p` of a torrent of `length` bytes (the last piece may be short).
fn piece_len(length: u64, piece_length: u64, p: u32) -> u64 {
    let start = u64::from(p).saturating_mul(piece_length);
    piece_length.min(length.saturating_sub(start))
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
