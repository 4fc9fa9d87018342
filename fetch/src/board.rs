//! One piece read's shared state as a pure state machine: which pieces of which shard the read
//! still needs, which connection fetches each, and the verified pieces waiting for the decoder.
//!
//! - A shard is *idle* until the read first needs it; then one connection per holder starts
//!   ([`Board::need`] numbers them). It *fails* when every connection has given up, or when the
//!   decoder passes it over (below); the decoder then rebuilds from other shards.
//! - Each connection's holder is *trying* (dialled, not yet serving), *up* (it unchoked us) or
//!   *down* (its last session failed; the connection dials again). A connection takes pieces only
//!   while up, so a dead or silent holder never sits on pieces another holder could serve.
//! - A shard is *unreachable* when every holder is down, has been trying for [`ANSWER_MS`], or
//!   is *silent*: up, with pieces in flight, and no piece from it for [`SILENT_FACTOR`] times the
//!   shard's usual piece time (at least [`ANSWER_MS`]). A holder frozen in mid-read (its socket
//!   open, nothing sent) is so passed over within a few piece times, not after its connection's
//!   10 s stall. Silence counts only once the shard has delivered a piece: on a link slower than
//!   anyone guessed, the first piece's time is unknown, and every shard would look silent.
//!   The decoder asking for a piece of an unreachable shard is told it failed at once when at
//!   least `k` other shards may still serve (idle ones with holders, or active and reachable):
//!   a parity shard stands in rather than the read waiting out its patience on a dead holder.
//!   With fewer, it waits: the holders may come back (a node restarting).
//! - Connections take pending pieces, lowest first, up to the room they have ([`Board::take`]).
//!   A connection with nothing in flight and nothing pending takes a copy of the lowest piece
//!   another connection of the shard has been fetching for longer than [`HEDGE_FACTOR`] times
//!   the usual piece time (a hedge): a slow holder is overtaken by a faster one, and the first
//!   copy delivered wins. Times are milliseconds on the caller's clock.
//! - Only pieces below `limit` are handed out; the decoder moving on ([`Board::advance`]) drops
//!   every piece below its position and raises the limit, so a read holds at most `window`
//!   pieces per shard however fast the nodes are.
//! - A connection whose session ends puts the pieces only it was fetching back to pending.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use bytes::Bytes;

/// A connection's number within one read.
pub(crate) type ConnId = usize;

/// A piece in flight this many times longer than the shard's usual piece time may be hedged.
pub(crate) const HEDGE_FACTOR: u64 = 3;
/// Nor before this many milliseconds, whatever the usual time.
pub(crate) const HEDGE_MIN_MS: u64 = 100;
/// An up holder with pieces in flight that delivers none for this many times the shard's usual
/// piece time (and at least [`ANSWER_MS`]) is silent.
pub(crate) const SILENT_FACTOR: u64 = 4;
/// A holder that has not unchoked us this many milliseconds after its dial started is passed
/// over when other shards can stand in (its connection keeps trying). A holder across the world
/// answers a dial, a handshake and `interested` in three round trips, well within it.
pub(crate) const ANSWER_MS: u64 = 1_500;

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
    /// Shards the decoder needs for a segment.
    k: usize,
    /// Pieces below `floor` are behind the decoder: dropped, never fetched.
    floor: u32,
    /// Pieces handed out per shard ahead of the decoder.
    window: u32,
    next_conn: ConnId,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shard {
    state: State,
    /// Holders that may serve the shard: one connection each once it starts.
    holders: usize,
    pending: BTreeSet<u32>,
    /// Pieces in flight, with the connections fetching them.
    assigned: BTreeMap<u32, Flight>,
    /// Smoothed milliseconds from handing a piece out to its delivery.
    piece_ms: Option<u64>,
    done: BTreeMap<u32, Bytes>,
    /// Connections that have not given up, and how their holders fare.
    conns: BTreeMap<ConnId, Health>,
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

/// How one connection's holder fares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    /// Dialled at `since`, not yet serving.
    Trying { since: u64 },
    /// Unchoked us: it takes pieces. `heard`: when it came up, last delivered a piece, or took
    /// pieces with none in flight.
    Up { heard: u64 },
    /// Its last session failed (why); it is being dialled again.
    Down(String),
}

