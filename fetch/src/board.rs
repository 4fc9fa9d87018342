//! One piece read's shared state as a pure state machine: which pieces of which shard the read
//! still needs, which connection fetches each, and the verified pieces waiting for the decoder.
//!
//! - A shard is *idle* until the read first needs it; then its holders' connections start
//!   ([`Board::need`] says when). It *fails* when every holder's connection has given up; the
//!   decoder then rebuilds from other shards.
//! - Connections take pending pieces, lowest first, up to the room they have ([`Board::take`]).
//!   A connection with nothing in flight and nothing pending takes a copy of the lowest piece
//!   another connection of the shard has been fetching for longer than [`HEDGE_FACTOR`] times
//!   the usual piece time (a hedge): a slow holder is overtaken by a faster one, and the first
//!   copy delivered wins. Times are milliseconds on the caller's clock.
//! - Only pieces below `limit` are handed out; the decoder moving on ([`Board::advance`]) drops
//!   every piece below its position and raises the limit, so a read holds at most `window`
//!   pieces per shard however fast the nodes are.
//! - A connection that ends puts the pieces only it was fetching back to pending.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// A connection's number within one read.
pub(crate) type ConnId = usize;

/// A piece in flight this many times longer than the shard's usual piece time may be hedged.
pub(crate) const HEDGE_FACTOR: u64 = 3;
/// Nor before this many milliseconds, whatever the usual time.
pub(crate) const HEDGE_MIN_MS: u64 = 100;

/// A piece in flight: who fetches it, since when.
#[derive(Debug)]
struct Flight {
    conns: Vec<ConnId>,
    since: u64,
}

/// The pieces of one read.
#[derive(Debug)]
pub(crate) struct Board {
    shards: Vec<Shard>,
    /// Pieces below `floor` are behind the decoder: dropped, never fetched.
    floor: u32,
    /// Pieces handed out per shard ahead of the decoder.
    window: u32,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shard {
    state: State,
    pending: BTreeSet<u32>,
    /// Pieces in flight, with the connections fetching them.
    assigned: BTreeMap<u32, Flight>,
    /// Smoothed milliseconds from handing a piece out to its delivery.
    piece_ms: Option<u64>,
    done: BTreeMap<u32, Bytes>,
    /// Connections (one per holder) that have not given up.
    live: usize,
    /// Why each connection that gave up did.
    failures: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    Active,
    Failed,
}

/// What the decoder finds when it asks for a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Ready(Bytes),
    Wait,
    /// Every holder gave up: why.
    Failed(String),
}

impl Board {
    /// A read of an object of `shards` shards, fetching at most `window` pieces ahead.
    pub(crate) fn new(shards: usize, window: u32) -> Self {
        Board {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            floor: 0,
            window: window.max(1),
            closed: false,
        }
    }

    /// The read needs `pieces` of shard `s`. True when the shard was idle: the caller starts one
    /// connection per holder (`holders` of them) now.
    pub(crate) fn need(&mut self, s: usize, pieces: &[u32], holders: usize) -> bool {
        let Some(sh) = self.shards.get_mut(s) else {
            return false;
        };
        for &p in pieces.iter().filter(|&&p| p >= self.floor) {
            if !sh.done.contains_key(&p) && !sh.assigned.contains_key(&p) {
                sh.pending.insert(p);
            }
        }
        if sh.state != State::Idle {
            return false;
        }
        if holders == 0 {
            sh.state = State::Failed;
            sh.failures.push("no holder may serve it".into());
            return false;
        }
        sh.state = State::Active;
        sh.live = holders;
        true
    }

    /// Up to `room` pieces of shard `s` for connection `conn` to fetch at time `now`, lowest
    /// first; or, when it has nothing in flight and nothing is pending, one hedge. Also when to
    /// ask again for a hedge that is not due yet.
    pub(crate) fn take(
        &mut self,
        s: usize,
        conn: ConnId,
        room: usize,
        now: u64,
    ) -> (Vec<u32>, Option<u64>) {
        let limit = self.floor.saturating_add(self.window);
        let sh = &mut self.shards[s];
        if self.closed || sh.state != State::Active || room == 0 {
            return (Vec::new(), None);
        }
        let mut out: Vec<u32> = sh.pending.range(..limit).take(room).copied().collect();
        let mut later = None;
        if out.is_empty() && !sh.assigned.values().any(|f| f.conns.contains(&conn)) {
            let after = sh
                .piece_ms
                .map_or(HEDGE_MIN_MS, |ms| (ms * HEDGE_FACTOR).max(HEDGE_MIN_MS));
            if let Some((&p, f)) = sh.assigned.range(..limit).find(|(_, f)| f.conns.len() == 1) {
                if now >= f.since + after {
                    out.push(p);
                } else {
                    later = Some(f.since + after);
                }
            }
        }
        for p in &out {
            sh.pending.remove(p);
            sh.assigned
                .entry(*p)
                .or_insert(Flight {
                    conns: Vec::new(),
                    since: now,
                })
                .conns
                .push(conn);
        }
        (out, later)
    }

    /// Connection `conn` delivered verified piece `p` of shard `s` at time `now`. True when it
    /// is the first copy (a hedge's twin delivers a second).
    pub(crate) fn delivered(
        &mut self,
        s: usize,
        conn: ConnId,
        p: u32,
        data: Bytes,
        now: u64,
    ) -> bool {
        let sh = &mut self.shards[s];
        let first = p >= self.floor && !sh.done.contains_key(&p);
        if let Some(f) = sh.assigned.get_mut(&p) {
            if first {
                let took = now.saturating_sub(f.since);
                sh.piece_ms = Some(sh.piece_ms.map_or(took, |ms| (ms * 7 + took) / 8));
            }
            f.conns.retain(|&x| x != conn);
            if f.conns.is_empty() {
                sh.assigned.remove(&p);
            }
        }
        if !first {
            return false;
        }
        sh.pending.remove(&p);
        sh.done.insert(p, data);
        true
    }

