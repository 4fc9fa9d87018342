//! Identities every layer shares: a node is known by the id the registry gave it, a shard by its
//! info-hash (the codec's [`InfoHash`], the workspace's one info-hash type). Both are converted
//! to text only at the database, wire and HTTP edges.

/// A registered node.
pub type NodeId = i64;

pub use raidtorrent_codec::InfoHash;
