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
    Fetching {
        waiters: Vec<Waiter>,
        /// Fetched again: the held set on disk records it already (its data was found
        /// incomplete at start) and keeps it until the fetch ends.
        again: bool,
    },
    Held,
    /// Held on disk and kept in the held set, but not in the session: its metainfo or data could
    /// not be read for a moment (an I/O error, permissions). Not reported, not served; the node
    /// tries again later. Never forgotten for that.
    Parked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub name: String,
    pub length: u64,
    pub owners: BTreeSet<String>,
    /// The owners the held set on disk names for this info-hash (see [`Ledger::on_disk`]). A
    /// hold is acked, and a shard reported held to a gateway, only once the disk names it.
    pub saved: BTreeSet<String>,
    pub state: ShardState,
}

impl Shard {
    /// Whether the held set on disk keeps this shard: held, parked, or fetched again (its data
    /// was found incomplete at start). A new fetch is not kept: nothing was acked for it, and a
    /// restart deletes its partial files.
    pub fn kept(&self) -> bool {
        match self.state {
            ShardState::Held | ShardState::Parked => true,
            ShardState::Fetching { again, .. } => again,
        }
    }
}

/// What to do with a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldDecision {
    /// Already held: answer now, once the held set on disk names the gateway as an owner
    /// (`saved`: it does already).
    Ack {
        saved: bool,
    },
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
    /// How many of `shards` are Parked (kept by [`Ledger::put`] and [`Ledger::take`]).
    parked: usize,
}

impl Ledger {
    pub fn new(capacity: u64) -> Self {
        Ledger {
            capacity,
            shards: BTreeMap::new(),
            parked: 0,
        }
    }

    /// Shards in the session: every one but the parked.
    pub fn open(&self) -> usize {
        self.shards.len() - self.parked
    }

    /// Every insertion goes here, so the parked count stays right.
    fn put(&mut self, ih: InfoHash, shard: Shard) {
        self.parked += usize::from(shard.state == ShardState::Parked);
        if let Some(old) = self.shards.insert(ih, shard) {
            self.parked -= usize::from(old.state == ShardState::Parked);
        }
    }

