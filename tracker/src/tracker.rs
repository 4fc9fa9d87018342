//! The transport-independent tracker: access control, interval policy, swarm update and the
//! reliability observation, shared by the HTTP and UDP servers.
//!
//! Access (BEP 27): with `open = false` every announce and scrape must carry the announce token of
//! a registered, unrevoked node (HTTP: `/announce/<token>`; UDP: BEP 41 URL data with the same
//! path), so every swarm holds only registered nodes — the gateway's own seeder is one of them.
//! The token is derived from the node's passkey (RT-0002 "Tracker additions"); the passkey itself,
//! the control credential, is never accepted here. With `open = true` announces without a token
//! are served too (a public tracker), and a token, when given, must still be valid. An
//! inspector token (issued by the operator for stock clients that check exported shards) is
//! served like an anonymous client in open mode: peers, never a record, until it expires.
//!
//! Interval: a client counts as one of our nodes when its token is valid *and* its peer id
//! starts with one of `announce.node_peer_id_prefixes` (librqbit's "-rQ"); it is asked for
//! `node_interval_secs`. Everyone else — a stock client, even with a valid token — gets
//! `interval_secs`. Both rules are needed: the token proves membership, the peer-id prefix says
//! the software follows our liveness protocol; a volunteer testing with another client keeps
//! normal re-announces. Our nodes are also sent `min interval` equal to their interval, since
//! librqbit re-announces at `min interval` whenever an answer has one.
//!
//! Peers from reports (RT-0002): nodes do not announce the shards they hold. When the gateway has
//! a control hub, an announce's peers are the swarm's, topped up with the connected nodes whose
//! latest report holds the shard, and `complete` counts the larger of the two sets' seeders, so
//! a stock client fetching an exported shard finds its holders all the same.

use crate::config::AnnounceConfig;
use crate::control::ControlHub;
use crate::gateway::AccessKeys;
use crate::ops::Ops;
use crate::protocol::bencode_out::PeerEntry;
use crate::protocol::{Event, InfoHash, PeerId, SwarmCounts};
use crate::registry::records::{Observation, RecorderHandle};
use crate::registry::{unix_now, NodeId, Registry, TokenStatus};
use crate::scoring::ScoringConfig;
use crate::swarm::{Announce, Family, Swarms};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

/// Why an announce or scrape was refused; the text is the `failure reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this tracker is private: announce to /announce/<token> with your node's announce token"
    )]
    TokenRequired,
    #[error("unknown announce token")]
    UnknownToken,
    #[error("announce token has been revoked")]
    RevokedToken,
    #[error("inspector token has expired")]
    ExpiredToken,
    #[error("this inspector token was not issued for this shard")]
    OutOfScope,
}

/// An announce from either transport.
#[derive(Clone, Debug)]
pub struct AnnounceInput<'a> {
    /// The announce token from the URL path (the field keeps the name BitTorrent trackers use).
    pub passkey: Option<&'a [u8]>,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The request's source address with the announced port.
    pub addr: SocketAddr,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<u32>,
    pub family: Family,
}

/// What the answer should say besides the peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceAnswer {
    pub interval: u32,
    pub min_interval: u32,
    pub counts: SwarmCounts,
}

/// Shared tracker state.
pub struct Tracker {
    swarms: Swarms,
    registry: Registry,
    recorder: RecorderHandle,
    policy: AnnounceConfig,
    open: bool,
    scoring: ScoringConfig,
    started: Instant,
    /// The gateway's own seeder: its announces name the shards of an upload all at once, so
    /// nothing of them is recorded.
    unrecorded: OnceLock<NodeId>,
    /// The S3 access keys, for the admin API, when the gateway serves objects.
    access_keys: OnceLock<AccessKeys>,
    /// The operator view, when the gateway serves objects.
    ops: OnceLock<Ops>,
    /// The control hub whose nodes' reports say who holds each shard.
    holders: OnceLock<ControlHub>,
}

