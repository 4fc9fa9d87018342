//! Reconciliation, as a pure decision: which copies that nodes report the gateway does not
//! track, so they are dropped. Invariant it keeps: no copy stays on a node unless the gateway
//! records it (a holding, of a live, pending or orphan shard) or is placing it right now.
//!
//! A copy `(info-hash, node)` that a node reports (held, or being fetched) is untracked when:
//! - the node has been connected for at least the settle period (a node that just connected
//!   may still be re-checking its files; its reports are judged once it settled);
//! - no holding of that info-hash on that node is recorded (the collector drops recorded copies
//!   of orphans; the health worker those of live shards);
//! - no hold of that info-hash to that node is in flight: a hold is in flight from before its
//!   directive is sent until its copy is recorded, so a node that reports a shard it is being
//!   asked to hold (acked or not, recorded or not yet) keeps it;
//! - the shard is not pending: an upload of any gateway sharing the database may be placing it
//!   (its holds are in flight on that gateway, which this one cannot see). A pending shard
//!   stays pending until its upload commits or fails, or its gateway is gone (`meta::gateways`);
//!   then its copies are judged as any other's.
//!
//! Races the caller must respect, in this order: read the reports first, then the holds in
//! flight, then the pending shards, then the recorded holdings (an upload records its copies
//! before its shards stop being pending). A report that shows a copy was sent after the node got
//! its directive, so that hold was in flight before the reports were read: it is either still
//! in flight when the holds are read, or it ended, recorded (and the holdings read after show
//! it) or failed (and then its copy must go anyway). The decisions are re-checked per copy just
//! before each drop is sent (`in_flight::Changing::begin_drop`), against holds started since.

use std::collections::HashSet;
use std::time::Duration;

use crate::ids::{InfoHash, NodeId};

/// What one connected node reports, as the reconciler judges it.
#[derive(Debug, Clone)]
pub(super) struct NodeReport<'a> {
    pub node: NodeId,
    /// How long the node has been connected on its current control connection.
    pub connected_for: Duration,
    /// Every info-hash the node says it holds or is fetching.
    pub reported: &'a [InfoHash],
}

/// What the gateway tracks: recorded holdings and holds in flight, each as (info-hash, node),
/// and the shards of uploads in flight anywhere.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tracked<'a> {
    pub recorded: &'a HashSet<(InfoHash, NodeId)>,
    pub in_flight: &'a HashSet<(InfoHash, NodeId)>,
    pub pending: &'a HashSet<InfoHash>,
}

impl Tracked<'_> {
    fn tracks(&self, copy: &(InfoHash, NodeId)) -> bool {
        self.recorded.contains(copy)
            || self.in_flight.contains(copy)
            || self.pending.contains(&copy.0)
    }
}

