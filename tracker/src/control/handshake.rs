//! Authenticating a control connection (RT-0002 section 4): our BEP 3 handshake and extended
//! handshake, the node's extended handshake, its proof over the whole transcript, the version,
//! the facts the registry holds for it, the rule against a second live connection, then
//! `welcome`, the first frame tagged with the session keys.
//!
//! Until `welcome`, a refusal is an untagged `bye` (the node may not even share a key with us).

use super::conn::{Conn, Session};
use super::{ConnectedNode, Joined};
use crate::registry::control_records::NodePasskey;
use crate::registry::{NodeId, Registration};
use raidtorrent_proto::auth::{self, Nonce, SessionKeys, Transcript};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{
    frame, ByeCode, Frame, GatewayHello, Handshake, Message, NodeHello, Welcome, PROTOCOL_VERSION,
};
use std::net::SocketAddr;
use std::time::SystemTime;

/// The lowest placement protocol version this gateway speaks: version 1 authenticated neither
/// the node's facts nor the frames after the handshake.
const MIN_VERSION: u64 = 2;
const CLIENT: &str = concat!("raidtorrent-tracker ", env!("CARGO_PKG_VERSION"));

/// Our extended handshake: its nonce and its bytes as sent (the transcript covers them).
struct Greeting {
    nonce: Nonce,
    payload: Vec<u8>,
}

/// The node's extended handshake, parsed and as received.
struct NodeGreeting {
    hello: NodeHello,
    payload: Vec<u8>,
}

type Why = String;

impl Conn {
    /// Runs the handshake; on success the connection is in the hub's map and `welcome` is sent.
    pub(super) async fn authenticate(&mut self) -> Result<(Session, Joined), Why> {
        let ours = self.greet().await?;
        let theirs = self.node_hello().await?;
        let f = &theirs.hello.facts;
        let node = NodeId::try_from(f.node).unwrap_or(0);
        let version = self.agree_version(node, f.ver).await?;
        let (passkey, transcript, registered) = self.prove(node, &ours, &theirs).await?;
        let facts = match Facts::of(&registered, &theirs.hello) {
            Ok(facts) => facts,
            Err(text) => {
                tracing::warn!(node, "node refused: {text}");
                self.bye(ByeCode::Facts, &text).await?;
                return Err(text);
            }
        };
        let info = self.connected_node(node, &theirs.hello, &facts, version);
        let registration = match self.hub.register(info, registered.capacity_limit) {
            Ok(r) => r,
            Err(d) => {
                let text = format!(
                    "this node already has a live control connection (heard {} ms ago); \
                     retry after two keep-alive intervals of its silence",
                    d.silent_ms
                );
                tracing::warn!(node, "second control connection refused: {text}");
                self.bye(ByeCode::Duplicate, &text).await?;
                return Err(text);
            }
        };
        let keys = SessionKeys::derive(&passkey, &transcript);
        self.auth = Some(FrameAuth::new(&keys, Role::Gateway));
        if let Err(why) = self.welcome(&passkey, &transcript, version).await {
            self.hub.deregister(node, registration.conn);
            return Err(why);
        }
        self.reader.set_max_frame(self.hub.inner.config.max_frame);
        let data_addr = SocketAddr::new(self.peer.ip(), theirs.hello.data_port.unwrap_or(0));
        tracing::info!(node, zone = %facts.zone, data = ?data_addr, "node connected");
        Ok((Session { node, data_addr }, registration))
    }

    /// Reads the node's BEP 3 handshake; sends ours and our extended handshake.
    async fn greet(&mut self) -> Result<Greeting, Why> {
        let theirs = self.reader.handshake().await.map_err(|e| e.to_string())?;
        theirs.check_control().map_err(|e| e.to_string())?;
        let nonce = auth::fresh_nonce();
        let mut peer_id = *b"-RG0100-............";
        peer_id[8..].copy_from_slice(&auth::fresh_nonce()[..12]);
        let hello = GatewayHello {
            ext_id: self.hub.inner.config.ext_id,
            client: Some(CLIENT.into()),
            ver: PROTOCOL_VERSION,
            nonce,
        };
        let payload = hello.to_payload();
        let mut out = Handshake::control(peer_id).to_bytes().to_vec();
        out.extend(frame::extended(0, &payload));
        self.write(&out).await?;
        Ok(Greeting { nonce, payload })
    }

    /// The node's extended handshake. Until it arrives everything else is ignored (a stock
    /// client may send its bitfield first); a peer that does not speak rt_placement must not be
    /// sent our messages, so it is just closed.
    async fn node_hello(&mut self) -> Result<NodeGreeting, Why> {
        let payload = loop {
            match self.reader.frame().await.map_err(|e| e.to_string())? {
                Frame::Extended { id: 0, payload } => break payload,
                _ => continue,
            }
        };
        let hello = NodeHello::parse(&payload).map_err(|e| e.to_string())?;
        self.node_ext = hello.ext_id;
        Ok(NodeGreeting { hello, payload })
    }

    /// The version both sides speak, or `bye version`.
    async fn agree_version(&mut self, node: NodeId, theirs: u64) -> Result<u64, Why> {
        if theirs >= MIN_VERSION {
            return Ok(theirs.min(PROTOCOL_VERSION));
        }
        let text = format!("this gateway speaks versions {MIN_VERSION} to {PROTOCOL_VERSION}");
        self.bye(ByeCode::Version, &text).await?;
        Err(format!("node {node} speaks version {theirs}"))
    }

