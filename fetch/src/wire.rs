//! BEP 3 peer-wire messages after the handshake: a 4-byte big-endian length, then that many bytes
//! (`0` is a keep-alive, otherwise the first byte is the message id).
//!
//! Pure: [`decode`] reads one message from the start of a byte buffer that may hold only part of it
//! and says how many bytes it used; [`Message::encode`] writes one back. The handshake is
//! [`raidtorrent_proto::Handshake`], which parses and writes any BEP 3 handshake.
//!
//! Invariants: the decoder accepts any byte string without panicking; a frame's length is judged
//! before its body is buffered, so a peer cannot make the caller hold more than the cap; every
//! encoded message decodes back to itself; a message id this module does not know is
//! [`Message::Unknown`], not an error.

/// Re-exported so that callers of [`decode`] need no other crate.
pub use raidtorrent_proto::Parsed;

/// Largest frame (length prefix value) [`decode`] accepts: enough for the bitfield of a shard of
/// 16 million pieces and for any block a client sends.
pub const MAX_FRAME: u32 = 2 << 20;

/// Largest block a `piece` message may carry. Clients request 16 KiB; some accept up to 128 KiB.
pub const MAX_BLOCK: u32 = 128 << 10;

/// Message ids (BEP 3, and BEP 10 for `extended`).
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const EXTENDED: u8 = 20;
}

/// A block of a piece: what `request` and `cancel` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

/// One peer-wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    /// One bit per piece, high bit of the first byte is piece 0.
    Bitfield(Vec<u8>),
    Request(BlockRef),
    Piece {
        index: u32,
        begin: u32,
        data: Vec<u8>,
    },
    Cancel(BlockRef),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 10: `id` 0 is the extended handshake, others are the receiver's advertised ids.
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// Any other message id (for instance the BEP 6 fast extension): skipped by the receiver.
    Unknown {
        id: u8,
        payload: Vec<u8>,
    },
}

/// Why the byte stream cannot go on: the sender is broken or hostile, and the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix is above the cap; judged before the body arrives.
    #[error("frame of {len} bytes is above the {max}-byte limit")]
    FrameTooLarge { len: u32, max: u32 },
    /// A message of fixed size with another length.
    #[error("{message} message of {len} bytes (must be {expected})")]
    BadLength {
        message: &'static str,
        len: u32,
        expected: u32,
    },
    /// A message too short to hold its own header.
    #[error("{message} message of {len} bytes (at least {min})")]
    TooShort {
        message: &'static str,
        len: u32,
        min: u32,
    },
    /// A message longer than its type allows (a block above [`MAX_BLOCK`]).
    #[error("{message} message of {len} bytes (at most {max})")]
    TooLongForType {
        message: &'static str,
        len: u32,
        max: u32,
    },
}

/// Parses one message from the start of `buf` with the [`MAX_FRAME`] cap.
pub fn decode(buf: &[u8]) -> Result<Parsed<Message>, WireError> {
    decode_with_limit(buf, MAX_FRAME)
}

/// Parses one message from the start of `buf`; a length prefix above `max` is refused at once.
pub fn decode_with_limit(buf: &[u8], max: u32) -> Result<Parsed<Message>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(Parsed::Incomplete(4));
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > max {
        return Err(WireError::FrameTooLarge { len, max });
    }
    let total = 4 + len as usize;
    let Some(body) = buf.get(4..total) else {
        return Ok(Parsed::Incomplete(total));
    };
    let Some((&kind, payload)) = body.split_first() else {
        return Ok(Parsed::Done(Message::KeepAlive, total));
    };
    Ok(Parsed::Done(parse_body(kind, payload, len)?, total))
}

