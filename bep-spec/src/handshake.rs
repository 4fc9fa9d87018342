//! The BEP 3 handshake that opens a control connection.

use crate::{Parsed, CONTROL_INFO_HASH};

const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 68;
/// Reserved byte and mask of the BEP 10 extension protocol bit (bit 20 from the right).
const EXTENSION_BYTE: usize = 5;
const EXTENSION_MASK: u8 = 0x10;

/// A BEP 3 handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

/// Why a handshake does not open a control connection. Each ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a BitTorrent handshake (protocol string length {0})")]
    NotBitTorrent(u8),
    #[error("not a BitTorrent handshake (protocol string {0:?})")]
    BadProtocol(String),
    #[error("info-hash {0} is not the control info-hash")]
    NotControl(String),
    #[error("the BEP 10 extension bit is not set")]
    NoExtensionBit,
}

impl Handshake {
    /// Our handshake: the control info-hash with the extension bit set.
    pub fn control(peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[EXTENSION_BYTE] |= EXTENSION_MASK;
        Handshake {
            reserved,
            info_hash: CONTROL_INFO_HASH,
            peer_id,
        }
    }

    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BYTE] & EXTENSION_MASK != 0
    }

    /// Parses any BEP 3 handshake at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Parsed<Self>, HandshakeError> {
        let Some(&pstrlen) = buf.first() else {
            return Ok(Parsed::Incomplete(HANDSHAKE_LEN));
        };
        if pstrlen as usize != PROTOCOL.len() {
            return Err(HandshakeError::NotBitTorrent(pstrlen));
        }
        // Judge the protocol string as soon as it is here, so a stray client is turned away early.
        let have = buf.len().min(1 + PROTOCOL.len());
        if buf[1..have] != PROTOCOL[..have - 1] {
            return Err(HandshakeError::BadProtocol(
                String::from_utf8_lossy(&buf[1..have]).into_owned(),
            ));
        }
        if buf.len() < HANDSHAKE_LEN {
            return Ok(Parsed::Incomplete(HANDSHAKE_LEN));
        }
        let mut h = Handshake {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        h.reserved.copy_from_slice(&buf[20..28]);
        h.info_hash.copy_from_slice(&buf[28..48]);
        h.peer_id.copy_from_slice(&buf[48..68]);
        Ok(Parsed::Done(h, HANDSHAKE_LEN))
    }

    /// Checks that a parsed handshake opens a control connection.
    pub fn check_control(&self) -> Result<(), HandshakeError> {
        if self.info_hash != CONTROL_INFO_HASH {
            return Err(HandshakeError::NotControl(hex(&self.info_hash)));
        }
        if !self.supports_extensions() {
            return Err(HandshakeError::NoExtensionBit);
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_handshake_matches_the_bep_example() {
        let h = Handshake::control(*b"-RT0100-abcdefghijkl");
        let bytes = h.to_bytes();
        assert_eq!(
            ::hex::encode(&bytes[..48]),
            "13426974546f7272656e742070726f746f636f6c0000000000100000\
             44ce368ba920d9d2c307ee85d3443848befc236f"
        );
        assert_eq!(h.check_control(), Ok(()));
    }

    #[test]
    fn wrong_handshakes_are_named() {
        assert_eq!(Handshake::parse(b""), Ok(Parsed::Incomplete(68)));
        assert_eq!(
            Handshake::parse(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::NotBitTorrent(b'G'))
        );
        assert_eq!(
            Handshake::parse(b"\x13BitTorrent protocox"),
            Err(HandshakeError::BadProtocol("BitTorrent protocox".into()))
        );
        assert_eq!(Handshake::parse(b"\x13BitTor"), Ok(Parsed::Incomplete(68)));
        let mut other = Handshake::control([1; 20]);
        other.info_hash = [0xab; 20];
        assert_eq!(
            other.check_control(),
            Err(HandshakeError::NotControl("ab".repeat(20)))
        );
        let mut plain = Handshake::control([1; 20]);
        plain.reserved = [0; 8];
        assert_eq!(plain.check_control(), Err(HandshakeError::NoExtensionBit));
    }

    proptest! {
        #[test]
        fn handshakes_round_trip(reserved: [u8; 8], info_hash: [u8; 20], peer_id: [u8; 20], tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let h = Handshake { reserved, info_hash, peer_id };
            let mut bytes = h.to_bytes().to_vec();
            bytes.extend(&tail);
            prop_assert_eq!(Handshake::parse(&bytes), Ok(Parsed::Done(h, 68)));
            for cut in 0..68 {
                prop_assert_eq!(Handshake::parse(&bytes[..cut]), Ok(Parsed::Incomplete(68)));
            }
        }
    }
}
