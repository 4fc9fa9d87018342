//! The byte side of one control connection: reading the BEP 3 handshake and frames out of a buffer
//! that grows only as bytes arrive, and closing so that the last words sent are not lost.

use raidtorrent_proto::{frame, Frame, FrameError, Handshake, HandshakeError, Parsed};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::Io;

/// The halves of a connection, plain TCP or TLS.
pub(super) type ReadHalf = tokio::io::ReadHalf<Box<dyn Io>>;
pub(super) type WriteHalf = tokio::io::WriteHalf<Box<dyn Io>>;

/// Most bytes added to the read buffer per read, so a length prefix alone never makes us allocate
/// the whole frame.
const READ_CHUNK: usize = 64 * 1024;
/// How long a closing connection keeps reading (and discarding) so the peer sees a FIN after our
/// last message instead of a reset that may destroy it.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Most bytes discarded while lingering.
const CLOSE_DRAIN: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    #[error("the peer closed the connection")]
    Eof,
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// The reading half with its buffer.
pub(super) struct Reader {
    half: ReadHalf,
    buf: Vec<u8>,
    max_frame: usize,
}

impl Reader {
    pub(super) fn new(half: ReadHalf, max_frame: usize) -> Self {
        Reader {
            half,
            buf: Vec::new(),
            max_frame,
        }
    }

    /// Changes the largest frame accepted (small until the node has authenticated).
    pub(super) fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// Reads more bytes towards a total of `want` buffered bytes. Cancel-safe: bytes read stay
    /// in the buffer.
    async fn fill(&mut self, want: usize) -> Result<(), WireError> {
        let need = want.saturating_sub(self.buf.len()).clamp(1, READ_CHUNK);
        self.buf.reserve(need);
        let mut chunk = (&mut self.half).take(need as u64);
        match chunk.read_buf(&mut self.buf).await? {
            0 => Err(WireError::Eof),
            _ => Ok(()),
        }
    }

    /// The peer's BEP 3 handshake.
    pub(super) async fn handshake(&mut self) -> Result<Handshake, WireError> {
        loop {
            match Handshake::parse(&self.buf)? {
                Parsed::Done(h, used) => {
                    self.buf.drain(..used);
                    return Ok(h);
                }
                Parsed::Incomplete(want) => self.fill(want).await?,
            }
        }
    }

    /// The next frame. Cancel-safe: a partial frame stays buffered for the next call.
    pub(super) async fn frame(&mut self) -> Result<Frame, WireError> {
        loop {
            match frame::decode_with_limit(&self.buf, self.max_frame)? {
                Parsed::Done(f, used) => {
                    self.buf.drain(..used);
                    return Ok(f);
                }
                Parsed::Incomplete(want) => self.fill(want).await?,
            }
        }
    }
}

/// Sends our FIN, then reads and discards what the peer still sends for a moment, so the kernel
/// does not answer unread bytes with a reset that could destroy our last message in flight.
pub(super) async fn close(mut reader: Reader, mut writer: WriteHalf) {
    let _ = tokio::time::timeout(CLOSE_LINGER, writer.shutdown()).await;
    let drain = async {
        let mut discarded = 0;
        let mut scratch = [0u8; 8192];
        while discarded < CLOSE_DRAIN {
            match reader.half.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}
