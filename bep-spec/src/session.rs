//! Authenticated frames after the handshake (RT-0002 section 4, "Frame authentication").
//!
//! Every extended message a side sends from `welcome` on (gateway) or after its extended
//! handshake (node) carries a 16-byte tag at the end of its payload:
//!
//! ```text
//! length (4, big-endian, counts the tag) ‖ 20 ‖ extended id ‖ payload ‖ tag (16)
//! tag = first 16 bytes of HMAC-SHA256(direction key, n as 8 bytes big-endian ‖ 20 ‖ extended id ‖ payload)
//! ```
//!
//! `n` counts the authenticated frames already sent in that direction on this connection (0 for
//! the first). It is never sent: the receiver counts too, so a frame that was forged, altered,
//! replayed, dropped or reordered fails its tag, and the receiver closes the connection.
//! Keep-alives and other message ids carry no tag and mean nothing.

use ring::hmac;

use crate::auth::SessionKeys;
use crate::frame::{self, EXTENDED};

/// Bytes of tag at the end of every authenticated extended message.
pub const TAG_LEN: usize = 16;

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Node,
}

/// Why a received frame is not accepted; the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameAuthError {
    #[error("extended message of {0} bytes is too short to carry its tag")]
    Short(usize),
    #[error("authenticated frame {0} failed its tag (forged, altered, replayed or out of order)")]
    BadTag(u64),
}

/// One connection's frame authentication: the two direction keys and the two counters.
pub struct FrameAuth {
    send: hmac::Key,
    recv: hmac::Key,
    sent: u64,
    received: u64,
}

impl std::fmt::Debug for FrameAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameAuth")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

fn tag(key: &hmac::Key, n: u64, ext_id: u8, payload: &[u8]) -> [u8; TAG_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&n.to_be_bytes());
    ctx.update(&[EXTENDED, ext_id]);
    ctx.update(payload);
    let full = ctx.sign();
    full.as_ref()[..TAG_LEN]
        .try_into()
        .expect("HMAC-SHA256 is longer than a tag")
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8; TAG_LEN], b: &[u8]) -> bool {
    b.len() == TAG_LEN && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FrameAuth {
    pub fn new(keys: &SessionKeys, role: Role) -> Self {
        let (send, recv) = match role {
            Role::Gateway => (&keys.gateway_to_node, &keys.node_to_gateway),
            Role::Node => (&keys.node_to_gateway, &keys.gateway_to_node),
        };
        FrameAuth {
            send: hmac::Key::new(hmac::HMAC_SHA256, send),
            recv: hmac::Key::new(hmac::HMAC_SHA256, recv),
            sent: 0,
            received: 0,
        }
    }

    /// The whole frame of an authenticated extended message.
    pub fn seal(&mut self, ext_id: u8, payload: &[u8]) -> Vec<u8> {
        let t = tag(&self.send, self.sent, ext_id, payload);
        self.sent += 1;
        let mut body = Vec::with_capacity(payload.len() + TAG_LEN);
        body.extend_from_slice(payload);
        body.extend_from_slice(&t);
        frame::extended(ext_id, &body)
    }

    /// Checks the tag at the end of a received extended message's payload (as
    /// [`frame::decode`] gives it) and returns the payload without it.
    pub fn open<'p>(&mut self, ext_id: u8, payload: &'p [u8]) -> Result<&'p [u8], FrameAuthError> {
        let at = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(FrameAuthError::Short(payload.len()))?;
        let (body, got) = payload.split_at(at);
        if !same(&tag(&self.recv, self.received, ext_id, body), got) {
            return Err(FrameAuthError::BadTag(self.received));
        }
        self.received += 1;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Transcript;
    use crate::{Frame, Parsed};
    use proptest::prelude::*;

    fn pair() -> (FrameAuth, FrameAuth) {
        let t = Transcript::new(&[1; 32], &[2; 32], b"gateway hello", b"node hello");
        let keys = SessionKeys::derive("0123456789abcdef0123456789abcdef", &t);
        (
            FrameAuth::new(&keys, Role::Gateway),
            FrameAuth::new(&keys, Role::Node),
        )
    }

    fn payload_of(bytes: &[u8]) -> (u8, Vec<u8>) {
        match frame::decode(bytes) {
            Ok(Parsed::Done(Frame::Extended { id, payload }, used)) if used == bytes.len() => {
                (id, payload)
            }
            other => panic!("not one extended frame: {other:?}"),
        }
    }

    #[test]
    fn the_bep_example_tag() {
        let (_, mut node) = pair();
        let ping = node.seal(1, b"d3:seqi1e1:t4:pinge");
        // Computed with Python's hmac module from the keys of `auth`'s test vector.
        assert_eq!(
            ::hex::encode(&ping[ping.len() - TAG_LEN..]),
            "bdc08c5dd482cc915f5c2f200d33e6a6"
        );
        assert_eq!(
            u32::from_be_bytes(ping[..4].try_into().unwrap()),
            2 + 19 + 16
        );
        let again = node.seal(1, b"d3:seqi1e1:t4:pinge");
        assert_eq!(
            ::hex::encode(&again[again.len() - TAG_LEN..]),
            "a61f36863160ed5d7f3919fccfa02079"
        );
    }

    #[test]
    fn forged_replayed_reordered_and_reflected_frames_fail() {
        let (mut gw, mut node) = pair();
        let first = node.seal(3, b"one");
        let second = node.seal(3, b"two");
        // Out of order.
        let (id, p) = payload_of(&second);
        assert_eq!(gw.open(id, &p), Err(FrameAuthError::BadTag(0)));
        let (id, p) = payload_of(&first);
        assert_eq!(gw.open(id, &p), Ok(&b"one"[..]));
        // Replayed.
        assert_eq!(gw.open(id, &p), Err(FrameAuthError::BadTag(1)));
        // Altered payload, altered id, altered tag.
        let (id, mut p) = payload_of(&second);
        p[0] ^= 1;
        assert!(gw.open(id, &p).is_err());
        p[0] ^= 1;
        assert!(gw.open(id + 1, &p).is_err());
        let last = p.len() - 1;
        p[last] ^= 0x80;
        assert!(gw.open(id, &p).is_err());
        p[last] ^= 0x80;
        assert_eq!(gw.open(id, &p), Ok(&b"two"[..]));
        // Reflected: a node's frame sent back to the node.
        let (id, p) = payload_of(&node.seal(3, b"three"));
        assert!(node.open(id, &p).is_err());
        assert_eq!(gw.open(id, &[0; 15]), Err(FrameAuthError::Short(15)));
    }

    proptest! {
        #[test]
        fn sealed_frames_open_in_order(msgs in proptest::collection::vec((1u8.., proptest::collection::vec(any::<u8>(), 0..200)), 1..8)) {
            let (mut gw, mut node) = pair();
            for (ext, msg) in &msgs {
                let (id, p) = payload_of(&gw.seal(*ext, msg));
                prop_assert_eq!(node.open(id, &p), Ok(&msg[..]));
                let (id, p) = payload_of(&node.seal(*ext, msg));
                prop_assert_eq!(gw.open(id, &p), Ok(&msg[..]));
            }
        }

        #[test]
        fn junk_never_opens(ext: u8, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (mut gw, _) = pair();
            prop_assert!(gw.open(ext, &junk).is_err());
        }
    }
}
