//! Swarm state: who is in which torrent, in memory only (it rebuilds from the next announces
//! after a restart, so it never touches the disk).
//!
//! Invariants:
//! - Swarms are split over [`SHARDS`] mutex-guarded maps by info-hash, so announces for different
//!   torrents rarely contend; a lock is held only for one swarm update plus the copy of at most
//!   `numwant` peers.
//! - In a swarm, `index[peer_id]` is the position of that peer in `peers`, and `seeders` counts
//!   peers with `left == 0`. Seeding is inferred from `left` alone: librqbit never announces
//!   `completed`.
//! - `downloaded` counts completions: a known leecher seen with `left == 0`, or a first announce
//!   that says `completed`, or a known leecher stopping with `left == 0`; a peer is counted at
//!   most once per stay in the swarm.
//! - A peer expires at the time its own announce interval (plus grace) runs out; [`Swarms::sweep`]
//!   removes expired peers and empty swarms. `stopped` removes the peer at once.

use crate::protocol::{bencode_out::PeerEntry, Event, InfoHash, PeerId, SwarmCounts};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Number of independently locked parts of the swarm map.
pub const SHARDS: usize = 32;

#[derive(Clone, Debug)]
struct Peer {
    peer_id: PeerId,
    addr: SocketAddr,
    seeding: bool,
    uploaded: u64,
    downloaded: u64,
    last_seen: u32,
    expires: u32,
}

#[derive(Default)]
struct Swarm {
    peers: Vec<Peer>,
    index: HashMap<PeerId, usize>,
    seeders: u32,
    downloaded: u32,
}

impl Swarm {
    fn counts(&self) -> SwarmCounts {
        SwarmCounts {
            complete: self.seeders,
            incomplete: self.peers.len() as u32 - self.seeders,
            downloaded: self.downloaded,
        }
    }

    fn remove(&mut self, i: usize) -> Peer {
        let peer = self.peers.swap_remove(i);
        self.index.remove(&peer.peer_id);
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.peer_id, i);
        }
        if peer.seeding {
            self.seeders -= 1;
        }
        peer
    }
}

/// Which peers an answer may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// HTTP: both, in `peers` and `peers6`.
    Any,
    /// UDP: only the requester's own family.
    V4,
    V6,
}

/// One announce, as the swarm sees it.
#[derive(Clone, Debug)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Source address of the request with the announced port.
    pub addr: SocketAddr,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// Seconds on the tracker's clock.
    pub now: u32,
    /// Seconds after `now` at which the peer expires unless it announces again.
    pub ttl: u32,
    pub numwant: usize,
    pub family: Family,
}

/// What the peer last told us, for the reliability records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Previous {
    pub last_seen: u32,
    pub uploaded: u64,
    pub downloaded: u64,
    pub addr: SocketAddr,
    pub seeding: bool,
}

/// The result of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Counts after this announce.
    pub counts: SwarmCounts,
    /// `None` when the peer was not in the swarm.
    pub previous: Option<Previous>,
    /// This announce completed a download.
    pub completed: bool,
}

/// All swarms of the tracker.
pub struct Swarms {
    shards: Box<[Mutex<HashMap<InfoHash, Swarm>>]>,
}

