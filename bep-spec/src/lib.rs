//! The wire format of raidtorrent's placement extension (BEP RT-0002, `bep-rt-0002-placement-extension.md`
//! beside this crate): the control connection a node dials to its gateway.
//!
//! Everything here is pure: bytes in, typed values out, and back. Sockets, timers and tokio belong to
//! the node (`raidtorrent-peer`) and the gateway; both drive the same types:
//!
//! 1. [`Handshake`]: the 68-byte BEP 3 handshake on [`CONTROL_INFO_HASH`] with the BEP 10 bit;
//! 2. [`frame::decode`]: length-prefixed peer-wire frames from a byte buffer (fits a tokio `Decoder`);
//! 3. [`GatewayHello`] / [`NodeHello`]: the BEP 10 extended handshakes, with [`auth`] proofs over
//!    the handshake transcript and the session keys derived from it;
//! 4. [`session::FrameAuth`]: the tag every extended message carries after the handshake;
//! 5. [`Envelope`] of a [`Message`]: every placement message, with [`Message::Unknown`] for types a
//!    newer peer may send.
//!
//! Invariants: every parser accepts any byte string without panicking and with bounded allocation
//! (frames above [`MAX_FRAME`] are refused before their bytes are buffered); every encoded value
//! parses back to itself; unknown keys are ignored and unknown message types are a variant, never an
//! error, so old and new peers keep talking.
//!
//! ```
//! use raidtorrent_proto::{frame, Envelope, Message, Parsed};
//! use raidtorrent_codec::InfoHash;
//!
//! let drop = Envelope { seq: 7, body: Message::Drop { ih: InfoHash([9; 20]) } };
//! let bytes = frame::extended(1, &drop.to_payload());
//! let Parsed::Done(frame::Frame::Extended { id: 1, payload }, used) = frame::decode(&bytes).unwrap()
//! else { panic!() };
//! assert_eq!(used, bytes.len());
//! assert_eq!(Envelope::parse(&payload).unwrap(), drop);
//! ```

pub mod auth;
mod bencode_out;
mod fields;
pub mod frame;
mod handshake;
mod held;
mod hello;
mod message;
pub mod session;
pub mod sigv4;
pub mod size;

pub use fields::FieldError;
pub use frame::{Frame, FrameError};
pub use handshake::{Handshake, HandshakeError};
pub use held::HeldChange;
pub use hello::{GatewayHello, HelloError, NodeFacts, NodeHello};
pub use message::{
    ByeCode, Envelope, EnvelopeProblem, Hold, Message, MessageError, MetainfoSource, RefuseCode,
    Report, Transfer, Welcome, DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_REPORT_INTERVAL,
};
pub use raidtorrent_codec::InfoHash;

/// SHA-1 of the ASCII string `raidtorrent control v1`: the info-hash of every control connection.
pub const CONTROL_INFO_HASH: [u8; 20] = [
    0x44, 0xce, 0x36, 0x8b, 0xa9, 0x20, 0xd9, 0xd2, 0xc3, 0x07, 0xee, 0x85, 0xd3, 0x44, 0x38, 0x48,
    0xbe, 0xfc, 0x23, 0x6f,
];

/// The BEP 10 extension name both sides advertise in `m`.
pub const EXTENSION_NAME: &str = "rt_placement";

/// The placement protocol version this crate speaks: 2, with proofs over the handshake
/// transcript and authenticated frames. Version 1 (proofs over the nonces alone, frames in the
/// clear) is no longer spoken.
pub const PROTOCOL_VERSION: u64 = 2;

/// Largest frame (length prefix value) accepted: a 32 MiB shard metainfo plus the envelope.
pub const MAX_FRAME: usize = 34 << 20;

/// Outcome of parsing from a buffer that may hold only part of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// More bytes are needed: at least this many in total.
    Incomplete(usize),
    /// A value and how many bytes of the buffer it used.
    Done(T, usize),
}

#[cfg(test)]
mod tests {
    use sha1::{Digest, Sha1};

    #[test]
    fn control_info_hash_is_the_sha1_of_its_label() {
        let digest: [u8; 20] = Sha1::digest(b"raidtorrent control v1").into();
        assert_eq!(digest, super::CONTROL_INFO_HASH);
    }
}
