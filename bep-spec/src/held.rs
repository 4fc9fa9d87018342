//! How the receiver of `report`s keeps a node's held set (RT-0002 "report"): the first report on
//! a connection is full, later ones may be deltas, and each is applied in order. One function, so
//! every gateway (and every test standing in for one) applies them the same way.

use std::collections::HashSet;

use raidtorrent_codec::InfoHash;

use crate::message::Report;

/// What applying one report really changed in a held set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeldChange {
    pub added: Vec<InfoHash>,
    pub removed: Vec<InfoHash>,
}

impl Report {
    /// Applies this report to `held`: a full report replaces it; a delta removes `gone`, then
    /// adds `held` (a shard in both is held; adding a held shard or removing an unheld one
    /// changes nothing). A delta costs its own size, not the held set's.
    pub fn apply(&self, held: &mut HashSet<InfoHash>) -> HeldChange {
        if self.full {
            let now: HashSet<InfoHash> = self.held.iter().copied().collect();
            let change = HeldChange {
                added: now.difference(held).copied().collect(),
                removed: held.difference(&now).copied().collect(),
            };
            *held = now;
            return change;
        }
        let back: HashSet<&InfoHash> = self.held.iter().collect();
        let mut change = HeldChange::default();
        for ih in self.gone.iter().filter(|ih| !back.contains(ih)) {
            if held.remove(ih) {
                change.removed.push(*ih);
            }
        }
        for ih in &self.held {
            if held.insert(*ih) {
                change.added.push(*ih);
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    fn report(full: bool, held: &[u8], gone: &[u8]) -> Report {
        Report {
            full,
            held: held.iter().copied().map(ih).collect(),
            gone: gone.iter().copied().map(ih).collect(),
            ..Report::default()
        }
    }

    fn sorted(mut v: Vec<InfoHash>) -> Vec<InfoHash> {
        v.sort();
        v
    }

    fn held(set: &HashSet<InfoHash>) -> Vec<InfoHash> {
        sorted(set.iter().copied().collect())
    }

    #[test]
    fn reports_build_up_the_held_set() {
        let mut set = HashSet::new();
        let c = report(true, &[1, 2, 2, 3], &[]).apply(&mut set);
        assert_eq!(held(&set), vec![ih(1), ih(2), ih(3)], "duplicates dropped");
        assert_eq!(
            (sorted(c.added), c.removed),
            (vec![ih(1), ih(2), ih(3)], vec![])
        );
        let c = report(false, &[4, 1], &[2, 9]).apply(&mut set);
        assert_eq!(held(&set), vec![ih(1), ih(3), ih(4)]);
        assert_eq!(
            (c.added, c.removed),
            (vec![ih(4)], vec![ih(2)]),
            "only real changes"
        );
        // A shard gone and back in the same delta is held, and nothing changed.
        let c = report(false, &[3], &[3]).apply(&mut set);
        assert_eq!(held(&set), vec![ih(1), ih(3), ih(4)]);
        assert_eq!(c, HeldChange::default());
        // A full report replaces everything.
        let c = report(true, &[4, 5], &[]).apply(&mut set);
        assert_eq!(held(&set), vec![ih(4), ih(5)]);
        assert_eq!(
            (c.added, sorted(c.removed)),
            (vec![ih(5)], vec![ih(1), ih(3)])
        );
    }
}