impl Default for Swarms {
    fn default() -> Self {
        Swarms {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

fn shard_of(h: &InfoHash) -> usize {
    // Info-hashes are SHA-1 outputs: any byte is uniformly spread.
    usize::from(h.0[0]) % SHARDS
}

/// A cheap start offset so different announcers get different slices of a big swarm.
fn start_offset(peer_id: &PeerId, now: u32, len: usize) -> usize {
    let mut x = u64::from_le_bytes(peer_id.0[12..20].try_into().expect("8 bytes")) ^ u64::from(now);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % len as u64) as usize
}

impl Swarms {
    /// Applies an announce and appends up to `a.numwant` other peers to `out`.
    pub fn announce(&self, a: &Announce, out: &mut Vec<PeerEntry>) -> Outcome {
        let mut shard = self.shards[shard_of(&a.info_hash)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if a.event == Event::Stopped {
            let Some(swarm) = shard.get_mut(&a.info_hash) else {
                return Outcome {
                    counts: SwarmCounts::default(),
                    previous: None,
                    completed: false,
                };
            };
            let previous = swarm.index.get(&a.peer_id).copied().map(|i| {
                let p = swarm.remove(i);
                previous_of(&p)
            });
            // A leecher that stops with nothing left finished on its way out (aria2 with
            // --seed-time=0 does this).
            let completed = a.left == 0 && previous.is_some_and(|p| !p.seeding);
            if completed {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            let counts = swarm.counts();
            if swarm.peers.is_empty() {
                shard.remove(&a.info_hash);
            }
            return Outcome {
                counts,
                previous,
                completed,
            };
        }
        let swarm = shard.entry(a.info_hash).or_default();
        let seeding = a.left == 0;
        let expires = a.now.saturating_add(a.ttl);
        let (previous, completed) = match swarm.index.get(&a.peer_id).copied() {
            Some(i) => {
                let p = &mut swarm.peers[i];
                let prev = previous_of(p);
                let completed = seeding && !p.seeding;
                if seeding != p.seeding {
                    if seeding {
                        swarm.seeders += 1;
                    } else {
                        swarm.seeders -= 1;
                    }
                }
                *p = Peer {
                    peer_id: a.peer_id,
                    addr: a.addr,
                    seeding,
                    uploaded: a.uploaded,
                    downloaded: a.downloaded,
                    last_seen: a.now,
                    expires,
                };
                (Some(prev), completed)
            }
            None => {
                swarm.index.insert(a.peer_id, swarm.peers.len());
                swarm.peers.push(Peer {
                    peer_id: a.peer_id,
                    addr: a.addr,
                    seeding,
                    uploaded: a.uploaded,
                    downloaded: a.downloaded,
                    last_seen: a.now,
                    expires,
                });
                if seeding {
                    swarm.seeders += 1;
                }
                (None, seeding && a.event == Event::Completed)
            }
        };
        if completed {
            swarm.downloaded = swarm.downloaded.saturating_add(1);
        }
        select(swarm, a, seeding, out);
        Outcome {
            counts: swarm.counts(),
            previous,
            completed,
        }
    }

    /// Counts for scrape; an unknown swarm has all zeros.
    pub fn counts(&self, h: &InfoHash) -> SwarmCounts {
        let shard = self.shards[shard_of(h)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shard.get(h).map(Swarm::counts).unwrap_or_default()
    }

    /// Removes peers whose time ran out before `now`, and swarms left empty. Returns how many
    /// peers were removed.
    pub fn sweep(&self, now: u32) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.retain(|_, swarm| {
                let mut i = 0;
                while i < swarm.peers.len() {
                    if swarm.peers[i].expires < now {
                        swarm.remove(i);
                        removed += 1;
                    } else {
                        i += 1;
                    }
                }
                !swarm.peers.is_empty()
            });
        }
        removed
    }

    /// Number of swarms and of peers in them.
    pub fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(s, p), shard| {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            (
                s + shard.len(),
                p + shard.values().map(|w| w.peers.len()).sum::<usize>(),
            )
        })
    }
}

fn previous_of(p: &Peer) -> Previous {
    Previous {
        last_seen: p.last_seen,
        uploaded: p.uploaded,
        downloaded: p.downloaded,
        addr: p.addr,
        seeding: p.seeding,
    }
}

/// Copies up to `numwant` peers other than the announcer, starting at a pseudo-random position.
/// A seeder gets only leechers: other seeders have nothing for it.
fn select(swarm: &Swarm, a: &Announce, seeding: bool, out: &mut Vec<PeerEntry>) {
    let len = swarm.peers.len();
    if len <= 1 || a.numwant == 0 {
        return;
    }
    let start = start_offset(&a.peer_id, a.now, len);
    let mut taken = 0;
    for k in 0..len {
        let p = &swarm.peers[(start + k) % len];
        let family_ok = match a.family {
            Family::Any => true,
            Family::V4 => p.addr.is_ipv4(),
            Family::V6 => p.addr.is_ipv6(),
        };
        if p.peer_id == a.peer_id || (seeding && p.seeding) || !family_ok {
            continue;
        }
        out.push(PeerEntry {
            peer_id: p.peer_id,
            addr: p.addr,
        });
        taken += 1;
        if taken == a.numwant {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
