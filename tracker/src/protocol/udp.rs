//! BEP 15 UDP tracker packets, with BEP 41 URL data, parsed from and written to byte slices.
//!
//! Private swarms over UDP: BEP 15 has no path, so the passkey travels in the BEP 41 URL-data
//! option exactly as it would in the HTTP path: a client given the tracker URL
//! `udp://host:port/announce/<passkey>` sends `/announce/<passkey>` as URL data (libtorrent does
//! this by itself). [`Request::Announce`] carries the URL data and [`passkey_from_path`] reads the
//! passkey from it, the same function the HTTP server uses for its path.
//!
//! Invariants:
//! - A packet shorter than 16 bytes has no transaction id and is not answered at all: answering
//!   it would let spoofed one-byte packets be amplified toward a victim.
//! - Every other malformed packet parses to [`ParseError`], which carries the transaction id so the
//!   server can send an error packet the client will match.
//! - URL data is at most [`MAX_URL_DATA`] bytes; scrape at most [`MAX_SCRAPE_HASHES`] hashes.

use super::{Event, InfoHash, PeerId, SwarmCounts};
use std::net::{Ipv4Addr, SocketAddr};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Most info-hashes one scrape packet may ask for (fits an answer in one small datagram).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Most BEP 41 URL-data bytes kept from one announce.
pub const MAX_URL_DATA: usize = 255;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect {
        transaction_id: u32,
    },
    Announce(AnnounceRequest),
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: Vec<InfoHash>,
    },
}

/// A BEP 15 announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub connection_id: u64,
    pub transaction_id: u32,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: Event,
    /// The `IP address` field; ignored by the tracker (it uses the packet's source address).
    pub ip: Ipv4Addr,
    pub key: u32,
    /// `None` for -1 (default) or any other negative value.
    pub num_want: Option<u32>,
    pub port: u16,
    /// BEP 41 URL data (path and query), concatenated over all URL-data options.
    pub url_data: Vec<u8>,
}

/// An answer from the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    /// `peers` must all be of the requester's address family (BEP 15 sends 6-byte entries to
    /// IPv4 clients and 18-byte entries to IPv6 clients).
    Announce {
        transaction_id: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        peers: &'a [SocketAddr],
    },
    Scrape {
        transaction_id: u32,
        counts: &'a [SwarmCounts],
    },
    Error {
        transaction_id: u32,
        message: &'a str,
    },
}

/// Why a packet was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not even a header: drop silently.
    #[error("packet of {0} bytes is too short to be a request")]
    NoHeader(usize),
    /// A header was read; answer with an error packet carrying `transaction_id`.
    #[error("{kind}")]
    Invalid {
        transaction_id: u32,
        kind: InvalidKind,
    },
}

/// What was wrong with a packet that had a header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKind {
    #[error("connect request with wrong protocol id")]
    BadProtocolId,
    #[error("unknown action {0}")]
    UnknownAction(u32),
    #[error("{action} request is {len} bytes, shorter than {min}")]
    TooShort {
        action: &'static str,
        len: usize,
        min: usize,
    },
    #[error("'port' must be in 1..=65535")]
    BadPort,
    #[error("unknown announce event {0}")]
    BadEvent(u32),
    #[error("malformed BEP 41 option")]
    BadOption,
    #[error("scrape needs 1 to 74 info-hashes, got {0}")]
    BadScrapeCount(usize),
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn arr20(b: &[u8], at: usize) -> [u8; 20] {
    b[at..at + 20].try_into().expect("20 bytes")
}

const ANNOUNCE_LEN: usize = 98;

impl Request {
    /// Parses one datagram.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        if b.len() < 16 {
            return Err(ParseError::NoHeader(b.len()));
        }
        let connection_id = be_u64(b, 0);
        let action = be_u32(b, 8);
        let transaction_id = be_u32(b, 12);
        let invalid = |kind| ParseError::Invalid {
            transaction_id,
            kind,
        };
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID => {
                Ok(Request::Connect { transaction_id })
            }
            ACTION_CONNECT => Err(invalid(InvalidKind::BadProtocolId)),
            ACTION_ANNOUNCE => {
                if b.len() < ANNOUNCE_LEN {
                    return Err(invalid(InvalidKind::TooShort {
                        action: "announce",
                        len: b.len(),
                        min: ANNOUNCE_LEN,
                    }));
                }
                let event = match be_u32(b, 80) {
                    0 => Event::None,
                    1 => Event::Completed,
                    2 => Event::Started,
                    3 => Event::Stopped,
                    e => return Err(invalid(InvalidKind::BadEvent(e))),
                };
                let num_want = be_u32(b, 92) as i32;
                let port = u16::from_be_bytes([b[96], b[97]]);
                if port == 0 {
                    return Err(invalid(InvalidKind::BadPort));
                }
                let url_data =
                    parse_options(&b[ANNOUNCE_LEN..]).ok_or(invalid(InvalidKind::BadOption))?;
                Ok(Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash: InfoHash(arr20(b, 16)),
                    peer_id: PeerId(arr20(b, 36)),
                    downloaded: be_u64(b, 56),
                    left: be_u64(b, 64),
                    uploaded: be_u64(b, 72),
                    event,
                    ip: Ipv4Addr::from(be_u32(b, 84)),
                    key: be_u32(b, 88),
                    num_want: u32::try_from(num_want).ok(),
                    port,
                    url_data,
                }))
            }
            ACTION_SCRAPE => {
                let body = &b[16..];
                let count = body.len() / 20;
                if body.len() % 20 != 0 || count == 0 || count > MAX_SCRAPE_HASHES {
                    return Err(invalid(InvalidKind::BadScrapeCount(count)));
                }
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes: body
                        .chunks_exact(20)
                        .map(|c| InfoHash(arr20(c, 0)))
                        .collect(),
                })
            }
            other => Err(invalid(InvalidKind::UnknownAction(other))),
        }
    }

    /// Writes the request as a client would send it.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                let event: u32 = match a.event {
                    Event::None | Event::Paused => 0,
                    Event::Completed => 1,
                    Event::Started => 2,
                    Event::Stopped => 3,
                };
                out.extend_from_slice(&event.to_be_bytes());
                out.extend_from_slice(&a.ip.octets());
                out.extend_from_slice(&a.key.to_be_bytes());
                let num_want = a.num_want.map_or(-1, |n| n.min(i32::MAX as u32) as i32);
                out.extend_from_slice(&num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
                for chunk in a.url_data.chunks(255) {
                    out.push(2);
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
                if !a.url_data.is_empty() {
                    out.push(0);
                }
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }
}