fn parse_body(kind: u8, p: &[u8], len: u32) -> Result<Message, WireError> {
    let fixed = |message, expected: u32| {
        if len == expected {
            Ok(())
        } else {
            Err(WireError::BadLength {
                message,
                len,
                expected,
            })
        }
    };
    let be32 = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    let block = |p: &[u8]| BlockRef {
        index: be32(0),
        begin: be32(4),
        length: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    };
    Ok(match kind {
        id::CHOKE => fixed("choke", 1).map(|_| Message::Choke)?,
        id::UNCHOKE => fixed("unchoke", 1).map(|_| Message::Unchoke)?,
        id::INTERESTED => fixed("interested", 1).map(|_| Message::Interested)?,
        id::NOT_INTERESTED => fixed("not interested", 1).map(|_| Message::NotInterested)?,
        id::HAVE => fixed("have", 5).map(|_| Message::Have(be32(0)))?,
        id::BITFIELD => Message::Bitfield(p.to_vec()),
        id::REQUEST => fixed("request", 13).map(|_| Message::Request(block(p)))?,
        id::CANCEL => fixed("cancel", 13).map(|_| Message::Cancel(block(p)))?,
        id::PORT => fixed("port", 3).map(|_| Message::Port(u16::from_be_bytes([p[0], p[1]])))?,
        id::PIECE => {
            if len < 9 {
                return Err(WireError::TooShort {
                    message: "piece",
                    len,
                    min: 9,
                });
            }
            if len > 9 + MAX_BLOCK {
                return Err(WireError::TooLongForType {
                    message: "piece",
                    len,
                    max: 9 + MAX_BLOCK,
                });
            }
            Message::Piece {
                index: be32(0),
                begin: be32(4),
                data: p[8..].to_vec(),
            }
        }
        id::EXTENDED => match p.split_first() {
            Some((&id, payload)) => Message::Extended {
                id,
                payload: payload.to_vec(),
            },
            None => {
                return Err(WireError::TooShort {
                    message: "extended",
                    len,
                    min: 2,
                })
            }
        },
        id => Message::Unknown {
            id,
            payload: p.to_vec(),
        },
    })
}

