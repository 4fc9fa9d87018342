//! Announce tokens in memory: what the announce path checks without touching the database.
//!
//! A node's announce token is derived from its passkey (`raidtorrent_proto::auth::announce_token`,
//! RT-0002 "Tracker additions"), so the passkey itself never appears in an announce URL or in a
//! torrent handed to a node. Revoked nodes stay in the map so an announce is told it was revoked
//! rather than unknown.

use std::collections::HashMap;

use super::NodeId;

/// What an announce token says about an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    Valid(NodeId),
    Revoked,
    Unknown,
}

/// Every node's announce token, both ways.
#[derive(Default)]
pub(super) struct Tokens {
    /// Token → (node, revoked).
    by_token: HashMap<Box<[u8]>, (NodeId, bool)>,
    /// Node → (token, revoked).
    of_node: HashMap<NodeId, (String, bool)>,
}

impl Tokens {
    /// Adds (or replaces) node `id` with the token derived from `passkey`.
    pub(super) fn insert(&mut self, id: NodeId, passkey: &str, revoked: bool) {
        let token = raidtorrent_proto::auth::announce_token(passkey);
        self.by_token
            .insert(token.clone().into_bytes().into_boxed_slice(), (id, revoked));
        self.of_node.insert(id, (token, revoked));
    }

    pub(super) fn revoke(&mut self, id: NodeId) {
        if let Some((token, revoked)) = self.of_node.get_mut(&id) {
            *revoked = true;
            self.by_token.insert(token.as_bytes().into(), (id, true));
        }
    }

    pub(super) fn check(&self, token: &[u8]) -> TokenStatus {
        match self.by_token.get(token) {
            Some(&(id, false)) => TokenStatus::Valid(id),
            Some(&(_, true)) => TokenStatus::Revoked,
            None => TokenStatus::Unknown,
        }
    }

    /// The token of a registered, unrevoked node.
    pub(super) fn token_of(&self, id: NodeId) -> Option<String> {
        match self.of_node.get(&id) {
            Some((token, false)) => Some(token.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_both_ways_and_revoked_in_place() {
        let mut t = Tokens::default();
        let key = "0123456789abcdef0123456789abcdef";
        t.insert(7, key, false);
        let token = t.token_of(7).unwrap();
        assert_eq!(token, raidtorrent_proto::auth::announce_token(key));
        assert_eq!(t.check(token.as_bytes()), TokenStatus::Valid(7));
        // The passkey itself is not an announce credential.
        assert_eq!(t.check(key.as_bytes()), TokenStatus::Unknown);
        t.revoke(7);
        assert_eq!(t.check(token.as_bytes()), TokenStatus::Revoked);
        assert_eq!(t.token_of(7), None);
        assert_eq!(t.token_of(8), None);
        t.revoke(8);
        assert_eq!(t.check(b"nope"), TokenStatus::Unknown);
    }
}
