//! What one control connection last told its gateway the node holds, so that every report after
//! the first carries only what changed (RT-0002 `report` with `full = 0`). A node holding 10,000
//! shards then sends a few info-hashes per change, not 200 KB. Pure: the node passes in its
//! held set and sends what comes out.

use std::collections::BTreeSet;

use raidtorrent_proto::InfoHash;

/// The held part of the next report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldChange {
    /// `held` is the whole held set (the first report on a connection).
    pub full: bool,
    pub held: Vec<InfoHash>,
    pub gone: Vec<InfoHash>,
}

/// The held set as the gateway knows it from this connection's reports; none before the first.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    held: Option<BTreeSet<InfoHash>>,
}

impl Reported {
    /// The held part of a report of `now`, taken as sent: the whole set the first time, then the
    /// shards added and those gone since the last one.
    pub fn next(&mut self, now: BTreeSet<InfoHash>) -> HeldChange {
        let change = match &self.held {
            None => HeldChange {
                full: true,
                held: now.iter().copied().collect(),
                gone: Vec::new(),
            },
            Some(before) => HeldChange {
                full: false,
                held: now.difference(before).copied().collect(),
                gone: before.difference(&now).copied().collect(),
            },
        };
        self.held = Some(now);
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(bytes: &[u8]) -> BTreeSet<InfoHash> {
        bytes.iter().map(|b| InfoHash([*b; 20])).collect()
    }

    fn ihs(bytes: &[u8]) -> Vec<InfoHash> {
        bytes.iter().map(|b| InfoHash([*b; 20])).collect()
    }

    #[test]
    fn the_first_report_is_full_and_later_ones_carry_changes() {
        let mut r = Reported::default();
        let first = r.next(set(&[1, 2]));
        assert_eq!(
            (first.full, first.held, first.gone),
            (true, ihs(&[1, 2]), vec![])
        );
        let second = r.next(set(&[2, 3]));
        assert_eq!(
            (second.full, second.held, second.gone),
            (false, ihs(&[3]), ihs(&[1]))
        );
        let quiet = r.next(set(&[2, 3]));
        assert_eq!(
            (quiet.full, quiet.held, quiet.gone),
            (false, vec![], vec![])
        );
    }

    #[test]
    fn an_empty_first_set_is_still_a_full_report() {
        let mut r = Reported::default();
        assert!(r.next(BTreeSet::new()).full);
        assert!(!r.next(BTreeSet::new()).full);
    }

    proptest::proptest! {
        /// Applying every report in order, as a gateway does (RT-0002's one rule, in the spec
        /// crate), gives the last held set.
        #[test]
        fn the_gateway_rebuilds_each_held_set(sets in proptest::collection::vec(
            proptest::collection::btree_set(0u8..16, 0..8), 1..12)) {
            let mut r = Reported::default();
            let mut known = std::collections::HashSet::new();
            for s in sets {
                let now: BTreeSet<InfoHash> = s.iter().map(|b| InfoHash([*b; 20])).collect();
                let c = r.next(now.clone());
                let report = raidtorrent_proto::Report {
                    full: c.full,
                    held: c.held,
                    gone: c.gone,
                    ..Default::default()
                };
                report.apply(&mut known);
                proptest::prop_assert_eq!(known.iter().copied().collect::<BTreeSet<_>>(), now);
            }
        }
    }
}
