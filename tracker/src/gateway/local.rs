//! The gateway's own BitTorrent peer: its librqbit session, its identity as a node (its seeder
//! announces to the tracker like any node), the announce URLs of the torrents it hands out, and
//! the leases on the shards it fetched.

use std::net::SocketAddr;
use std::sync::Arc;

use raidtorrent_codec::ShardInfo;

use super::leases::Leases;
use super::session::PeerSession;
use crate::registry::NodeId;

/// The gateway's own node in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnNode {
    pub id: NodeId,
    /// What its announce URLs carry.
    pub announce_token: String,
}

/// Announce URLs: every torrent the gateway hands out carries its holder's own (BEP 27 private
/// swarm, the node's announce token in the path, never its passkey), so the tracker knows which
/// node announces.
#[derive(Clone)]
pub(super) struct Announce {
    base: Arc<str>,
}

impl Announce {
    /// `tracker_url` is the tracker's base URL as nodes reach it.
    pub(super) fn new(tracker_url: &str) -> Self {
        Announce {
            base: tracker_url.trim_end_matches('/').into(),
        }
    }

    /// The announce URL of the node with announce token `token`.
    pub(super) fn url(&self, token: &str) -> String {
        format!("{}/announce/{token}", self.base)
    }

    /// A shard's torrent as the node with announce token `token` gets it.
    pub(super) fn torrent(&self, info: &ShardInfo, token: &str) -> Vec<u8> {
        info.to_torrent(&[vec![self.url(token)]])
    }
}

/// The gateway as a BitTorrent peer; cheap to clone.
#[derive(Clone)]
pub(super) struct LocalPeer {
    pub session: PeerSession,
    pub own: Arc<OwnNode>,
    pub announce: Announce,
    pub leases: Arc<Leases>,
}

impl LocalPeer {
    /// A shard's torrent as the gateway's own session seeds or fetches it.
    pub(super) fn torrent(&self, info: &ShardInfo) -> Vec<u8> {
        self.announce.torrent(info, &self.own.announce_token)
    }

    /// Where nodes reach the gateway's session.
    pub(super) fn data_addr(&self) -> SocketAddr {
        self.session.data_addr()
    }
}
