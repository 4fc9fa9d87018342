//! The credentials of RT-0002 section 4.
//!
//! - Each side proves it knows the node's passkey with an HMAC-SHA256 over the handshake
//!   [`Transcript`] (both fresh nonces and digests of both extended handshakes), under a label of
//!   its own role so one side's proof never passes as the other's. So the node's facts (zone,
//!   capacity, free space, data port, everything in its extended handshake) are covered by its
//!   proof, and a recorded handshake is worthless on another connection.
//! - From the same transcript both sides derive one key per direction ([`SessionKeys`]) that
//!   authenticates every later frame (`crate::session`).
//! - The passkey itself never crosses the control connection, and never appears in an announce
//!   URL either: those carry the node's [`announce_token`], a one-way function of the passkey that
//!   opens no control connection.

use ring::{digest, hkdf, hmac};

pub const NONCE_LEN: usize = 32;
pub const PROOF_LEN: usize = 32;
/// Length of each session key.
pub const KEY_LEN: usize = 32;
const NODE_LABEL: &[u8] = b"raidtorrent control v2 node";
const GATEWAY_LABEL: &[u8] = b"raidtorrent control v2 gateway";
const GATEWAY_TO_NODE: &[u8] = b"raidtorrent control v2 gateway to node";
const NODE_TO_GATEWAY: &[u8] = b"raidtorrent control v2 node to gateway";
const ANNOUNCE_LABEL: &[u8] = b"raidtorrent announce v1";

pub type Nonce = [u8; NONCE_LEN];
pub type Proof = [u8; PROOF_LEN];
pub type Key = [u8; KEY_LEN];

/// What both proofs and both session keys are bound to: `gateway nonce ‖ node nonce ‖
/// SHA-256(gateway's extended handshake payload) ‖ SHA-256(node's extended handshake payload with
/// the 32 bytes of its proof set to zero)`, 128 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Transcript([u8; 128]);

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcript(..)")
    }
}

impl Transcript {
    /// `node_hello_unsigned` is the node's extended handshake payload with its proof zeroed
    /// (`NodeHello::unsigned_payload` on the gateway's side, `NodeHello::to_payload` of a hello
    /// whose proof is still all zeros on the node's).
    pub fn new(
        gateway_nonce: &Nonce,
        node_nonce: &Nonce,
        gateway_hello: &[u8],
        node_hello_unsigned: &[u8],
    ) -> Self {
        let mut t = [0u8; 128];
        t[..32].copy_from_slice(gateway_nonce);
        t[32..64].copy_from_slice(node_nonce);
        t[64..96].copy_from_slice(digest::digest(&digest::SHA256, gateway_hello).as_ref());
        t[96..].copy_from_slice(digest::digest(&digest::SHA256, node_hello_unsigned).as_ref());
        Transcript(t)
    }

    fn nonces(&self) -> &[u8] {
        &self.0[..64]
    }
}

fn mac(passkey: &str, label: &[u8], t: &Transcript) -> Proof {
    let key = hmac::Key::new(hmac::HMAC_SHA256, passkey.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(&t.0);
    ctx.sign()
        .as_ref()
        .try_into()
        .expect("HMAC-SHA256 is 32 bytes")
}

fn verify(passkey: &str, label: &[u8], t: &Transcript, proof: &Proof) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, passkey.as_bytes());
    hmac::verify(&key, &[label, &t.0].concat(), proof).is_ok()
}

/// What the node sends in its extended handshake (`rt.proof`).
pub fn node_proof(passkey: &str, t: &Transcript) -> Proof {
    mac(passkey, NODE_LABEL, t)
}

/// What the gateway sends in `welcome`.
pub fn gateway_proof(passkey: &str, t: &Transcript) -> Proof {
    mac(passkey, GATEWAY_LABEL, t)
}

/// Constant-time check of a node's proof.
pub fn verify_node_proof(passkey: &str, t: &Transcript, proof: &Proof) -> bool {
    verify(passkey, NODE_LABEL, t, proof)
}

/// Constant-time check of a gateway's proof.
pub fn verify_gateway_proof(passkey: &str, t: &Transcript, proof: &Proof) -> bool {
    verify(passkey, GATEWAY_LABEL, t, proof)
}

/// The two keys of one connection: HKDF-SHA256 (RFC 5869) with salt = both nonces, input key =
/// the passkey, info = the direction's label ‖ the transcript, 32 bytes each. Equivalently
/// `PRK = HMAC(gateway nonce ‖ node nonce, passkey)` and `key = HMAC(PRK, label ‖ transcript ‖
/// 0x01)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub gateway_to_node: Key,
    pub node_to_gateway: Key,
}

