//! Announce tokens in memory: what the announce path checks without touching the database.
//!
//! A node's announce token is derived from its passkey (`raidtorrent_proto::auth::announce_token`,
//! RT-0002 "Tracker additions"), so the passkey itself never appears in an announce URL or in a
//! torrent handed to a node. Revoked nodes stay in the map so an announce is told it was revoked
//! rather than unknown.

use std::collections::{HashMap, HashSet};

use super::NodeId;
use crate::ids::InfoHash;

/// What an announce token says about an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    Valid(NodeId),
    Revoked,
    /// A read-only inspector credential, unexpired, for the shards asked about: served, never
    /// recorded.
    Inspector,
    /// An inspector credential past its expiry.
    Expired,
    /// An inspector credential asked about a shard it was not issued for.
    OutOfScope,
    Unknown,
}

/// Every node's announce token, both ways.
#[derive(Default)]
pub(super) struct Tokens {
    /// Token → (node, revoked).
    by_token: HashMap<Box<[u8]>, (NodeId, bool)>,
    /// Node → (token, revoked).
    of_node: HashMap<NodeId, (String, bool)>,
    /// SHA-256 of each inspector token → when it expires (Unix seconds) and its shards.
    inspectors: HashMap<[u8; 32], (i64, HashSet<InfoHash>)>,
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

    /// What `token` may do at `now` for an announce or scrape of `shards`.
    pub(super) fn check(&self, token: &[u8], now: i64, shards: &[InfoHash]) -> TokenStatus {
        match self.by_token.get(token) {
            Some(&(id, false)) => TokenStatus::Valid(id),
            Some(&(_, true)) => TokenStatus::Revoked,
            None if self.inspectors.is_empty() => TokenStatus::Unknown,
            None => match self.inspectors.get(&inspector_digest(token)) {
                Some((expires, _)) if now >= *expires => TokenStatus::Expired,
                Some((_, scope)) if shards.iter().all(|s| scope.contains(s)) => {
                    TokenStatus::Inspector
                }
                Some(_) => TokenStatus::OutOfScope,
                None => TokenStatus::Unknown,
            },
        }
    }

    /// Accepts an inspector token (given as its digest) for `shards` until `expires_at`.
    pub(super) fn insert_inspector(
        &mut self,
        digest: [u8; 32],
        expires_at: i64,
        shards: HashSet<InfoHash>,
    ) {
        self.inspectors.insert(digest, (expires_at, shards));
    }

    /// Forgets inspector tokens that expired before `before`.
    pub(super) fn forget_inspectors(&mut self, before: i64) {
        self.inspectors.retain(|_, (expires, _)| *expires >= before);
    }

    /// The token of a registered, unrevoked node.
    /// Whether node `id` is in the map at all, valid or revoked.
    pub(super) fn knows(&self, id: NodeId) -> bool {
        self.of_node.contains_key(&id)
    }

    pub(super) fn token_of(&self, id: NodeId) -> Option<String> {
        match self.of_node.get(&id) {
            Some((token, false)) => Some(token.clone()),
            _ => None,
        }
    }
}

/// What the database keeps of an inspector token.
pub(super) fn inspector_digest(token: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token).into()
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
        assert_eq!(t.check(token.as_bytes(), 0, &[]), TokenStatus::Valid(7));
        // The passkey itself is not an announce credential.
        assert_eq!(t.check(key.as_bytes(), 0, &[]), TokenStatus::Unknown);
        t.revoke(7);
        assert_eq!(t.check(token.as_bytes(), 0, &[]), TokenStatus::Revoked);
        assert_eq!(t.token_of(7), None);
        assert_eq!(t.token_of(8), None);
        t.revoke(8);
        assert_eq!(t.check(b"nope", 0, &[]), TokenStatus::Unknown);
    }
}

#[cfg(test)]
mod inspector_tests {
    use super::*;

    #[test]
    fn an_inspector_token_is_served_for_its_shards_until_it_expires_and_is_no_node() {
        let (mine, other) = (InfoHash([1; 20]), InfoHash([2; 20]));
        let mut t = Tokens::default();
        t.insert(7, "0123456789abcdef0123456789abcdef", false);
        assert_eq!(t.check(b"look", 100, &[mine]), TokenStatus::Unknown);
        t.insert_inspector(inspector_digest(b"look"), 200, HashSet::from([mine]));
        assert_eq!(t.check(b"look", 199, &[mine]), TokenStatus::Inspector);
        assert_eq!(t.check(b"look", 199, &[]), TokenStatus::Inspector);
        assert_eq!(t.check(b"look", 199, &[other]), TokenStatus::OutOfScope);
        assert_eq!(
            t.check(b"look", 199, &[mine, other]),
            TokenStatus::OutOfScope
        );
        assert_eq!(t.check(b"look", 200, &[mine]), TokenStatus::Expired);
        assert_eq!(t.check(b"other", 100, &[mine]), TokenStatus::Unknown);
        t.forget_inspectors(201);
        assert_eq!(t.check(b"look", 100, &[mine]), TokenStatus::Unknown);
    }
}