impl Message {
    /// Appends the message's frame to `out`.
    ///
    /// # Panics
    /// If a payload is 4 GiB or more, which no caller builds.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut frame = |kind: u8, parts: &[&[u8]]| {
            let body: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
            let len = u32::try_from(body).expect("a peer-wire message is below 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.push(kind);
            for p in parts {
                out.extend_from_slice(p);
            }
        };
        let block = |b: &BlockRef| {
            let mut a = [0u8; 12];
            a[..4].copy_from_slice(&b.index.to_be_bytes());
            a[4..8].copy_from_slice(&b.begin.to_be_bytes());
            a[8..].copy_from_slice(&b.length.to_be_bytes());
            a
        };
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0; 4]),
            Message::Choke => frame(id::CHOKE, &[]),
            Message::Unchoke => frame(id::UNCHOKE, &[]),
            Message::Interested => frame(id::INTERESTED, &[]),
            Message::NotInterested => frame(id::NOT_INTERESTED, &[]),
            Message::Have(i) => frame(id::HAVE, &[&i.to_be_bytes()]),
            Message::Bitfield(bits) => frame(id::BITFIELD, &[bits]),
            Message::Request(b) => frame(id::REQUEST, &[&block(b)]),
            Message::Cancel(b) => frame(id::CANCEL, &[&block(b)]),
            Message::Piece { index, begin, data } => frame(
                id::PIECE,
                &[&index.to_be_bytes(), &begin.to_be_bytes(), data],
            ),
            Message::Port(p) => frame(id::PORT, &[&p.to_be_bytes()]),
            Message::Extended { id, payload } => frame(id::EXTENDED, &[&[*id], payload]),
            Message::Unknown { id, payload } => frame(*id, &[payload]),
        }
    }

    /// The message's frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_block() -> impl Strategy<Value = BlockRef> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(index, begin, length)| BlockRef {
            index,
            begin,
            length,
        })
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn any_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(Message::Have),
            bytes(300).prop_map(Message::Bitfield),
            any_block().prop_map(Message::Request),
            any_block().prop_map(Message::Cancel),
            (any::<u32>(), any::<u32>(), bytes(2000))
                .prop_map(|(index, begin, data)| Message::Piece { index, begin, data }),
            any::<u16>().prop_map(Message::Port),
            (any::<u8>(), bytes(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
            (10u8..=255, bytes(300))
                .prop_filter("not a known id", |(id, _)| *id != id::EXTENDED)
                .prop_map(|(id, payload)| Message::Unknown { id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip_and_stream(msgs in proptest::collection::vec(any_message(), 1..6)) {
            let mut stream = Vec::new();
            for m in &msgs {
                m.encode(&mut stream);
            }
            let mut at = 0;
            for m in &msgs {
                let one = m.to_bytes();
                // Every strict prefix asks for more, naming the frame's full size once it can.
                for cut in 0..one.len() {
                    match decode(&one[..cut]) {
                        Ok(Parsed::Incomplete(n)) => prop_assert!(n > cut && n <= one.len()),
                        other => prop_assert!(false, "prefix {} of {:?}: {:?}", cut, m, other),
                    }
                }
                match decode(&stream[at..]) {
                    Ok(Parsed::Done(got, used)) => {
                        prop_assert_eq!(&got, m);
                        prop_assert_eq!(used, one.len());
                        at += used;
                    }
                    other => prop_assert!(false, "{:?}: {:?}", m, other),
                }
            }
            prop_assert_eq!(at, stream.len());
        }

        #[test]
        fn any_bytes_decode_or_refuse_without_panic(b in bytes(64), max in 0u32..100) {
            match decode_with_limit(&b, max) {
                Ok(Parsed::Done(m, used)) => {
                    prop_assert!(used <= b.len());
                    prop_assert_eq!(m.to_bytes(), b[..used].to_vec());
                }
                Ok(Parsed::Incomplete(n)) => prop_assert!(n > b.len() && n <= 4 + max as usize),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn malformed_frames_are_named() {
        let bad = |len: u32, expected: u32, message: &'static str| WireError::BadLength {
            message,
            len,
            expected,
        };
        let table: &[(&[u8], WireError)] = &[
            (
                &[0xff, 0xff, 0xff, 0xff],
                WireError::FrameTooLarge {
                    len: u32::MAX,
                    max: MAX_FRAME,
                },
            ),
            (
                &[0x00, 0x20, 0x00, 0x01],
                WireError::FrameTooLarge {
                    len: MAX_FRAME + 1,
                    max: MAX_FRAME,
                },
            ),
            (&[0, 0, 0, 2, 0, 0], bad(2, 1, "choke")),
            (&[0, 0, 0, 2, 1, 9], bad(2, 1, "unchoke")),
            (&[0, 0, 0, 3, 2, 0, 0], bad(3, 1, "interested")),
            (&[0, 0, 0, 2, 3, 0], bad(2, 1, "not interested")),
            (&[0, 0, 0, 4, 4, 0, 0, 1], bad(4, 5, "have")),
            (&[0, 0, 0, 6, 4, 0, 0, 0, 1, 7], bad(6, 5, "have")),
            (&[0, 0, 0, 1, 6], bad(1, 13, "request")),
            (
                &[0, 0, 0, 14, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                bad(14, 13, "cancel"),
            ),
            (&[0, 0, 0, 2, 9, 1], bad(2, 3, "port")),
            (
                &[0, 0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0],
                WireError::TooShort {
                    message: "piece",
                    len: 8,
                    min: 9,
                },
            ),
            (
                &[0, 0, 0, 1, 20],
                WireError::TooShort {
                    message: "extended",
                    len: 1,
                    min: 2,
                },
            ),
        ];
        for (input, want) in table {
            assert_eq!(decode(input).as_ref(), Err(want), "{input:?}");
        }
        // A block above MAX_BLOCK is refused from its prefix alone, before the data is buffered.
        let len = 9 + MAX_BLOCK + 1;
        let mut big = len.to_be_bytes().to_vec();
        big.push(id::PIECE);
        assert_eq!(decode(&big), Ok(Parsed::Incomplete(4 + len as usize)));
        big.resize(4 + len as usize, 0);
        assert_eq!(
            decode(&big),
            Err(WireError::TooLongForType {
                message: "piece",
                len,
                max: 9 + MAX_BLOCK
            })
        );
    }

    #[test]
    fn unknown_ids_and_keep_alives_pass_through() {
        assert_eq!(
            decode(&[0, 0, 0, 0, 1, 2]),
            Ok(Parsed::Done(Message::KeepAlive, 4))
        );
        // BEP 6 "have all" is not understood here, and that is not an error.
        assert_eq!(
            decode(&[0, 0, 0, 1, 14]),
            Ok(Parsed::Done(
                Message::Unknown {
                    id: 14,
                    payload: vec![]
                },
                5
            ))
        );
        assert_eq!(
            Message::Request(BlockRef {
                index: 1,
                begin: 0x4000,
                length: 0x4000
            })
            .to_bytes(),
            [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
        );
    }
}
