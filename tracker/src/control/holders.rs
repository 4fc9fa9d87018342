//! Which connected nodes hold each shard, from their latest reports: the tracker answers a shard's
//! swarm from this index (RT-0002 "Peers from reports"), so nodes need not announce the shards
//! they hold. Kept under the hub's node map lock, so it changes exactly when a node's held set
//! in the map does.

use super::{InfoHash, NodeId};
use raidtorrent_proto::HeldChange;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Holders by shard: each connected node whose latest report lists the shard, with the address it
/// accepts BitTorrent connections on.
#[derive(Debug, Default)]
pub(super) struct Holders {
    by_shard: HashMap<InfoHash, Vec<(NodeId, SocketAddr)>>,
}

impl Holders {
    /// `node`, reachable at `addr`, reported `change` to its held set. A node without a data
    /// address is no peer anyone can dial, so it is not indexed.
    pub(super) fn apply(&mut self, node: NodeId, addr: Option<SocketAddr>, change: &HeldChange) {
        let Some(addr) = addr else {
            return;
        };
        for ih in &change.removed {
            self.remove(node, ih);
        }
        for ih in &change.added {
            self.add(node, addr, ih);
        }
    }

    /// `node` left the map: none of the shards it reported are held by it any more.
    pub(super) fn forget(&mut self, node: NodeId, held: Option<&HashSet<InfoHash>>) {
        for ih in held.into_iter().flatten() {
            self.remove(node, ih);
        }
    }

    /// The data addresses of the nodes holding `ih`.
    pub(super) fn of(&self, ih: &InfoHash) -> Vec<SocketAddr> {
        self.by_shard
            .get(ih)
            .map(|v| v.iter().map(|(_, a)| *a).collect())
            .unwrap_or_default()
    }

    /// How many shards have at least one holder.
    #[cfg(test)]
    fn shards(&self) -> usize {
        self.by_shard.len()
    }

    fn add(&mut self, node: NodeId, addr: SocketAddr, ih: &InfoHash) {
        let holders = self.by_shard.entry(*ih).or_default();
        if !holders.iter().any(|(n, _)| *n == node) {
            holders.push((node, addr));
        }
    }

    fn remove(&mut self, node: NodeId, ih: &InfoHash) {
        if let Entry::Occupied(mut e) = self.by_shard.entry(*ih) {
            e.get_mut().retain(|(n, _)| *n != node);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ihs(bytes: &[u8]) -> Vec<InfoHash> {
        bytes.iter().map(|b| InfoHash([*b; 20])).collect()
    }

    fn change(added: &[u8], removed: &[u8]) -> HeldChange {
        HeldChange {
            added: ihs(added),
            removed: ihs(removed),
        }
    }

    fn set(bytes: &[u8]) -> HashSet<InfoHash> {
        ihs(bytes).into_iter().collect()
    }

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn reports_add_and_remove_holders() {
        let mut h = Holders::default();
        h.apply(7, addr(7000), &change(&[1, 2], &[]));
        h.apply(8, addr(8000), &change(&[2], &[]));
        assert_eq!(h.of(&InfoHash([1; 20])), vec![addr(7000).unwrap()]);
        assert_eq!(h.of(&InfoHash([2; 20])).len(), 2);
        h.apply(7, addr(7000), &change(&[3], &[1]));
        assert!(h.of(&InfoHash([1; 20])).is_empty());
        assert_eq!(h.of(&InfoHash([3; 20])), vec![addr(7000).unwrap()]);
        // A shard added again lists no holder twice.
        h.apply(7, addr(7000), &change(&[2], &[]));
        assert_eq!(h.of(&InfoHash([2; 20])).len(), 2);
        let second = set(&[2, 3]);
        h.forget(7, Some(&second));
        assert_eq!(h.of(&InfoHash([2; 20])), vec![addr(8000).unwrap()]);
        h.forget(8, Some(&set(&[2])));
        assert_eq!(h.shards(), 0, "no empty entries are kept");
    }

    #[test]
    fn a_node_without_a_data_address_is_not_a_holder() {
        let mut h = Holders::default();
        h.apply(7, None, &change(&[1], &[]));
        assert!(h.of(&InfoHash([1; 20])).is_empty());
        h.forget(7, None);
        assert_eq!(h.shards(), 0);
    }
}
