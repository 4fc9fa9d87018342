//! The node's directive state machine (see `STATE.md`): which shards it holds or fetches, for which
//! gateways, how much quota they use, and who waits for an answer. Pure and synchronous; the node
//! carries out what its decisions say.

use std::collections::{BTreeMap, BTreeSet};

use raidtorrent_proto::{InfoHash, RefuseCode};

use crate::size::ByteSize;

/// Who waits for the answer to a directive: the connection it came on and its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub gateway: String,
    pub conn: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardState {
    Fetching { waiters: Vec<Waiter> },
    Held,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub name: String,
    pub length: u64,
    pub owners: BTreeSet<String>,
    pub state: ShardState,
}

/// What to do with a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldDecision {
    /// Already held: answer now.
    Ack,
    /// Already being fetched: the answer comes with the others'.
    Wait,
    /// New: start fetching; the answer comes when it completes.
    Start,
    Refuse {
        code: RefuseCode,
        text: String,
    },
}

/// What to do with a drop (always acked afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropDecision {
    /// The last owner is gone: stop the torrent and delete its files.
    pub remove: bool,
    /// Holds of this shard that will now never complete: refuse them as superseded.
    pub superseded: Vec<Waiter>,
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    capacity: u64,
    shards: BTreeMap<InfoHash, Shard>,
}

impl Ledger {
    pub fn new(capacity: u64) -> Self {
        Ledger {
            capacity,
            shards: BTreeMap::new(),
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes of Fetching and Held shards.
    pub fn used(&self) -> u64 {
        self.shards.values().map(|s| s.length).sum()
    }

    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used())
    }

    pub fn get(&self, ih: &InfoHash) -> Option<&Shard> {
        self.shards.get(ih)
    }

    pub fn shards(&self) -> impl Iterator<Item = (&InfoHash, &Shard)> {
        self.shards.iter()
    }

    /// Shards held (complete) for `gateway`, as its report lists them.
    pub fn held_for(&self, gateway: &str) -> Vec<InfoHash> {
        self.shards
            .iter()
            .filter(|(_, s)| s.state == ShardState::Held && s.owners.contains(gateway))
            .map(|(ih, _)| *ih)
            .collect()
    }

    /// A shard found on disk at start-up; `verified` says whether every piece checked out.
    pub fn restore(
        &mut self,
        ih: InfoHash,
        name: String,
        length: u64,
        owners: BTreeSet<String>,
        verified: bool,
    ) {
        let state = if verified {
            ShardState::Held
        } else {
            ShardState::Fetching {
                waiters: Vec::new(),
            }
        };
        self.shards.insert(
            ih,
            Shard {
                name,
                length,
                owners,
                state,
            },
        );
    }

    pub fn hold(&mut self, waiter: Waiter, ih: InfoHash, name: &str, length: u64) -> HoldDecision {
        if let Some(shard) = self.shards.get_mut(&ih) {
            shard.owners.insert(waiter.gateway.clone());
            return match &mut shard.state {
                ShardState::Held => HoldDecision::Ack,
                ShardState::Fetching { waiters } => {
                    waiters.push(waiter);
                    HoldDecision::Wait
                }
            };
        }
        let free = self.free();
        if length > free {
            return HoldDecision::Refuse {
                code: RefuseCode::Quota,
                text: format!(
                    "the shard needs {}, {} of the {} quota is free",
                    ByteSize(length).human(),
                    ByteSize(free).human(),
                    ByteSize(self.capacity).human()
                ),
            };
        }
        let owners = BTreeSet::from([waiter.gateway.clone()]);
        self.shards.insert(
            ih,
            Shard {
                name: name.to_owned(),
                length,
                owners,
                state: ShardState::Fetching {
                    waiters: vec![waiter],
                },
            },
        );
        HoldDecision::Start
    }

    /// The shard is complete and verified: it is Held; these waiters get their ack.
    /// Returns `None` when the shard is no longer wanted (dropped meanwhile).
    pub fn fetched(&mut self, ih: &InfoHash) -> Option<Vec<Waiter>> {
        let shard = self.shards.get_mut(ih)?;
        match std::mem::replace(&mut shard.state, ShardState::Held) {
            ShardState::Fetching { waiters } => Some(waiters),
            ShardState::Held => Some(Vec::new()),
        }
    }

    /// The shard could not be fetched: it is forgotten; these waiters get a refusal.
    pub fn failed(&mut self, ih: &InfoHash) -> Vec<Waiter> {
        match self.shards.remove(ih) {
            Some(Shard {
                state: ShardState::Fetching { waiters },
                ..
            }) => waiters,
            Some(held) => {
                // A held shard does not fail; keep it.
                self.shards.insert(*ih, held);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub fn drop_shard(&mut self, gateway: &str, ih: &InfoHash) -> DropDecision {
        let Some(shard) = self.shards.get_mut(ih) else {
            return DropDecision {
                remove: false,
                superseded: Vec::new(),
            };
        };
        shard.owners.remove(gateway);
        let superseded = match &mut shard.state {
            ShardState::Fetching { waiters } => {
                let (gone, kept): (Vec<_>, Vec<_>) = waiters
                    .drain(..)
                    .partition(|w| w.gateway == gateway || shard.owners.is_empty());
                *waiters = kept;
                gone
            }
            ShardState::Held => Vec::new(),
        };
        let remove = shard.owners.is_empty();
        if remove {
            self.shards.remove(ih);
        }
        DropDecision { remove, superseded }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
