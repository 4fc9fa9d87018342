//! Leeching shard torrents over the BEP 3 peer wire, as the gateway's audits and reads and the
//! client CLI's reads do: straight from the nodes, piece by piece, each piece checked against the
//! shard's hashes as it arrives.
//!
//! Pure cores (no sockets, clock or async; `tests/pure.rs` checks it):
//! - [`wire`]: the peer-wire messages after the handshake;
//! - [`exchange`]: one leeching conversation as a state machine, for an audit (a fixed set of
//!   pieces, then a verdict) or a read (pieces added as the read needs them);
//! - `board`: one read's pieces: which shard needs which, who fetches each, hedges, the window,
//!   and which holders answer and keep delivering (a shard none of whose holders does gives way
//!   to a parity shard);
//! - [`rng`]: a small deterministic generator for audit choices and peer ids.
//!
//! At the edges: [`peer`] (the frames of an answer fed to an exchange, our peer id, the socket
//! option librqbit needs), `conn` (one connection of a read) and [`read`] (a read over many
//! holders, seen by the codec's decoder as one [`raidtorrent_codec::ShardReader`] per shard).

mod board;
mod conn;
pub mod exchange;
pub mod peer;
pub mod read;
pub mod rng;
pub mod wire;

pub use conn::ConnOutcome;
pub use read::{window_pieces, Finished, PieceRead, PieceReader, Sources};