/// What the decoder finds when it asks for a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Ready(Bytes),
    /// Not in yet; ask again at the time given, if any (a holder's time to answer runs out).
    Wait(Option<u64>),
    /// Every holder gave up, or none answers and other shards can stand in: why.
    Failed(String),
}

impl Shard {
    /// Every holder is down, silent, or has been trying for [`ANSWER_MS`] by `now`.
    fn unreachable(&self, now: u64) -> bool {
        self.conns
            .iter()
            .all(|(&c, h)| self.deadline(c, h).is_some_and(|t| now >= t))
    }

    /// When connection `c`'s holder (faring as `h`) counts as unreachable if nothing changes:
    /// at once when down; never when up and not expected to deliver.
    fn deadline(&self, c: ConnId, h: &Health) -> Option<u64> {
        match h {
            Health::Trying { since } => Some(since + ANSWER_MS),
            Health::Up { heard } => {
                let silent_after = (self.piece_ms? * SILENT_FACTOR).max(ANSWER_MS);
                let waiting = self.assigned.values().any(|f| f.conns.contains(&c));
                waiting.then_some(heard + silent_after)
            }
            Health::Down(_) => Some(0),
        }
    }

    /// The shard may still serve the decoder.
    fn viable(&self, now: u64) -> bool {
        match self.state {
            State::Idle => self.holders > 0,
            State::Active => !self.unreachable(now),
            State::Failed => false,
        }
    }

    /// When a holder reachable at `now` next runs out of time to answer or deliver.
    fn recheck(&self, now: u64) -> Option<u64> {
        self.conns
            .iter()
            .filter_map(|(&c, h)| self.deadline(c, h))
            .filter(|&t| t > now)
            .min()
    }

    fn fail(&mut self, why: String) {
        self.state = State::Failed;
        self.failures.push(why);
        self.pending.clear();
        self.assigned.clear();
    }
}

impl Board {
    /// A read of an object whose shard `i` has `holders[i]` holders that may serve (0 when the
    /// read cannot use it), decoded from any `k` shards, fetching at most `window` pieces ahead.
    pub(crate) fn new(holders: &[usize], k: usize, window: u32) -> Self {
        Board {
            shards: holders
                .iter()
                .map(|&holders| Shard {
                    holders,
                    ..Shard::default()
                })
                .collect(),
            k,
            floor: 0,
            window: window.max(1),
            next_conn: 0,
            closed: false,
        }
    }

    /// The read needs `pieces` of shard `s` at time `now`. When the shard was idle, the numbers
    /// of its connections, one per holder: the caller starts them now.
    pub(crate) fn need(&mut self, s: usize, pieces: &[u32], now: u64) -> Option<Range<ConnId>> {
        let sh = self.shards.get_mut(s)?;
        for &p in pieces.iter().filter(|&&p| p >= self.floor) {
            if !sh.done.contains_key(&p) && !sh.assigned.contains_key(&p) {
                sh.pending.insert(p);
            }
        }
        if sh.state != State::Idle {
            return None;
        }
        if sh.holders == 0 {
            sh.fail("no holder may serve it".into());
            return None;
        }
        sh.state = State::Active;
        let ids = self.next_conn..self.next_conn + sh.holders;
        self.next_conn = ids.end;
        sh.conns = ids
            .clone()
            .map(|c| (c, Health::Trying { since: now }))
            .collect();
        Some(ids)
    }

    /// Connection `conn`'s holder of shard `s` unchoked us at `now`: it may take pieces.
    pub(crate) fn up(&mut self, s: usize, conn: ConnId, now: u64) {
        if let Some(h) = self.shards[s].conns.get_mut(&conn) {
            *h = Health::Up { heard: now };
        }
    }

