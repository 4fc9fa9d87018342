//! BEP 15 UDP front.
//!
//! Connection ids are the first 8 bytes of HMAC-SHA256(secret, window ‖ ip ‖ port), where the
//! secret is drawn at start-up and `window` is the tracker clock in 60-second steps. An id is
//! accepted in its own window and the next, so it lives 60-120 s (BEP 15 asks for at least 60),
//! cannot be forged without the secret, binds to the client's address, and needs no state per
//! client. After a restart old ids fail and clients reconnect, as BEP 15 clients do anyway.
//!
//! Private swarms: the passkey comes from BEP 41 URL data (see [`crate::protocol::udp`]). UDP
//! scrape has no room for URL data, so on a private tracker it is refused with an error packet
//! pointing at HTTP `/scrape/<passkey>`.

use crate::metrics::{metrics, Metrics};
use crate::protocol::bencode_out::PeerEntry;
use crate::protocol::udp::{passkey_from_path, AnnounceRequest, ParseError, Request, Response};
use crate::swarm::Family;
use crate::tracker::{AnnounceInput, Tracker};
use ring::hmac;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Seconds per connection-id window.
pub const WINDOW_SECS: u32 = 60;

/// Makes and checks connection ids.
pub struct ConnectionIds {
    key: hmac::Key,
}

impl ConnectionIds {
    /// A generator with a fresh random secret.
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        ConnectionIds {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness"),
        }
    }

    /// The id for `addr` at tracker time `now`.
    pub fn make(&self, addr: &SocketAddr, now: u32) -> u64 {
        self.for_window(addr, now / WINDOW_SECS)
    }

    fn for_window(&self, addr: &SocketAddr, window: u32) -> u64 {
        let mut msg = [0u8; 4 + 16 + 2];
        msg[..4].copy_from_slice(&window.to_be_bytes());
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => msg[4..8].copy_from_slice(&ip.octets()),
            IpAddr::V6(ip) => msg[4..20].copy_from_slice(&ip.octets()),
        }
        msg[20..].copy_from_slice(&addr.port().to_be_bytes());
        let tag = hmac::sign(&self.key, &msg);
        u64::from_be_bytes(tag.as_ref()[..8].try_into().expect("8 bytes"))
    }

    /// Whether `id` was made for `addr` in this window or the previous one.
    pub fn check(&self, id: u64, addr: &SocketAddr, now: u32) -> bool {
        let w = now / WINDOW_SECS;
        id == self.for_window(addr, w) || (w > 0 && id == self.for_window(addr, w - 1))
    }
}

/// Answers one datagram into `out`; returns false when nothing should be sent.
///
/// UDP source addresses can be forged, so a datagram without a valid connection id (which
/// proves its sender receives at that address) never gets an answer longer than itself: error
/// messages are cut to fit, and the tracker cannot be used to amplify traffic at a victim.
pub fn handle(
    t: &Tracker,
    ids: &ConnectionIds,
    private: bool,
    packet: &[u8],
    from: SocketAddr,
    peers: &mut Vec<PeerEntry>,
    out: &mut Vec<u8>,
) -> bool {
    let proven = answer(t, ids, private, packet, from, peers, out);
    match proven {
        None => false,
        Some(true) => true,
        Some(false) if out.len() <= packet.len() => true,
        // Shorter than an error header: nothing useful fits.
        Some(false) if packet.len() < 8 => false,
        Some(false) => {
            out.truncate(packet.len());
            true
        }
    }
}