/// The copies to drop: reported by a node connected for at least `settle` and not tracked.
/// Each appears once, in the order reported.
pub(super) fn untracked(
    reports: &[NodeReport<'_>],
    tracked: Tracked<'_>,
    settle: Duration,
) -> Vec<(InfoHash, NodeId)> {
    let mut seen = HashSet::new();
    reports
        .iter()
        .filter(|r| r.connected_for >= settle)
        .flat_map(|r| r.reported.iter().map(move |ih| (*ih, r.node)))
        .filter(|copy| !tracked.tracks(copy) && seen.insert(*copy))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(60);

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn settled(node: NodeId, reported: &[InfoHash]) -> NodeReport<'_> {
        NodeReport {
            node,
            connected_for: SETTLE,
            reported,
        }
    }

    fn set(copies: &[(u8, NodeId)]) -> HashSet<(InfoHash, NodeId)> {
        copies.iter().map(|&(n, node)| (ih(n), node)).collect()
    }

    #[test]
    fn only_untracked_copies_of_settled_nodes_are_dropped() {
        let a = [ih(1), ih(2), ih(3)];
        let b = [ih(1), ih(4)];
        let fresh = [ih(5)];
        let reports = [
            settled(1, &a),
            settled(2, &b),
            NodeReport {
                node: 3,
                connected_for: SETTLE - Duration::from_millis(1),
                reported: &fresh,
            },
        ];
        let recorded = set(&[(1, 1), (4, 2)]);
        let in_flight = set(&[(2, 1)]);
        let tracked = Tracked {
            recorded: &recorded,
            in_flight: &in_flight,
            pending: &HashSet::new(),
        };
        assert_eq!(
            untracked(&reports, tracked, SETTLE),
            vec![(ih(3), 1), (ih(1), 2)],
            "ih 1 is recorded on node 1 only: node 2's copy is not tracked"
        );
    }

    #[test]
    fn a_shard_recorded_before_its_directive_is_kept_while_its_hold_is_in_flight() {
        // The upload recorded the shard (pending) and sent the hold; the node fetched it and
        // reports it before the gateway recorded the copy.
        let reported = [ih(7)];
        let reports = [settled(1, &reported)];
        let recorded = HashSet::new();
        let in_flight = set(&[(7, 1)]);
        let tracked = Tracked {
            recorded: &recorded,
            in_flight: &in_flight,
            pending: &HashSet::new(),
        };
        assert!(untracked(&reports, tracked, SETTLE).is_empty());
        // The same copy, once its hold failed and nothing recorded it, goes.
        let none = HashSet::new();
        let tracked = Tracked {
            recorded: &recorded,
            in_flight: &none,
            pending: &HashSet::new(),
        };
        assert_eq!(untracked(&reports, tracked, SETTLE), vec![(ih(7), 1)]);
    }

    #[test]
    fn copies_of_a_pending_shard_are_kept_whoever_places_it() {
        // Another gateway's upload: its holds are in flight there, its shard pending here.
        let reported = [ih(7), ih(8)];
        let reports = [settled(1, &reported), settled(2, &reported)];
        let pending = [ih(7)].into_iter().collect();
        let tracked = Tracked {
            recorded: &HashSet::new(),
            in_flight: &HashSet::new(),
            pending: &pending,
        };
        assert_eq!(
            untracked(&reports, tracked, SETTLE),
            vec![(ih(8), 1), (ih(8), 2)]
        );
    }

    #[test]
    fn a_hold_in_flight_to_one_node_does_not_cover_another() {
        let reported = [ih(7)];
        let reports = [settled(1, &reported), settled(2, &reported)];
        let recorded = set(&[(7, 3)]);
        let in_flight = set(&[(7, 1)]);
        let tracked = Tracked {
            recorded: &recorded,
            in_flight: &in_flight,
            pending: &HashSet::new(),
        };
        assert_eq!(untracked(&reports, tracked, SETTLE), vec![(ih(7), 2)]);
    }

    #[test]
    fn recorded_copies_of_orphans_are_left_to_the_collector() {
        // Recorded holdings include those of orphan shards: the collector drops them and then
        // forgets them, so reconciliation never sends a second drop for them.
        let reported = [ih(9)];
        let reports = [settled(4, &reported)];
        let recorded = set(&[(9, 4)]);
        let tracked = Tracked {
            recorded: &recorded,
            in_flight: &HashSet::new(),
            pending: &HashSet::new(),
        };
        assert!(untracked(&reports, tracked, SETTLE).is_empty());
    }

    #[test]
    fn a_copy_reported_twice_is_dropped_once_and_no_settle_judges_at_once() {
        let reported = [ih(1), ih(1)];
        let reports = [NodeReport {
            node: 1,
            connected_for: Duration::ZERO,
            reported: &reported,
        }];
        let none = HashSet::new();
        let tracked = Tracked {
            recorded: &none,
            in_flight: &none,
            pending: &HashSet::new(),
        };
        assert!(untracked(&reports, tracked, SETTLE).is_empty());
        assert_eq!(
            untracked(&reports, tracked, Duration::ZERO),
            vec![(ih(1), 1)]
        );
    }
}