    /// Connection `conn`'s session with its holder of shard `s` failed (`why`); it dials again.
    /// The pieces only it was fetching are pending again.
    pub(crate) fn down(&mut self, s: usize, conn: ConnId, why: String) {
        self.lost(s, conn);
        if let Some(h) = self.shards[s].conns.get_mut(&conn) {
            *h = Health::Down(why);
        }
    }

    /// Up to `room` pieces of shard `s` for connection `conn` (whose holder must be up) to
    /// fetch at time `now`, lowest first; or, when it has nothing in flight and nothing is
    /// pending, one hedge. Also when to ask again for a hedge that is not due yet.
    pub(crate) fn take(
        &mut self,
        s: usize,
        conn: ConnId,
        room: usize,
        now: u64,
    ) -> (Vec<u32>, Option<u64>) {
        let (floor, limit) = (self.floor, self.floor.saturating_add(self.window));
        let sh = &mut self.shards[s];
        let up = matches!(sh.conns.get(&conn), Some(Health::Up { .. }));
        if self.closed || sh.state != State::Active || !up || room == 0 {
            return (Vec::new(), None);
        }
        let mut out: Vec<u32> = sh.pending.range(..limit).take(room).copied().collect();
        let mut later = None;
        let idle = !sh.assigned.values().any(|f| f.conns.contains(&conn));
        if out.is_empty() && idle {
            let after = sh
                .piece_ms
                .map_or(HEDGE_MIN_MS, |ms| (ms * HEDGE_FACTOR).max(HEDGE_MIN_MS));
            // The lowest piece one connection alone fetches, and nobody has delivered yet.
            let late = sh
                .assigned
                .range(floor..limit)
                .find(|(p, f)| f.conns.len() == 1 && !sh.done.contains_key(p));
            if let Some((&p, f)) = late {
                if now >= f.since + after {
                    out.push(p);
                } else {
                    later = Some(f.since + after);
                }
            }
        }
        if idle && !out.is_empty() {
            // Its silence counts from now: it owed nothing while it had nothing to send.
            if let Some(Health::Up { heard }) = sh.conns.get_mut(&conn) {
                *heard = now;
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
        if let Some(Health::Up { heard }) = sh.conns.get_mut(&conn) {
            *heard = now;
        }
        let first = p >= self.floor && sh.state != State::Failed && !sh.done.contains_key(&p);
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

    /// Connection `conn` of shard `s` closed: the pieces only it was fetching are pending again
    /// (unless another copy is in, or the decoder has gone past them).
    pub(crate) fn lost(&mut self, s: usize, conn: ConnId) {
        let floor = self.floor;
        let sh = &mut self.shards[s];
        let mut orphaned = Vec::new();
        sh.assigned.retain(|p, f| {
            f.conns.retain(|&x| x != conn);
            if f.conns.is_empty() {
                orphaned.push(*p);
            }
            !f.conns.is_empty()
        });
        if sh.state == State::Active {
            let wanted = orphaned.into_iter().filter(|p| *p >= floor);
            sh.pending
                .extend(wanted.filter(|p| !sh.done.contains_key(p)));
        }
    }

    /// Connection `conn` of shard `s` gave up for good (`why`); the shard fails with its last
    /// connection.
    pub(crate) fn gave_up(&mut self, s: usize, conn: ConnId, why: String) {
        self.lost(s, conn);
        let sh = &mut self.shards[s];
        sh.conns.remove(&conn);
        if sh.conns.is_empty() && sh.state == State::Active {
            sh.fail(why);
        } else {
            sh.failures.push(why);
        }
    }

    /// Piece `p` of shard `s`, for the decoder at time `now`. A shard no holder of which answers
    /// fails here when `k` other shards may stand in: its connections then stop.
    pub(crate) fn lookup(&mut self, s: usize, p: u32, now: u64) -> Lookup {
        if let Some(d) = self.shards[s].done.get(&p) {
            return Lookup::Ready(d.clone());
        }
        let sh = &self.shards[s];
        match sh.state {
            State::Failed => Lookup::Failed(sh.failures.join("; ")),
            State::Active if sh.unreachable(now) && self.others_viable(s, now) >= self.k => {
                let why = self.unanswered(s, now);
                self.shards[s].fail(why.clone());
                Lookup::Failed(why)
            }
            _ => Lookup::Wait(sh.recheck(now)),
        }
    }

    /// Shards other than `s` that may still serve the decoder at `now`.
    fn others_viable(&self, s: usize, now: u64) -> usize {
        let viable = self.shards.iter().enumerate();
        viable.filter(|&(i, sh)| i != s && sh.viable(now)).count()
    }

    /// Why shard `s` is unreachable at `now`, holder by holder.
    fn unanswered(&self, s: usize, now: u64) -> String {
        let sh = &self.shards[s];
        let mut why: Vec<String> = sh.failures.clone();
        why.extend(sh.conns.values().map(|h| match h {
            Health::Down(w) => w.clone(),
            Health::Up { heard } => format!("a holder sent no piece for {} ms", now - heard),
            Health::Trying { .. } => format!("a holder did not answer within {ANSWER_MS} ms"),
        }));
        format!(
            "shard {s}: no holder answers, other shards stand in ({})",
            why.join("; ")
        )
    }

    /// The read is over, or shard `s` failed: its connections stop.
    pub(crate) fn is_over(&self, s: usize) -> bool {
        self.closed || self.shards[s].state == State::Failed
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

    /// A board of shards with `holders` holders each, every shard's holders up once started.
    fn started(holders: &[usize], k: usize, window: u32, needs: &[(usize, &[u32])]) -> Board {
        let mut b = Board::new(holders, k, window);
        for &(s, pieces) in needs {
            for c in b.need(s, pieces, 0).into_iter().flatten() {
                b.up(s, c, 0);
            }
        }
        b
    }

    #[test]
    fn an_idle_shard_starts_once_and_pieces_go_lowest_first_within_the_window() {
        let mut b = Board::new(&[0, 2, 1], 2, 4);
        assert_eq!(b.need(1, &[5, 0, 1, 2, 3, 4], 0), Some(0..2));
        assert_eq!(b.need(1, &[6], 0), None, "already started");
        assert_eq!(b.take(1, 0, 2, 0).0, vec![], "not up yet");
        b.up(1, 0, 0);
        b.up(1, 1, 0);
        assert_eq!(b.take(1, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(b.take(1, 1, 9, 0).0, vec![2, 3], "the window stops at 4");
        b.advance(2);
        assert_eq!(b.take(1, 1, 9, 0).0, vec![4, 5]);
        assert_eq!(b.need(2, &[0], 0), Some(2..3), "numbers go on");
    }

    #[test]
    fn an_idle_connection_hedges_a_late_piece_and_the_first_copy_wins() {
        let mut b = started(&[2], 1, 10, &[(0, &[0, 1])]);
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
        assert_eq!(b.lookup(0, 0, 360), Lookup::Ready(piece(0)));
        // Both holders have piece 1 in flight: ask again when the first could count as silent
        // (holder 0 last delivered at 130; the hedging holder 1 took its copy at 360).
        assert_eq!(b.lookup(0, 1, 360), Lookup::Wait(Some(130 + ANSWER_MS)));
    }

    #[test]
    fn a_piece_already_in_is_neither_hedged_again_nor_put_back() {
        let mut b = started(&[2], 1, 10, &[(0, &[0, 1])]);
        assert_eq!(b.take(0, 0, 1, 0).0, vec![0], "holder 0 will be slow");
        assert_eq!(b.take(0, 1, 1, 0).0, vec![1]);
        assert!(b.delivered(0, 1, 1, piece(1), 10));
        assert_eq!(b.take(0, 1, 1, 1_000).0, vec![0], "a hedge");
        assert!(b.delivered(0, 1, 0, piece(0), 1_010), "the hedge wins");
        assert_eq!(b.take(0, 1, 1, 5_000), (vec![], None), "nothing to hedge");
        b.lost(0, 0);
        assert_eq!(
            b.take(0, 1, 1, 5_000),
            (vec![], None),
            "the slow holder's session ended: its piece is in already"
        );
    }

    #[test]
    fn a_lost_connection_gives_its_pieces_back_and_the_last_one_fails_the_shard() {
        let mut b = started(&[2], 1, 10, &[(0, &[0, 1, 2])]);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(b.take(0, 1, 1, 0).0, vec![2]);
        b.lost(0, 0);
        assert_eq!(b.take(0, 1, 5, 0).0, vec![0, 1]);
        b.gave_up(0, 0, "refused".into());
        assert_eq!(
            b.lookup(0, 0, 0),
            Lookup::Wait(None),
            "one holder is still live"
        );
        b.gave_up(0, 1, "bad piece".into());
        assert_eq!(
            b.lookup(0, 0, 0),
            Lookup::Failed("refused; bad piece".into())
        );
        assert!(b.take(0, 1, 5, 0).0.is_empty());
        assert!(b.is_over(0));
    }

    #[test]
    fn a_shard_without_holders_fails_at_once_and_advancing_drops_what_is_behind() {
        let mut b = started(&[0, 1], 1, 10, &[(1, &[0, 1, 2])]);
        assert_eq!(b.need(0, &[0], 0), None);
        assert!(matches!(b.lookup(0, 0, 0), Lookup::Failed(_)));
        for p in b.take(1, 0, 3, 0).0 {
            b.delivered(1, 0, p, piece(p), 0);
        }
        assert_eq!(b.held_bytes(), 12);
        b.advance(2);
        assert_eq!(b.held_bytes(), 4);
        assert!(!b.delivered(1, 0, 1, piece(1), 0), "behind the decoder");
        b.close();
        b.need(1, &[3], 0);
        assert!(
            b.take(1, 0, 5, 0).0.is_empty(),
            "a closed read hands out nothing"
        );
        assert!(b.is_over(1));
    }

    #[test]
    fn a_down_holder_gives_its_pieces_to_another_holder_of_the_shard() {
        let mut b = started(&[2], 1, 10, &[(0, &[0, 1, 2, 3])]);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(b.take(0, 1, 2, 0).0, vec![2, 3]);
        b.down(0, 0, "connection reset".into());
        assert_eq!(b.take(0, 0, 2, 0).0, vec![], "a down holder takes nothing");
        assert_eq!(b.take(0, 1, 4, 0).0, vec![0, 1]);
        assert_eq!(b.lookup(0, 0, 0), Lookup::Wait(None), "one holder is up");
    }

    #[test]
    fn an_unreachable_shard_fails_at_once_when_k_others_may_stand_in() {
        // k = 2 of three shards; the read started with shards 0 and 1.
        let mut b = Board::new(&[1, 1, 1], 2, 10);
        assert_eq!(b.need(0, &[0], 0), Some(0..1));
        assert_eq!(b.need(1, &[0], 0), Some(1..2));
        b.up(1, 1, 0);
        assert_eq!(b.lookup(0, 0, 10), Lookup::Wait(Some(ANSWER_MS)));
        b.down(0, 0, "connection refused".into());
        let Lookup::Failed(why) = b.lookup(0, 0, 20) else {
            panic!("shard 1 and the idle shard 2 stand in");
        };
        assert!(why.contains("connection refused"), "{why}");
        assert!(b.is_over(0), "its connections stop");
        assert!(!b.delivered(0, 0, 0, piece(0), 30), "nobody reads it now");

        // Shard 2 starts in its place and its holder is silent: with shard 0 gone, only one
        // other shard may serve, so the read waits for it (it may come back).
        assert_eq!(b.need(2, &[0], 100), Some(2..3));
        assert_eq!(b.lookup(2, 0, 100 + ANSWER_MS), Lookup::Wait(None));
        b.up(2, 2, 0);
        assert_eq!(b.take(2, 2, 1, 200).0, vec![0]);
    }

    #[test]
    fn a_holder_silent_in_mid_read_is_passed_over_within_a_few_piece_times() {
        // k = 2 of three shards; shards 0 and 1 are read, one holder each.
        let mut b = started(&[1, 1, 1], 2, 10, &[(0, &[0, 1, 2]), (1, &[0, 1, 2])]);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert_eq!(
            b.lookup(0, 0, 1_900),
            Lookup::Wait(None),
            "before a first piece, its time is unknown: no silence is counted"
        );
        assert!(b.delivered(0, 0, 0, piece(0), 2_000));
        // The usual piece time is now 2 s: the holder is silent after four times that.
        assert_eq!(b.lookup(0, 1, 2_100), Lookup::Wait(Some(2_000 + 8_000)));
        // A fast shard: 100 ms a piece, so silent after ANSWER_MS (the floor).
        assert_eq!(b.take(1, 1, 1, 0).0, vec![0]);
        assert!(b.delivered(1, 1, 0, piece(0), 100));
        assert_eq!(b.take(1, 1, 2, 100).0, vec![1, 2]);
        assert_eq!(b.lookup(1, 1, 500), Lookup::Wait(Some(100 + ANSWER_MS)));
        assert!(
            b.delivered(1, 1, 1, piece(1), 600),
            "a piece restarts the count"
        );
        assert_eq!(b.lookup(1, 2, 700), Lookup::Wait(Some(600 + ANSWER_MS)));
        let Lookup::Failed(why) = b.lookup(1, 2, 600 + ANSWER_MS) else {
            panic!("shard 0 and the idle shard 2 stand in");
        };
        assert!(why.contains("no piece for 1500 ms"), "{why}");
        assert!(b.is_over(1));
        // A read that paused (the decoder waited on its client) leaves holders idle for long:
        // their silence counts from when they take pieces again.
        let mut b = started(&[1, 1, 1], 2, 10, &[(0, &[0, 1])]);
        assert_eq!(b.take(0, 0, 1, 0).0, vec![0]);
        assert!(b.delivered(0, 0, 0, piece(0), 10));
        assert_eq!(b.take(0, 0, 1, 10 * ANSWER_MS).0, vec![1]);
        assert_eq!(
            b.lookup(0, 1, 10 * ANSWER_MS + 1),
            Lookup::Wait(Some(11 * ANSWER_MS))
        );
        // So does a hedge's: an idle connection takes a copy of a late piece.
        let mut b = started(&[2, 1], 1, 10, &[(0, &[0, 1])]);
        assert_eq!(b.take(0, 0, 2, 0).0, vec![0, 1]);
        assert!(b.delivered(0, 0, 0, piece(0), 10));
        assert_eq!(b.take(0, 1, 1, 10 * ANSWER_MS).0, vec![1], "a hedge");
        assert_eq!(
            b.lookup(0, 1, 10 * ANSWER_MS),
            Lookup::Wait(Some(10 * ANSWER_MS + ANSWER_MS)),
            "the hedging holder is not silent; the first one is, but is not alone"
        );
        // A holder with nothing in flight is never silent.
        let mut b = started(&[1, 1], 1, 10, &[(0, &[0])]);
        assert_eq!(b.take(0, 0, 1, 0).0, vec![0]);
        assert!(b.delivered(0, 0, 0, piece(0), 10));
        b.need(0, &[1], 10);
        assert_eq!(b.lookup(0, 1, 100 * ANSWER_MS), Lookup::Wait(None));
    }

    #[test]
    fn a_holder_that_does_not_answer_in_time_is_passed_over() {
        let mut b = Board::new(&[2, 1, 1], 2, 10);
        b.need(0, &[0], 0);
        b.need(1, &[0], 0);
        b.up(1, 2, 0);
        b.down(0, 0, "connection refused".into());
        assert_eq!(
            b.lookup(0, 0, ANSWER_MS - 1),
            Lookup::Wait(Some(ANSWER_MS)),
            "the other holder may still answer"
        );
        assert!(matches!(b.lookup(0, 0, ANSWER_MS), Lookup::Failed(_)));
        // A shard whose holder came back up after a failure is reachable again.
        let mut b = Board::new(&[1, 1, 1], 2, 10);
        b.need(0, &[0], 0);
        b.down(0, 0, "reset".into());
        b.up(0, 0, 0);
        assert_eq!(b.lookup(0, 0, 10 * ANSWER_MS), Lookup::Wait(None));
    }
}
