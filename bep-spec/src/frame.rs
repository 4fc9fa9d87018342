//! BEP 3 length-prefixed framing after the handshake: a 4-byte big-endian length, then that many bytes
//! (`0` is a keep-alive, otherwise the first byte is the message id). Only keep-alives and BEP 10
//! extended messages (id 20) mean anything on a control connection; other ids are reported as
//! [`Frame::Other`] so the caller can ignore them.

use crate::{Parsed, MAX_FRAME};

/// BEP 10 message id of extended messages.
pub const EXTENDED: u8 = 20;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    KeepAlive,
    /// An extended message: `id` 0 is the extended handshake, others are the receiver's advertised ids.
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// Any other message id (or an extended message too short to carry its id): ignored on a control
    /// connection.
    Other {
        id: u8,
        len: usize,
    },
}

/// Why the byte stream cannot go on; the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is above the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
}

/// Parses one frame from the start of `buf`, with the protocol's [`MAX_FRAME`] limit.
pub fn decode(buf: &[u8]) -> Result<Parsed<Frame>, FrameError> {
    decode_with_limit(buf, MAX_FRAME)
}

/// Parses one frame from the start of `buf`. The length is judged before the body arrives, so a peer
/// cannot make the caller buffer more than `max` bytes.
pub fn decode_with_limit(buf: &[u8], max: usize) -> Result<Parsed<Frame>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(Parsed::Incomplete(4));
    };
    let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let total = 4 + len;
    let Some(body) = buf.get(4..total) else {
        return Ok(Parsed::Incomplete(total));
    };
    let frame = match body {
        [] => Frame::KeepAlive,
        [EXTENDED, id, payload @ ..] => Frame::Extended {
            id: *id,
            payload: payload.to_vec(),
        },
        [id, ..] => Frame::Other { id: *id, len },
    };
    Ok(Parsed::Done(frame, total))
}

/// An extended message frame.
pub fn extended(id: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(2 + payload.len()).expect("payloads are far below 4 GiB");
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(EXTENDED);
    out.push(id);
    out.extend_from_slice(payload);
    out
}

/// A keep-alive frame.
pub fn keep_alive() -> [u8; 4] {
    [0; 4]
}

impl Frame {
    /// The frame's bytes on the wire (`Other` is written as a body of zeros of its length, which only
    /// tests need).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Frame::KeepAlive => keep_alive().to_vec(),
            Frame::Extended { id, payload } => extended(*id, payload),
            Frame::Other { id, len } => {
                let mut out = (*len as u32).to_be_bytes().to_vec();
                out.push(*id);
                out.resize(4 + len, 0);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_are_parsed_or_refused() {
        assert_eq!(decode(b"\0\0"), Ok(Parsed::Incomplete(4)));
        assert_eq!(
            decode(b"\0\0\0\0rest"),
            Ok(Parsed::Done(Frame::KeepAlive, 4))
        );
        assert_eq!(decode(b"\0\0\0\x03\x14\x01"), Ok(Parsed::Incomplete(7)));
        assert_eq!(
            decode(b"\0\0\0\x01\x14"),
            Ok(Parsed::Done(Frame::Other { id: 20, len: 1 }, 5))
        );
        assert_eq!(
            decode(b"\0\0\0\x01\x02"),
            Ok(Parsed::Done(Frame::Other { id: 2, len: 1 }, 5))
        );
        assert_eq!(
            decode(&[0x02, 0x20, 0x00, 0x01]),
            Err(FrameError::TooLarge {
                len: MAX_FRAME + 1,
                max: MAX_FRAME
            })
        );
        assert_eq!(
            decode(&[0xff; 4]),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_FRAME
            })
        );
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            Just(Frame::KeepAlive),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(id, payload)| Frame::Extended { id, payload }),
            (0u8..=255, 1usize..300)
                .prop_filter("not extended", |(id, len)| *id != EXTENDED || *len == 1)
                .prop_map(|(id, len)| Frame::Other { id, len }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip_and_stream(frames in proptest::collection::vec(any_frame(), 1..6)) {
            let stream: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
            let mut at = 0;
            for frame in &frames {
                // Every strict prefix of the frame asks for more bytes.
                let Ok(Parsed::Done(got, used)) = decode(&stream[at..]) else { panic!() };
                for cut in at..at + used {
                    prop_assert!(matches!(decode(&stream[at..cut]), Ok(Parsed::Incomplete(n)) if n > cut - at));
                }
                prop_assert_eq!(&got, frame);
                at += used;
            }
            prop_assert_eq!(at, stream.len());
        }
    }
}