    /// Every removal goes here, so the parked count stays right.
    fn take(&mut self, ih: &InfoHash) -> Option<Shard> {
        let shard = self.shards.remove(ih)?;
        self.parked -= usize::from(shard.state == ShardState::Parked);
        Some(shard)
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

    /// Shards held (complete) for `gateway` as the disk records them: what its report lists.
    pub fn held_for(&self, gateway: &str) -> Vec<InfoHash> {
        self.shards
            .iter()
            .filter(|(_, s)| s.state == ShardState::Held)
            .filter(|(_, s)| s.owners.contains(gateway) && s.saved.contains(gateway))
            .map(|(ih, _)| *ih)
            .collect()
    }

    /// Shards being fetched for `gateway`: those whose transfers its reports list.
    pub fn fetching_for(&self, gateway: &str) -> Vec<InfoHash> {
        self.shards
            .iter()
            .filter(|(_, s)| matches!(s.state, ShardState::Fetching { .. }))
            .filter(|(_, s)| s.owners.contains(gateway))
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
                again: true,
            }
        };
        self.put(
            ih,
            Shard {
                name,
                length,
                saved: owners.clone(),
                owners,
                state,
            },
        );
    }

    /// A held shard read from the disk's held set, out of the session (see
    /// [`ShardState::Parked`]).
    pub fn park(&mut self, ih: InfoHash, name: String, length: u64, owners: BTreeSet<String>) {
        let state = ShardState::Parked;
        self.put(
            ih,
            Shard {
                name,
                length,
                saved: owners.clone(),
                owners,
                state,
            },
        );
    }

    /// A record naming `owners` for `ih` is about to be written: until it is, the disk names at
    /// most the owners both it and the old record name.
    pub fn writing(&mut self, ih: &InfoHash, owners: &BTreeSet<String>) {
        if let Some(shard) = self.shards.get_mut(ih) {
            shard.saved.retain(|o| owners.contains(o));
        }
    }

    /// [`Ledger::writing`] for a whole snapshot: `written` names the owners of every shard in
    /// it; a shard it does not list gets none.
    pub fn writing_all(&mut self, written: &BTreeMap<InfoHash, BTreeSet<String>>) {
        for (ih, shard) in &mut self.shards {
            match written.get(ih) {
                Some(owners) => shard.saved.retain(|o| owners.contains(o)),
                None => shard.saved.clear(),
            }
        }
    }

    /// [`Ledger::on_disk`] for a whole snapshot, as in [`Ledger::writing_all`].
    pub fn on_disk_all(&mut self, written: &BTreeMap<InfoHash, BTreeSet<String>>) {
        for (ih, shard) in &mut self.shards {
            match written.get(ih) {
                Some(owners) => shard.saved.clone_from(owners),
                None => shard.saved.clear(),
            }
        }
    }

    /// The held set on disk now names `owners` for `ih` (none: it does not list it).
    pub fn on_disk(&mut self, ih: &InfoHash, owners: &BTreeSet<String>) {
        if let Some(shard) = self.shards.get_mut(ih) {
            shard.saved.clone_from(owners);
        }
    }

    /// Parked shards, to try again.
    pub fn parked(&self) -> Vec<InfoHash> {
        self.shards
            .iter()
            .filter(|(_, s)| s.state == ShardState::Parked)
            .map(|(ih, _)| *ih)
            .collect()
    }

    /// Forgets a parked shard that cannot be brought back (its metainfo file is gone).
    pub fn forget_parked(&mut self, ih: &InfoHash) {
        if self
            .shards
            .get(ih)
            .is_some_and(|s| s.state == ShardState::Parked)
        {
            self.take(ih);
        }
    }

    /// A parked shard is back in the session; `verified` as in [`Ledger::restore`]. False when
    /// it is no longer parked (dropped meanwhile).
    pub fn unpark(&mut self, ih: &InfoHash, verified: bool) -> bool {
        match self.shards.get_mut(ih) {
            Some(s) if s.state == ShardState::Parked => {
                self.parked -= 1;
                s.state = if verified {
                    ShardState::Held
                } else {
                    ShardState::Fetching {
                        waiters: Vec::new(),
                        again: true,
                    }
                };
                true
            }
            _ => false,
        }
    }

    pub fn hold(&mut self, waiter: Waiter, ih: InfoHash, name: &str, length: u64) -> HoldDecision {
        if let Some(shard) = self.shards.get_mut(&ih) {
            let gateway = &waiter.gateway;
            return match &mut shard.state {
                ShardState::Held => {
                    shard.owners.insert(gateway.clone());
                    let saved = shard.saved.contains(gateway);
                    HoldDecision::Ack { saved }
                }
                ShardState::Fetching { waiters, .. } => {
                    shard.owners.insert(gateway.clone());
                    waiters.push(waiter);
                    HoldDecision::Wait
                }
                // Refused, so not an owner.
                ShardState::Parked => HoldDecision::Refuse {
                    code: RefuseCode::Quota,
                    text: "the shard is on disk but could not be opened for now; the node \
                           tries again"
                        .into(),
                },
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
        self.put(
            ih,
            Shard {
                name: name.to_owned(),
                length,
                owners,
                saved: BTreeSet::new(),
                state: ShardState::Fetching {
                    waiters: vec![waiter],
                    again: false,
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
            ShardState::Fetching { waiters, .. } => Some(waiters),
            ShardState::Held => Some(Vec::new()),
            ShardState::Parked => {
                // Not fetched: a parked shard is not in the session.
                shard.state = ShardState::Parked;
                None
            }
        }
    }

    /// The shard could not be fetched: it is forgotten; these waiters get a refusal.
    pub fn failed(&mut self, ih: &InfoHash) -> Vec<Waiter> {
        match self.take(ih) {
            Some(Shard {
                state: ShardState::Fetching { waiters, .. },
                ..
            }) => waiters,
            Some(held) => {
                // A held (or parked) shard does not fail; keep it.
                self.put(*ih, held);
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
            ShardState::Fetching { waiters, .. } => {
                let (gone, kept): (Vec<_>, Vec<_>) = waiters
                    .drain(..)
                    .partition(|w| w.gateway == gateway || shard.owners.is_empty());
                *waiters = kept;
                gone
            }
            ShardState::Held | ShardState::Parked => Vec::new(),
        };
        let remove = shard.owners.is_empty();
        if remove {
            self.take(ih);
        }
        DropDecision { remove, superseded }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
