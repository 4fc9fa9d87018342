//! Audits: the gateway, acting as a plain BitTorrent peer, asks a node for random pieces of a shard
//! it holds and checks them against the piece hashes.
//!
//! - [`wire`]: the BEP 3 peer-wire messages (pure; in `raidtorrent-fetch`, with the reads); the
//!   handshake is [`raidtorrent_proto::Handshake`];
//! - [`exchange`]: one audit conversation as a state machine (pure, in `raidtorrent-fetch`): what
//!   to send, what each answer means, the verdict;
//! - [`probe()`]: that conversation over TCP under one deadline, giving a [`Probe`]; and
//!   [`pick_pieces`], which pieces to ask for;
//! - [`schedule`]: which (node, shard) holdings to audit next, weighted by node (pure).
//!
//! The worker that runs audits over time and records their outcomes lives with the gateway's
//! records; everything here is stateless.
//!
//! # What an audit proves, and what it does not
//!
//! A [`Probe::Pass`] proves that, at that moment, the node could serve the chosen pieces of the
//! shard, byte for byte, within the deadline. It does not prove the node *stores* them: a node
//! could keep nothing and fetch a piece from another holder when asked. Audits make that cheating
//! unprofitable rather than impossible: the pieces are drawn at random across the whole shard
//! ([`pick_pieces`]) and audits at random across holdings and time ([`schedule::pick`]), so a node
//! that does not store a shard must be able to fetch *any* piece of it, at any time, within the
//! deadline, from nodes that are themselves audited; the bandwidth and latency that takes, on every
//! audit, brings the cost of cheating close to the cost of storing. A tight deadline relative to
//! the piece size narrows the gap further. Nor does a pass say anything about pieces that were not
//! asked for; many small audits over time are what covers a shard.
//!
//! A [`Probe::Fail`] is evidence: the node sent bytes that do not hash to the shard's piece, or
//! broke the protocol in a way no honest client does. [`Probe::Missing`] (the node answered but
//! says it lacks the piece) is evidence once the node has had time to re-check its files after a
//! start; [`Probe::Unreachable`] and [`Probe::Timeout`] are weaker: a node may be restarting,
//! overloaded or behind a broken link; only a pattern of them means the data is gone.
//!
//! # How librqbit nodes answer
//!
//! A librqbit 9.1 session accepts an incoming connection for any torrent it has live, whatever the
//! tracker said: no announce is needed for the gateway to dial in. After the handshake it sends its
//! bitfield and then `unchoke` at once, before and regardless of `interested` (it unchokes every
//! peer; `peer_connection.rs`), so an audit reaches the `block` stage one round trip after the
//! handshake: on loopback the unchoke arrives about 0.2 ms after our handshake is sent
//! (`tests/integration/audit.rs` measures it). librqbit leaves Nagle's algorithm on, so the
//! probe asks its kernel for immediate ACKs; without that, an audit stalls about 40 ms on a
//! delayed ACK (every piece of a 390 KiB shard on loopback: 44 ms before, 1.4 ms after). It answers requests from the file on disk without checking the piece again: bytes
//! changed on disk after the initial check are served as they are, and an audit sees them as a
//! [`Probe::Fail`] naming the piece. A session that does not have the torrent closes the connection
//! right after reading the handshake ([`Probe::Unreachable`]: a full peer list looks the same); a request for a piece the session does
//! not have also makes it close the connection, which is why the probe checks the bitfield first.

pub mod probe;
pub mod schedule;

/// The peer wire, the conversation and the generator are the leeching crate's, shared with the
/// gateway's and the client's piece reads.
pub use raidtorrent_fetch::{exchange, rng, wire};

pub use probe::{pick_pieces, probe, Probe};
pub use raidtorrent_fetch::peer::PEER_ID_PREFIX;
pub use schedule::{pick, Candidate};