impl Tracker {
    pub fn new(
        registry: Registry,
        recorder: RecorderHandle,
        policy: AnnounceConfig,
        open: bool,
    ) -> Self {
        Tracker {
            swarms: Swarms::default(),
            registry,
            recorder,
            policy,
            open,
            scoring: ScoringConfig::default(),
            started: Instant::now(),
            unrecorded: OnceLock::new(),
            access_keys: OnceLock::new(),
            ops: OnceLock::new(),
            holders: OnceLock::new(),
        }
    }

    /// Uses `scoring` for the node reports instead of the default scoring configuration.
    pub fn with_scoring(mut self, scoring: ScoringConfig) -> Self {
        self.scoring = scoring;
        self
    }

    /// Keeps no records of `node`'s announces (the gateway's own seeder). Set once.
    pub fn record_nothing_of(&self, node: NodeId) {
        let _ = self.unrecorded.set(node);
    }

    /// Lets the admin API manage the gateway's S3 access keys.
    pub fn serve_access_keys(&self, keys: AccessKeys) {
        let _ = self.access_keys.set(keys);
    }

    /// The S3 access keys, when the gateway serves objects.
    pub fn access_keys(&self) -> Option<&AccessKeys> {
        self.access_keys.get()
    }

    /// Serves the operator view (dashboard, metrics, shard export) on the admin API.
    pub fn serve_ops(&self, ops: Ops) {
        let _ = self.ops.set(ops);
    }

    /// Answers shard swarms with the holders `hub`'s nodes report too. Set once.
    pub fn answer_from_reports(&self, hub: ControlHub) {
        let _ = self.holders.set(hub);
    }

    /// The operator view, when the gateway serves objects.
    pub fn ops(&self) -> Option<&Ops> {
        self.ops.get()
    }

    /// How node scores are computed for the reports.
    pub fn scoring(&self) -> &ScoringConfig {
        &self.scoring
    }

    /// Seconds since the tracker started (the swarm clock).
    pub fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn recorder(&self) -> &RecorderHandle {
        &self.recorder
    }

    pub fn swarms(&self) -> &Swarms {
        &self.swarms
    }

    /// Resolves the announce token of a request into the node it belongs to (or none, in open
    /// mode, or an inspector's token) for an announce or scrape of `shards`.
    pub fn authorize(
        &self,
        token: Option<&[u8]>,
        shards: &[InfoHash],
    ) -> Result<Option<NodeId>, Refusal> {
        match token {
            Some(token) => match self.registry.check_token_for(token, shards) {
                TokenStatus::Valid(id) => Ok(Some(id)),
                TokenStatus::Inspector => Ok(None),
                TokenStatus::Expired => Err(Refusal::ExpiredToken),
                TokenStatus::OutOfScope => Err(Refusal::OutOfScope),
                TokenStatus::Revoked => Err(Refusal::RevokedToken),
                TokenStatus::Unknown => Err(Refusal::UnknownToken),
            },
            None if self.open => Ok(None),
            None => Err(Refusal::TokenRequired),
        }
    }

    fn is_our_software(&self, peer_id: &PeerId) -> bool {
        self.policy
            .node_peer_id_prefixes
            .iter()
            .any(|p| peer_id.0.starts_with(p.as_bytes()))
    }

    /// Handles one announce and appends the peers to hand out to `out`.
    pub fn announce(
        &self,
        req: &AnnounceInput<'_>,
        out: &mut Vec<PeerEntry>,
    ) -> Result<AnnounceAnswer, Refusal> {
        let node = self.authorize(req.passkey, &[req.info_hash])?;
        let (interval, min_interval) = self.intervals(node.is_some(), &req.peer_id);
        let now = self.now();
        let numwant = req
            .numwant
            .unwrap_or(self.policy.default_numwant)
            .min(self.policy.max_numwant);
        let from_swarm = out.len();
        let mut outcome = self.swarms.announce(
            &Announce {
                info_hash: req.info_hash,
                peer_id: req.peer_id,
                addr: req.addr,
                uploaded: req.uploaded,
                downloaded: req.downloaded,
                left: req.left,
                event: req.event,
                now,
                ttl: interval.saturating_add(self.policy.grace_secs),
                numwant: numwant as usize,
                family: req.family,
            },
            out,
        );
        if req.event != Event::Stopped {
            let held = self.top_up_from_reports(req, numwant as usize, from_swarm, out);
            outcome.counts.complete = outcome.counts.complete.max(held);
        }
        if let Some(node) = node.filter(|n| self.unrecorded.get() != Some(n)) {
            self.record(node, req, &outcome, now, interval);
        }
        Ok(AnnounceAnswer {
            interval,
            min_interval,
            counts: outcome.counts,
        })
    }