/// Writes the answer into `out`: `None` when there is none, else whether the sender proved its
/// address with a valid connection id.
fn answer(
    t: &Tracker,
    ids: &ConnectionIds,
    private: bool,
    packet: &[u8],
    from: SocketAddr,
    peers: &mut Vec<PeerEntry>,
    out: &mut Vec<u8>,
) -> Option<bool> {
    let now = t.now();
    match Request::parse(packet) {
        Err(ParseError::NoHeader(_)) => return None,
        Err(ParseError::Invalid {
            transaction_id,
            kind,
        }) => {
            metrics().announces.count("udp", "error");
            error(transaction_id, &kind.to_string(), out)
        }
        Ok(Request::Connect { transaction_id }) => Response::Connect {
            transaction_id,
            connection_id: ids.make(&from, now),
        }
        .write(out),
        Ok(Request::Announce(a)) if ids.check(a.connection_id, &from, now) => {
            announce(t, &a, from, peers, out);
            return Some(true);
        }
        Ok(Request::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        }) if ids.check(connection_id, &from, now) => {
            scrape(t, private, transaction_id, &info_hashes, out);
            return Some(true);
        }
        Ok(Request::Announce(AnnounceRequest { transaction_id, .. }))
        | Ok(Request::Scrape { transaction_id, .. }) => {
            error(transaction_id, "connection id expired or invalid", out)
        }
    }
    Some(false)
}

fn error(transaction_id: u32, message: &str, out: &mut Vec<u8>) {
    Response::Error {
        transaction_id,
        message,
    }
    .write(out)
}

/// The answer to an announce from a sender that proved its address.
fn announce(
    t: &Tracker,
    a: &AnnounceRequest,
    from: SocketAddr,
    peers: &mut Vec<PeerEntry>,
    out: &mut Vec<u8>,
) {
    let ip = from.ip().to_canonical();
    let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
    peers.clear();
    let answer = t.announce(
        &AnnounceInput {
            passkey: passkey_from_path(&a.url_data),
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            addr: SocketAddr::new(ip, a.port),
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: a.left,
            event: a.event,
            numwant: a.num_want,
            family,
        },
        peers,
    );
    metrics().announces.count("udp", Metrics::verdict(&answer));
    match answer {
        Ok(ans) => {
            let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.addr).collect();
            Response::Announce {
                transaction_id: a.transaction_id,
                interval: ans.interval,
                leechers: ans.counts.incomplete,
                seeders: ans.counts.complete,
                peers: &addrs,
            }
            .write(out)
        }
        Err(e) => error(a.transaction_id, &e.to_string(), out),
    }
}

/// The answer to a scrape from a sender that proved its address.
fn scrape(
    t: &Tracker,
    private: bool,
    transaction_id: u32,
    info_hashes: &[crate::protocol::InfoHash],
    out: &mut Vec<u8>,
) {
    if private {
        metrics().scrapes.count("udp", "refused");
        let why = "this tracker is private: scrape over HTTP at /scrape/<passkey>";
        return error(transaction_id, why, out);
    }
    let answer = t.scrape(None, info_hashes);
    metrics().scrapes.count("udp", Metrics::verdict(&answer));
    match answer {
        Ok(counts) => Response::Scrape {
            transaction_id,
            counts: &counts,
        }
        .write(out),
        Err(e) => error(transaction_id, &e.to_string(), out),
    }
}

/// How often a blocked receive wakes up to check for shutdown.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Serves datagrams on a blocking socket until `stop` is set. Run one per core on clones of the
/// socket: a plain receive/answer loop per thread costs less per datagram than async readiness,
/// and everything it calls is synchronous and never waits on the disk.
pub fn worker(
    t: Arc<Tracker>,
    ids: Arc<ConnectionIds>,
    private: bool,
    socket: std::net::UdpSocket,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = socket.set_read_timeout(Some(STOP_POLL)) {
        tracing::error!(error = %e, "udp socket setup failed");
        return;
    }
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    let mut peers = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        out.clear();
        if handle(&t, &ids, private, &buf[..len], from, &mut peers, &mut out) {
            if let Err(e) = socket.send_to(&out, from) {
                tracing::debug!(error = %e, %from, "udp send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_bind_address_and_expire() {
        let ids = ConnectionIds::random();
        let a: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:6881".parse().unwrap();
        let id = ids.make(&a, 600);
        assert!(ids.check(id, &a, 600));
        assert!(ids.check(id, &a, 600 + WINDOW_SECS));
        assert!(!ids.check(id, &a, 600 + 2 * WINDOW_SECS));
        assert!(!ids.check(id, &b, 600));
        assert!(!ids.check(id ^ 1, &a, 600));
        let other = ConnectionIds::random();
        assert!(
            !other.check(id, &a, 600),
            "a different secret must not accept the id"
        );
    }
}