impl std::fmt::Debug for SessionKeys {
    // Keys are secrets: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl SessionKeys {
    pub fn derive(passkey: &str, t: &Transcript) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, t.nonces()).extract(passkey.as_bytes());
        let expand = |label: &[u8]| {
            let info = [label, &t.0[..]];
            let mut key = [0u8; KEY_LEN];
            prk.expand(&info, KeyLen)
                .and_then(|okm| okm.fill(&mut key))
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            key
        };
        SessionKeys {
            gateway_to_node: expand(GATEWAY_TO_NODE),
            node_to_gateway: expand(NODE_TO_GATEWAY),
        }
    }
}

/// The node's announce token (RT-0002 "Tracker additions"): `hex(HMAC-SHA256(key = passkey, msg =
/// "raidtorrent announce v1"))`, 64 lowercase hex characters. It goes in announce URLs and in the
/// torrents a node is handed; whoever reads it can announce as the node, but cannot derive the
/// passkey from it, so it opens no control connection.
pub fn announce_token(passkey: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, passkey.as_bytes());
    hmac::sign(&key, ANNOUNCE_LABEL)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random nonce.
pub fn fresh_nonce() -> Nonce {
    use ring::rand::SecureRandom;
    let mut n = [0u8; NONCE_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut n)
        .expect("the system random number generator is available");
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn transcript() -> Transcript {
        Transcript::new(&[1; 32], &[2; 32], b"gateway hello", b"node hello")
    }

    #[test]
    fn announce_tokens_are_a_keyed_one_way_function_of_the_passkey() {
        let token = announce_token(KEY);
        // Computed with Python's hmac module, for implementations in other languages.
        assert_eq!(
            token,
            "188d8f4faf69819ed446ac4f21427f06249960e00b11fda285e8da72977f8f98"
        );
        assert_ne!(token, announce_token("0123456789abcdef0123456789abcdee"));
        assert!(!token.contains(KEY));
    }

    #[test]
    fn proofs_bind_passkey_role_nonces_and_both_hellos() {
        let t = transcript();
        let p = node_proof(KEY, &t);
        assert!(verify_node_proof(KEY, &t, &p));
        assert!(!verify_node_proof(
            "0123456789abcdef0123456789abcdee",
            &t,
            &p
        ));
        let others = [
            Transcript::new(&[2; 32], &[1; 32], b"gateway hello", b"node hello"),
            Transcript::new(&[3; 32], &[2; 32], b"gateway hello", b"node hello"),
            Transcript::new(&[1; 32], &[2; 32], b"gateway hellO", b"node hello"),
            Transcript::new(&[1; 32], &[2; 32], b"gateway hello", b"node hellO"),
        ];
        for other in &others {
            assert!(!verify_node_proof(KEY, other, &p));
        }
        // A node's proof replayed as the gateway's does not pass.
        assert!(!verify_gateway_proof(KEY, &t, &p));
        let gp = gateway_proof(KEY, &t);
        assert!(verify_gateway_proof(KEY, &t, &gp));
        // Fixed vectors (computed with Python's hmac module), for implementations in other languages.
        assert_eq!(
            ::hex::encode(p),
            "e75b224adfa585ef79b3cf95a748462335ccbc4179a4af90a00093601d95948b"
        );
        assert_eq!(
            ::hex::encode(gp),
            "fd8267f86e645b932afdcbaef5decdf17616ecd2a6003982cd12aedfc4c78732"
        );
    }

    #[test]
    fn session_keys_are_hkdf_per_direction() {
        let keys = SessionKeys::derive(KEY, &transcript());
        assert_eq!(
            ::hex::encode(keys.gateway_to_node),
            "c7b7bf7f73349828841eba335e9adbe47369afce5bf3d0f4ad1a31544499cd14"
        );
        assert_eq!(
            ::hex::encode(keys.node_to_gateway),
            "e7494ae2bb0d33820d91f182584e1c2b971aaa0256032f594ab1eb3327fef3fc"
        );
        let other = Transcript::new(&[1; 32], &[2; 32], b"gateway hello", b"node hellO");
        assert_ne!(SessionKeys::derive(KEY, &other), keys);
        assert_eq!(format!("{keys:?}"), "SessionKeys(..)");
    }
}
