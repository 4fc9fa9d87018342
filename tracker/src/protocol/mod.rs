//! Tracker wire formats, free of I/O and async: bytes in, typed values out, and back.
//!
//! - [`http`]: BEP 3 announce and BEP 48 scrape query strings.
//! - [`bencode_out`]: the bencoded answers (BEP 3 / 23 / 7 / 48) including `failure reason`.
//! - [`udp`]: BEP 15 packets with BEP 41 URL data.
//!
//! Every parser here takes untrusted bytes, is bounded in what it allocates, never panics and
//! returns a typed error whose `Display` text is what the client is told.

pub mod bencode_out;
pub mod http;
pub mod udp;

use std::fmt;

/// A v1 info-hash (SHA-1 of the info dict), or the 20-byte truncation a v2 client announces: the
/// workspace's one info-hash type.
pub use raidtorrent_codec::InfoHash;

/// The 20-byte id a client picks for itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

/// The `event` of an announce. Absent, empty and unrecognised values are all [`Event::None`]:
/// a client speaking a newer dialect still gets served as a regular re-announce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Event {
    #[default]
    None,
    Started,
    Completed,
    Stopped,
    /// BEP 21: the client keeps its data but stops downloading.
    Paused,
}

/// Counts shown for one swarm by scrape and in announce answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmCounts {
    /// Peers with nothing left to download.
    pub complete: u32,
    /// Peers still downloading.
    pub incomplete: u32,
    /// Peers seen going from leeching to seeding (or announcing `completed`).
    pub downloaded: u32,
}