    /// Connection `conn` of shard `s` closed: the pieces only it was fetching are pending again.
    pub(crate) fn lost(&mut self, s: usize, conn: ConnId) {
        let sh = &mut self.shards[s];
        let mut orphaned = Vec::new();
        sh.assigned.retain(|p, f| {
            f.conns.retain(|&x| x != conn);
            if f.conns.is_empty() {
                orphaned.push(*p);
            }
            !f.conns.is_empty()
        });
        sh.pending.extend(orphaned);
    }

    /// Connection `conn` of shard `s` gave up for good (`why`); the shard fails with its last
    /// connection.
    pub(crate) fn gave_up(&mut self, s: usize, conn: ConnId, why: String) {
        self.lost(s, conn);
        let sh = &mut self.shards[s];
        sh.failures.push(why);
        sh.live = sh.live.saturating_sub(1);
        if sh.live == 0 && sh.state == State::Active {
            sh.state = State::Failed;
            sh.pending.clear();
        }
    }

    /// Piece `p` of shard `s`, for the decoder.
    pub(crate) fn lookup(&self, s: usize, p: u32) -> Lookup {
        let sh = &self.shards[s];
        if let Some(d) = sh.done.get(&p) {
            return Lookup::Ready(d.clone());
        }
        match sh.state {
            State::Failed => Lookup::Failed(sh.failures.join("; ")),
            _ => Lookup::Wait,
        }
    }

    /// The decoder reached piece `floor`: every piece below it is dropped and pieces up to
    /// `floor + window` may be fetched.
    pub(crate) fn advance(&mut self, floor: u32) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        for sh in &mut self.shards {
            sh.done = sh.done.split_off(&floor);
            sh.pending = sh.pending.split_off(&floor);
        }
    }

    /// The read is over: connections stop taking pieces.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes of verified pieces held for the decoder.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.shards
            .iter()
            .flat_map(|s| s.done.values())
            .map(Bytes::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(p: u32) -> Bytes {
        Bytes::from(vec![p as u8; 4])
    }

    #[test]
    fn an_idle_shard_starts_once_and_pieces_go_lowest_first_within_the_window() {
        let mut b = Board::new(3, 4);
        assert!(b.need(1, &[5, 0, 1, 2, 3, 4], 2));
        assert!(!b.need(1, &[6], 2), "already started");
        assert_eq!(b.take(1, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(b.take(1, 1, 9, 0).0, vec![2, 3], "the window stops at 4");
        b.advance(2);
        assert_eq!(b.take(1, 1, 9, 0).0, vec![4, 5]);
    }

    #[test]
    fn an_idle_connection_hedges_a_late_piece_and_the_first_copy_wins() {
        let mut b = Board::new(1, 10);
        b.need(0, &[0, 1], 2);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(
            b.take(0, 1, 2, 50),
            (vec![], Some(HEDGE_MIN_MS)),
            "not late yet: ask again then"
        );
        assert_eq!(
            b.take(0, 1, 2, 100).0,
            vec![0],
            "a hedge of the lowest late piece"
        );
        assert_eq!(b.take(0, 1, 2, 200), (vec![], None), "one hedge at a time");
        assert!(b.delivered(0, 1, 0, piece(0), 120));
        assert!(!b.delivered(0, 0, 0, piece(0), 130), "the twin is not news");
        // The usual piece time is now about 120 ms: a hedge waits three times that.
        assert_eq!(b.take(0, 1, 2, 200).1, Some(360));
        assert_eq!(b.take(0, 1, 2, 360).0, vec![1]);
        assert_eq!(b.lookup(0, 0), Lookup::Ready(piece(0)));
        assert_eq!(b.lookup(0, 1), Lookup::Wait);
    }

    #[test]
    fn a_lost_connection_gives_its_pieces_back_and_the_last_one_fails_the_shard() {
        let mut b = Board::new(1, 10);
        b.need(0, &[0, 1, 2], 2);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(b.take(0, 1, 1, 0).0, vec![2]);
        b.lost(0, 0);
        assert_eq!(b.take(0, 1, 5, 0).0, vec![0, 1]);
        b.gave_up(0, 0, "refused".into());
        assert_eq!(b.lookup(0, 0), Lookup::Wait, "one holder is still live");
        b.gave_up(0, 1, "bad piece".into());
        assert_eq!(b.lookup(0, 0), Lookup::Failed("refused; bad piece".into()));
        assert!(b.take(0, 1, 5, 0).0.is_empty());
    }

    #[test]
    fn a_shard_without_holders_fails_at_once_and_advancing_drops_what_is_behind() {
        let mut b = Board::new(2, 10);
        assert!(!b.need(0, &[0], 0));
        assert!(matches!(b.lookup(0, 0), Lookup::Failed(_)));
        b.need(1, &[0, 1, 2], 1);
        for p in b.take(1, 0, 3, 0).0 {
            b.delivered(1, 0, p, piece(p), 0);
        }
        assert_eq!(b.held_bytes(), 12);
        b.advance(2);
        assert_eq!(b.held_bytes(), 4);
        assert!(!b.delivered(1, 0, 1, piece(1), 0), "behind the decoder");
        b.close();
        b.need(1, &[3], 1);
        assert!(
            b.take(1, 0, 5, 0).0.is_empty(),
            "a closed read hands out nothing"
        );
    }
}
