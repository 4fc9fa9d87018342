//! Bencoded tracker answers, written straight into a byte buffer (no intermediate tree: this is
//! the hot path). Keys are written in the sorted order bencode requires.
//!
//! - announce: `complete`, `incomplete`, `interval`, `min interval`, then `peers` (BEP 23
//!   compact, 6 bytes per IPv4 peer, or a list of dicts when the client sent `compact=0`) and
//!   `peers6` (BEP 7, 18 bytes per IPv6 peer) when there are any;
//! - scrape (BEP 48): `files` → info-hash → `complete`, `downloaded`, `incomplete`;
//! - failure: `failure reason` with the error text.

use super::{InfoHash, PeerId, SwarmCounts};
use std::net::{IpAddr, SocketAddr};

/// One peer handed out in an announce answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    pub peer_id: PeerId,
    pub addr: SocketAddr,
}

/// Everything an announce answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    pub interval: u32,
    pub min_interval: u32,
    pub counts: SwarmCounts,
    pub peers: &'a [PeerEntry],
    /// Dictionary form (`compact=0`); otherwise BEP 23 compact strings.
    pub dict_peers: bool,
    /// With the dictionary form, leave out `peer id`.
    pub no_peer_id: bool,
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    decimal(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

fn int(out: &mut Vec<u8>, v: u64) {
    out.push(b'i');
    decimal(out, v);
    out.push(b'e');
}

/// Appends `v` in decimal without allocating (this runs several times per announce).
fn decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn compact_peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

impl AnnounceResponse<'_> {
    /// Appends the bencoded answer to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        bytes(out, b"complete");
        int(out, self.counts.complete.into());
        bytes(out, b"incomplete");
        int(out, self.counts.incomplete.into());
        bytes(out, b"interval");
        int(out, self.interval.into());
        bytes(out, b"min interval");
        int(out, self.min_interval.into());
        if self.dict_peers {
            bytes(out, b"peers");
            out.push(b'l');
            for p in self.peers {
                out.push(b'd');
                bytes(out, b"ip");
                bytes(out, p.addr.ip().to_string().as_bytes());
                if !self.no_peer_id {
                    bytes(out, b"peer id");
                    bytes(out, &p.peer_id.0);
                }
                bytes(out, b"port");
                int(out, p.addr.port().into());
                out.push(b'e');
            }
            out.push(b'e');
        } else {
            let v4 = self.peers.iter().filter(|p| p.addr.is_ipv4()).count();
            let v6 = self.peers.len() - v4;
            bytes(out, b"peers");
            decimal(out, v4 as u64 * 6);
            out.push(b':');
            for p in self.peers.iter().filter(|p| p.addr.is_ipv4()) {
                compact_peer(out, &p.addr);
            }
            if v6 > 0 {
                bytes(out, b"peers6");
                decimal(out, v6 as u64 * 18);
                out.push(b':');
                for p in self.peers.iter().filter(|p| p.addr.is_ipv6()) {
                    compact_peer(out, &p.addr);
                }
            }
        }
        out.push(b'e');
    }
}

/// Appends a BEP 48 scrape answer. `files` must be sorted by info-hash and free of duplicates
/// (bencode dictionaries have sorted, unique keys); [`write_scrape`] sorts a copy if needed.
pub fn write_scrape(files: &[(InfoHash, SwarmCounts)], out: &mut Vec<u8>) {
    let mut sorted;
    let mut files = files;
    if !files.windows(2).all(|w| w[0].0 < w[1].0) {
        sorted = files.to_vec();
        sorted.sort_by_key(|f| f.0);
        sorted.dedup_by_key(|f| f.0);
        files = &sorted;
    }
    out.extend_from_slice(b"d5:filesd");
    for (hash, c) in files {
        bytes(out, &hash.0);
        out.push(b'd');
        bytes(out, b"complete");
        int(out, c.complete.into());
        bytes(out, b"downloaded");
        int(out, c.downloaded.into());
        bytes(out, b"incomplete");
        int(out, c.incomplete.into());
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

/// Appends `d14:failure reason<len>:<reason>e`.
pub fn write_failure(reason: &str, out: &mut Vec<u8>) {
    out.push(b'd');
    bytes(out, b"failure reason");
    bytes(out, reason.as_bytes());
    out.push(b'e');
}

#[cfg(test)]
mod tests;
