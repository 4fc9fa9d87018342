//! What every leeching connection shares: our peer id, the frames of a holder's answer fed to
//! an [`Exchange`], and the socket option that keeps librqbit's blocks from stalling.

use bytes::{Buf, BytesMut};
use raidtorrent_proto::{Handshake, Parsed};
use tokio::net::TcpStream;

use crate::exchange::{Exchange, Verdict};
use crate::rng::XorShift;
use crate::wire;

/// The client prefix of the peer ids raidtorrent's leechers (audits, gateway and client reads)
/// send, in the Azureus style.
pub const PEER_ID_PREFIX: &[u8; 8] = b"-RA0001-";

/// Feeds every whole frame at the start of `buf` to `ex`, the node's handshake first (until
/// `handshaken`), and removes them from `buf`. `Some` ends the exchange. Never buffers more
/// than one frame of the size the shard allows: a longer length prefix is a violation.
pub fn absorb(ex: &mut Exchange, buf: &mut BytesMut, handshaken: &mut bool) -> Option<Verdict> {
    let max_frame = ex.max_frame();
    loop {
        if !*handshaken {
            match Handshake::parse(buf) {
                Ok(Parsed::Incomplete(_)) => return None,
                Ok(Parsed::Done(h, used)) => {
                    buf.advance(used);
                    *handshaken = true;
                    if let Err(v) = ex.on_handshake(&h) {
                        return Some(v);
                    }
                }
                Err(e) => {
                    return Some(Verdict::Missing {
                        reason: format!("answered with something else: {e}"),
                    })
                }
            }
        } else {
            match wire::decode_with_limit(buf, max_frame) {
                Ok(Parsed::Incomplete(_)) => return None,
                Ok(Parsed::Done(m, used)) => {
                    buf.advance(used);
                    if let Some(v) = ex.on_message(m) {
                        return Some(v);
                    }
                }
                Err(e) => return Some(ex.on_wire_error(&e)),
            }
        }
    }
}

/// Asks the kernel to acknowledge received data at once. librqbit does not set `TCP_NODELAY`, so
/// a block it writes while an earlier one is unacknowledged waits for our ACK, which Linux delays
/// by up to 40 ms: without this, most audits stall once for about that long. The kernel drops
/// the setting as it goes, so it is set again before every read.
#[cfg(target_os = "linux")]
pub fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is the stream's open socket, and the option value is a c_int of the
    // size passed. A failure only leaves the kernel's default, so its result is not needed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn quick_ack(_: &TcpStream) {}

/// [`PEER_ID_PREFIX`] and twelve random digits.
pub fn peer_id() -> [u8; 20] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = XorShift::new(nanos ^ (u64::from(std::process::id()) << 32));
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    for b in &mut id[8..] {
        *b = b'0' + rng.below(10) as u8;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_carry_the_prefix() {
        let id = peer_id();
        assert_eq!(&id[..8], PEER_ID_PREFIX);
        assert!(id[8..].iter().all(u8::is_ascii_digit));
    }
}