    /// Checks the node's proof over the transcript; the passkey, the transcript and the facts the
    /// operator registered, or `bye auth`.
    async fn prove(
        &mut self,
        node: NodeId,
        ours: &Greeting,
        theirs: &NodeGreeting,
    ) -> Result<(String, Transcript, Registration), Why> {
        let standing = self.hub.inner.registry.passkey_of(node).await;
        // A database fault is ours, not the node's: close without `bye auth`, which would make
        // the node pause for ten minutes.
        let standing = standing.map_err(|e| format!("looking node {node} up failed: {e}"))?;
        let unsigned = NodeHello::unsigned_payload(&theirs.payload).map_err(|e| e.to_string())?;
        let f = &theirs.hello.facts;
        let t = Transcript::new(&ours.nonce, &f.nonce, &ours.payload, &unsigned);
        match standing {
            NodePasskey::Valid(k, r) if auth::verify_node_proof(&k, &t, &f.proof) => {
                self.hub.inner.registry.remember_node(node, &k);
                Ok((k, t, r))
            }
            standing => {
                tracing::warn!(node = f.node, ?standing, "control authentication failed");
                let text = "unknown node, revoked passkey or wrong proof";
                self.bye(ByeCode::Auth, text).await?;
                Err(format!("node {} failed authentication", f.node))
            }
        }
    }

    fn connected_node(
        &self,
        node: NodeId,
        hello: &NodeHello,
        facts: &Facts,
        version: u64,
    ) -> ConnectedNode {
        let data_addr = hello.data_port.map(|p| SocketAddr::new(self.peer.ip(), p));
        ConnectedNode {
            node,
            peer_addr: self.peer,
            data_addr,
            zone: facts.zone.clone(),
            capacity: facts.capacity,
            free: facts.free,
            client: hello.client.clone(),
            version,
            connected_since: SystemTime::now(),
            last_report_at: None,
            report: None,
            held: None,
        }
    }

    /// `welcome`: our proof and the intervals; the first tagged frame.
    async fn welcome(&mut self, passkey: &str, t: &Transcript, version: u64) -> Result<(), Why> {
        let config = &self.hub.inner.config;
        let welcome = Message::Welcome(Welcome {
            proof: auth::gateway_proof(passkey, t),
            ver: version,
            report_interval: config.report_interval_secs,
            keepalive_interval: config.keepalive_interval_secs,
        });
        self.send(welcome).await.map(|_| ())
    }
}

/// The facts a node is placed by: the registry's where the operator assigned them, the node's
/// claims (already covered by its proof) only within them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facts {
    pub zone: String,
    pub capacity: u64,
    pub free: u64,
}

impl Facts {
    /// A registered zone is the node's zone: a claim of another one is refused (the node's
    /// configuration or its operator's registration is wrong, and someone must look), an empty
    /// claim takes it. A node with no registered zone is in the empty zone whatever it claims,
    /// so unverified zones never count for zone spread. A claimed capacity above the registered
    /// limit is cut to it, and free space to the capacity.
    pub(super) fn of(registered: &Registration, hello: &NodeHello) -> Result<Facts, Why> {
        let f = &hello.facts;
        let zone = match &registered.zone {
            Some(z) if f.zone.is_empty() || f.zone == *z => z.clone(),
            Some(z) => {
                return Err(format!(
                    "this node is registered in zone {z:?} but claims zone {:?}",
                    f.zone
                ))
            }
            None => {
                if !f.zone.is_empty() {
                    tracing::info!(claim = %f.zone, "no zone registered for this node: its claim is not used");
                }
                String::new()
            }
        };
        let capacity = registered
            .capacity_limit
            .map_or(f.capacity, |limit| f.capacity.min(limit));
        if capacity < f.capacity {
            tracing::info!(
                claim = f.capacity,
                capacity,
                "claimed capacity cut to the registered limit"
            );
        }
        Ok(Facts {
            zone,
            capacity,
            free: f.free.min(capacity),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raidtorrent_proto::NodeFacts;

    fn hello(zone: &str, capacity: u64, free: u64) -> NodeHello {
        NodeHello {
            ext_id: 1,
            client: None,
            data_port: None,
            facts: NodeFacts {
                ver: 2,
                node: 1,
                nonce: [0; 32],
                proof: [0; 32],
                zone: zone.into(),
                capacity,
                free,
            },
        }
    }

    #[test]
    fn registered_facts_win_and_claims_are_checked_against_them() {
        let paris = Registration {
            zone: Some("eu/paris".into()),
            capacity_limit: Some(100),
        };
        let facts = |zone, capacity, free| Facts {
            zone: String::from(zone),
            capacity,
            free,
        };
        assert_eq!(
            Facts::of(&paris, &hello("eu/paris", 50, 40)),
            Ok(facts("eu/paris", 50, 40))
        );
        assert_eq!(
            Facts::of(&paris, &hello("", 500, 400)),
            Ok(facts("eu/paris", 100, 100))
        );
        let refused = Facts::of(&paris, &hello("us/east", 50, 40)).unwrap_err();
        assert!(
            refused.contains("registered in zone \"eu/paris\""),
            "{refused}"
        );
        let unassigned = Registration::default();
        assert_eq!(
            Facts::of(&unassigned, &hello("us/east", 500, 400)),
            Ok(facts("", 500, 400))
        );
    }
}