    /// `interval` and `min interval` for a client: our nodes (a valid token and our peer-id
    /// prefix) get the node interval as both, everyone else the ordinary ones.
    fn intervals(&self, registered: bool, peer_id: &PeerId) -> (u32, u32) {
        if registered && self.is_our_software(peer_id) {
            let i = self.policy.node_interval_secs;
            (i, i)
        } else {
            let i = self.policy.interval_secs;
            (i, self.policy.min_interval_secs.min(i))
        }
    }

    /// Records a node's announce against its reliability record.
    fn record(
        &self,
        node: NodeId,
        req: &AnnounceInput<'_>,
        outcome: &crate::swarm::Outcome,
        now: u32,
        interval: u32,
    ) {
        let prev = outcome.previous;
        // The first announce of a peer only sets the baseline: librqbit reports bytes held
        // as `downloaded`, so a seeder's first figure is not a transfer.
        let delta = |now: u64, before: Option<u64>| match before {
            Some(b) if now >= b => now - b,
            Some(_) => now,
            None => 0,
        };
        self.recorder.observe(Observation {
            node,
            info_hash: req.info_hash,
            addr: req.addr,
            at: unix_now(),
            seeding: req.left == 0,
            bytes_up: delta(req.uploaded, prev.map(|p| p.uploaded)),
            bytes_down: delta(req.downloaded, prev.map(|p| p.downloaded)),
            gap: prev.map(|p| now.saturating_sub(p.last_seen)),
            expected_interval: interval,
            allowance: interval.saturating_add(self.policy.grace_secs),
            completed: outcome.completed,
        });
    }

    /// Adds the reported holders of the shard that are not in `out[from..]` yet (nor the
    /// announcer itself) up to `numwant` peers in all; returns how many nodes report holding it.
    fn top_up_from_reports(
        &self,
        req: &AnnounceInput<'_>,
        numwant: usize,
        from: usize,
        out: &mut Vec<PeerEntry>,
    ) -> u32 {
        let Some(hub) = self.holders.get() else {
            return 0;
        };
        let holders = hub.holders_of(&req.info_hash);
        for addr in &holders {
            if out.len() - from >= numwant {
                break;
            }
            let family = match req.family {
                Family::Any => true,
                Family::V4 => addr.is_ipv4(),
                Family::V6 => addr.is_ipv6(),
            };
            if family && *addr != req.addr && !out[from..].iter().any(|p| p.addr == *addr) {
                // A node's peer id is its session's, which its report does not carry.
                let peer_id = PeerId([0; 20]);
                out.push(PeerEntry {
                    peer_id,
                    addr: *addr,
                });
            }
        }
        u32::try_from(holders.len()).unwrap_or(u32::MAX)
    }

    /// Scrape counts for `hashes`, in order.
    pub fn scrape(
        &self,
        passkey: Option<&[u8]>,
        hashes: &[InfoHash],
    ) -> Result<Vec<SwarmCounts>, Refusal> {
        self.authorize(passkey, hashes)?;
        let held = |h: &InfoHash| {
            let n = self.holders.get().map_or(0, |hub| hub.holders_of(h).len());
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        let counts = |h: &InfoHash| {
            let mut c = self.swarms.counts(h);
            c.complete = c.complete.max(held(h));
            c
        };
        Ok(hashes.iter().map(counts).collect())
    }
}