/// Reads BEP 41 options: 0 = end, 1 = no-op, 2 = URL data (length byte + bytes). Returns the
/// concatenated URL data, or `None` when an option runs past the end of the packet or the URL
/// data grows past [`MAX_URL_DATA`]. Unknown option types end parsing (their length is unknown).
fn parse_options(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut url = Vec::new();
    while let Some((&kind, tail)) = rest.split_first() {
        match kind {
            0 => break,
            1 => rest = tail,
            2 => {
                let (&len, tail) = tail.split_first()?;
                let data = tail.get(..usize::from(len))?;
                if url.len() + data.len() > MAX_URL_DATA {
                    return None;
                }
                url.extend_from_slice(data);
                rest = &tail[usize::from(len)..];
            }
            _ => break,
        }
    }
    Some(url)
}

/// The passkey in a tracker path `/announce/<passkey>` or `/scrape/<passkey>` (a query after `?`
/// is ignored). `None` when the path has no passkey segment.
pub fn passkey_from_path(path: &[u8]) -> Option<&[u8]> {
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let mut segments = path.split(|&b| b == b'/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (Some(b"announce" | b"scrape"), Some(key), None) => Some(key),
        _ => None,
    }
}

impl Response<'_> {
    /// Writes the datagram.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                for p in *peers {
                    match p {
                        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
                        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
                    }
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
            }
            Response::Scrape {
                transaction_id,
                counts,
            } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for c in *counts {
                    out.extend_from_slice(&c.complete.to_be_bytes());
                    out.extend_from_slice(&c.downloaded.to_be_bytes());
                    out.extend_from_slice(&c.incomplete.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
    }
}

/// A parsed answer, as a client reads it (used by tests and tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedResponse {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        peers: Vec<SocketAddr>,
    },
    Scrape {
        transaction_id: u32,
        counts: Vec<SwarmCounts>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl OwnedResponse {
    /// Parses an answer; `ipv6` says which peer entry size an announce answer uses.
    pub fn parse(b: &[u8], ipv6: bool) -> Option<Self> {
        if b.len() < 8 {
            return None;
        }
        let transaction_id = be_u32(b, 4);
        Some(match be_u32(b, 0) {
            ACTION_CONNECT if b.len() == 16 => OwnedResponse::Connect {
                transaction_id,
                connection_id: be_u64(b, 8),
            },
            ACTION_ANNOUNCE if b.len() >= 20 => {
                let size = if ipv6 { 18 } else { 6 };
                let body = &b[20..];
                if body.len() % size != 0 {
                    return None;
                }
                let peers = body
                    .chunks_exact(size)
                    .map(|c| {
                        let port = u16::from_be_bytes([c[size - 2], c[size - 1]]);
                        if ipv6 {
                            let ip: [u8; 16] = c[..16].try_into().expect("16 bytes");
                            SocketAddr::from((ip, port))
                        } else {
                            let ip: [u8; 4] = c[..4].try_into().expect("4 bytes");
                            SocketAddr::from((ip, port))
                        }
                    })
                    .collect();
                OwnedResponse::Announce {
                    transaction_id,
                    interval: be_u32(b, 8),
                    leechers: be_u32(b, 12),
                    seeders: be_u32(b, 16),
                    peers,
                }
            }
            ACTION_SCRAPE if (b.len() - 8) % 12 == 0 => OwnedResponse::Scrape {
                transaction_id,
                counts: b[8..]
                    .chunks_exact(12)
                    .map(|c| SwarmCounts {
                        complete: be_u32(c, 0),
                        downloaded: be_u32(c, 4),
                        incomplete: be_u32(c, 8),
                    })
                    .collect(),
            },
            ACTION_ERROR => OwnedResponse::Error {
                transaction_id,
                message: String::from_utf8_lossy(&b[8..]).into_owned(),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
