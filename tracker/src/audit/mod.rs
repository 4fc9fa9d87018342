//! Audits: the gateway, acting as a plain BitTorrent peer, asks a node for random pieces of a shard it holds and checks them against the piece hashes.
