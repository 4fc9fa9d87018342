//! The proofs of RT-0002 section 4: each side shows it knows the node's passkey with an HMAC-SHA256 over
//! both sides' fresh nonces, under a label of its own role so one side's proof never passes as the
//! other's. The passkey itself never crosses the control connection.

use ring::hmac;

pub const NONCE_LEN: usize = 32;
pub const PROOF_LEN: usize = 32;
const NODE_LABEL: &[u8] = b"raidtorrent control v1 node";
const GATEWAY_LABEL: &[u8] = b"raidtorrent control v1 gateway";

pub type Nonce = [u8; NONCE_LEN];
pub type Proof = [u8; PROOF_LEN];

fn mac(passkey: &str, label: &[u8], first: &Nonce, second: &Nonce) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, passkey.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(first);
    ctx.update(second);
    ctx.sign()
}

fn to_proof(tag: hmac::Tag) -> Proof {
    tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
}

fn verify(passkey: &str, label: &[u8], first: &Nonce, second: &Nonce, proof: &Proof) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, passkey.as_bytes());
    hmac::verify(&key, &[label, first, second].concat(), proof).is_ok()
}

/// What the node sends in its extended handshake.
pub fn node_proof(passkey: &str, gateway_nonce: &Nonce, node_nonce: &Nonce) -> Proof {
    to_proof(mac(passkey, NODE_LABEL, gateway_nonce, node_nonce))
}

/// What the gateway sends in `welcome`.
pub fn gateway_proof(passkey: &str, node_nonce: &Nonce, gateway_nonce: &Nonce) -> Proof {
    to_proof(mac(passkey, GATEWAY_LABEL, node_nonce, gateway_nonce))
}

/// Constant-time check of a node's proof.
pub fn verify_node_proof(
    passkey: &str,
    gateway_nonce: &Nonce,
    node_nonce: &Nonce,
    proof: &Proof,
) -> bool {
    verify(passkey, NODE_LABEL, gateway_nonce, node_nonce, proof)
}

/// Constant-time check of a gateway's proof.
pub fn verify_gateway_proof(
    passkey: &str,
    node_nonce: &Nonce,
    gateway_nonce: &Nonce,
    proof: &Proof,
) -> bool {
    verify(passkey, GATEWAY_LABEL, node_nonce, gateway_nonce, proof)
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

    #[test]
    fn proofs_bind_passkey_role_and_both_nonces() {
        let key = "0123456789abcdef0123456789abcdef";
        let (g, n) = ([1u8; 32], [2u8; 32]);
        let p = node_proof(key, &g, &n);
        assert!(verify_node_proof(key, &g, &n, &p));
        assert!(!verify_node_proof(
            "0123456789abcdef0123456789abcdee",
            &g,
            &n,
            &p
        ));
        assert!(!verify_node_proof(key, &n, &g, &p));
        assert!(!verify_node_proof(key, &[3; 32], &n, &p));
        // A node's proof replayed as the gateway's does not pass.
        assert!(!verify_gateway_proof(key, &g, &n, &p));
        assert!(!verify_gateway_proof(key, &n, &g, &p));
        let gp = gateway_proof(key, &n, &g);
        assert!(verify_gateway_proof(key, &n, &g, &gp));
        // Fixed vectors (computed with Python's hmac module), for implementations in other languages.
        assert_eq!(
            hex::encode(p),
            "2996b8a52a83d5deaf65971cea69fcd520aef8ebf80d0daa0c4c3adc48f0e34e"
        );
        assert_eq!(
            hex::encode(gp),
            "43358d3e93cf0c6be7c6120dd5558ce2c210a8a3569477d26c47f29c4f352304"
        );
    }
}
