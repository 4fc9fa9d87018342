//! The upload's placement rounds, as a pure state machine: which copies each shard still needs,
//! which nodes are out, and when to give up.
//!
//! States: placing (round r of at most `rounds`: the caller plans the needs, sends the holds and
//! reports each answer) → done (every shard has its copies) or failed (rounds used up, or a round
//! that cannot be planned). A node that refuses or fails a hold is left out of every later round;
//! a confirmed copy is kept and counts towards its shard for good.

use crate::ids::NodeId;
use crate::placement::ShardNeed;

/// Placement rounds of one upload.
#[derive(Debug, Clone)]
pub(super) struct Rounds {
    copies: usize,
    holders: Vec<Vec<NodeId>>,
    excluded: Vec<NodeId>,
    failures: Vec<String>,
    rounds_left: usize,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    /// Place these needs (one per shard, in shard order) over nodes not in [`Rounds::excluded`].
    Place(Vec<ShardNeed>),
    /// Every shard has its copies.
    Done,
    /// Out of rounds: why the last copies failed.
    GiveUp(String),
}

impl Rounds {
    /// `shards` shards wanting `copies` copies each, in at most `rounds` rounds.
    pub(super) fn new(shards: usize, copies: usize, rounds: usize) -> Self {
        Rounds {
            copies,
            holders: vec![Vec::new(); shards],
            excluded: Vec::new(),
            failures: Vec::new(),
            rounds_left: rounds,
        }
    }

    /// The next step; each `Place` uses up a round.
    pub(super) fn next(&mut self) -> Next {
        if self.holders.iter().all(|h| h.len() >= self.copies) {
            return Next::Done;
        }
        if self.rounds_left == 0 {
            return Next::GiveUp(format!(
                "shards could not get {} confirmed copies: {}",
                self.copies,
                self.failures.join("; ")
            ));
        }
        self.rounds_left -= 1;
        Next::Place(
            self.holders
                .iter()
                .map(|h| ShardNeed {
                    holders: h.clone(),
                    want: self.copies.saturating_sub(h.len()),
                })
                .collect(),
        )
    }

    /// Nodes that failed a hold of this upload.
    pub(super) fn excluded(&self) -> &[NodeId] {
        &self.excluded
    }

    /// `node` confirmed a copy of shard `shard`.
    pub(super) fn confirmed(&mut self, shard: usize, node: NodeId) {
        if !self.holders[shard].contains(&node) {
            self.holders[shard].push(node);
        }
    }

    /// `node` refused or failed a hold: it is out for the rest of the upload.
    pub(super) fn failed(&mut self, node: NodeId, why: String) {
        if !self.excluded.contains(&node) {
            self.excluded.push(node);
        }
        self.failures.push(why);
    }

    /// The nodes holding each shard's copies.
    #[cfg(test)]
    fn holders(&self) -> &[Vec<NodeId>] {
        &self.holders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(next: &Next) -> Vec<usize> {
        match next {
            Next::Place(needs) => needs.iter().map(|n| n.want).collect(),
            other => panic!("expected a round, got {other:?}"),
        }
    }

    #[test]
    fn a_round_where_every_hold_is_confirmed_finishes() {
        let mut r = Rounds::new(2, 2, 3);
        assert_eq!(wants(&r.next()), vec![2, 2]);
        for (s, n) in [(0, 1), (0, 2), (1, 2), (1, 3)] {
            r.confirmed(s, n);
        }
        assert_eq!(r.next(), Next::Done);
        assert_eq!(r.holders(), &[vec![1, 2], vec![2, 3]]);
    }

    #[test]
    fn a_failed_node_is_left_out_and_only_missing_copies_are_asked_again() {
        let mut r = Rounds::new(2, 2, 3);
        r.next();
        r.confirmed(0, 1);
        r.confirmed(0, 2);
        r.confirmed(1, 2);
        r.failed(3, "node 3 refused".into());
        match r.next() {
            Next::Place(needs) => {
                assert_eq!(needs[0].want, 0);
                assert_eq!(needs[1].want, 1);
                assert_eq!(needs[1].holders, vec![2]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.excluded(), &[3]);
        r.confirmed(1, 4);
        assert_eq!(r.next(), Next::Done);
    }

    #[test]
    fn out_of_rounds_it_gives_up_and_says_why() {
        let mut r = Rounds::new(1, 1, 2);
        for node in [5, 6] {
            wants(&r.next());
            r.failed(node, format!("node {node} timed out"));
        }
        match r.next() {
            Next::GiveUp(why) => {
                assert!(why.contains("node 5 timed out") && why.contains("node 6 timed out"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.excluded(), &[5, 6]);
    }

    #[test]
    fn a_node_failing_twice_is_listed_once_and_a_repeated_confirmation_counts_once() {
        let mut r = Rounds::new(1, 2, 3);
        r.next();
        r.failed(7, "a".into());
        r.failed(7, "b".into());
        r.confirmed(0, 1);
        r.confirmed(0, 1);
        assert_eq!(r.excluded(), &[7]);
        assert_eq!(wants(&r.next()), vec![1]);
    }

    #[test]
    fn no_round_is_spent_when_nothing_is_needed() {
        let mut r = Rounds::new(3, 0, 0);
        assert_eq!(r.next(), Next::Done);
    }
}
