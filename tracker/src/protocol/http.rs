//! BEP 3 announce and BEP 48 scrape query strings, parsed from the raw bytes after `?`.
//!
//! Invariants:
//! - The query is at most [`MAX_QUERY_LEN`] bytes; nothing is allocated for a longer one.
//! - Only `%XX` escapes are decoded; `+` is a literal byte (clients percent-encode binary
//!   values, and a form-style `+` → space would corrupt an info-hash).
//! - `info_hash` and `peer_id` decode to exactly 20 bytes; `port` is 1..=65535.
//! - `key` and `trackerid` are opaque bytes (aria2 sends binary keys): they are checked for
//!   valid escapes and otherwise ignored. `ip`, `ipv4` and `ipv6` are ignored: the tracker uses the
//!   address the request came from, so nobody can announce someone else into a swarm.
//! - Unknown parameters are ignored, so newer clients keep working.
//! - `numwant` is clamped by the caller's policy; here it is only parsed (negative = default).

use super::{Event, InfoHash, PeerId};
use std::fmt::Write;

/// Longest query string accepted. Real clients send ~250-400 bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// Most info-hashes accepted in one scrape.
pub const MAX_SCRAPE_HASHES: usize = 64;

/// A parsed announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// `numwant` as sent; `None` when absent or negative.
    pub numwant: Option<u32>,
    /// `compact=0` asks for the dictionary peer list; everything else gets BEP 23.
    pub compact: bool,
    /// Leave `peer id` out of dictionary peer entries.
    pub no_peer_id: bool,
}

/// Why a query was refused. The `Display` text is sent as the `failure reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query string is {len} bytes, longer than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("missing required parameter '{0}'")]
    Missing(&'static str),
    #[error("parameter '{0}' is given more than once")]
    Duplicate(&'static str),
    #[error("invalid percent-encoding in parameter '{0}'")]
    BadEscape(String),
    #[error("'{param}' must be 20 bytes, got {len}")]
    WrongLength { param: &'static str, len: usize },
    #[error("'{0}' must be a non-negative decimal integer")]
    NotANumber(&'static str),
    #[error("'port' must be in 1..=65535")]
    BadPort,
    #[error("scrape asks for {count} info-hashes, more than the limit of {max}")]
    TooManyHashes { count: usize, max: usize },
    #[error("scrape needs at least one 'info_hash' (full scrapes are not served)")]
    NoScrapeHashes,
}

/// Splits `query` into raw `(key, value)` byte pairs. Empty segments are skipped.
fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|seg| match seg.iter().position(|&b| b == b'=') {
            Some(i) => (&seg[..i], &seg[i + 1..]),
            None => (seg, &b""[..]),
        })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` into `out`, stopping with `Err(())` on a bad escape or when `out` is full.
/// Returns the decoded length.
fn decode_into(raw: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_val);
            let lo = raw.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    i += 3;
                    h << 4 | l
                }
                _ => return Err(DecodeError::BadEscape),
            }
        } else {
            i += 1;
            raw[i - 1]
        };
        if n < out.len() {
            out[n] = b;
        }
        n += 1;
    }
    Ok(n)
}

enum DecodeError {
    BadEscape,
}

/// Decodes a parameter that must be exactly 20 bytes.
fn decode20(param: &'static str, raw: &[u8]) -> Result<[u8; 20], QueryError> {
    let mut out = [0u8; 20];
    match decode_into(raw, &mut out) {
        Ok(20) => Ok(out),
        Ok(len) => Err(QueryError::WrongLength { param, len }),
        Err(DecodeError::BadEscape) => Err(QueryError::BadEscape(param.to_owned())),
    }
}

/// Checks that an opaque parameter has valid escapes, without keeping it.
fn check_escapes(raw: &[u8], key: &[u8]) -> Result<(), QueryError> {
    let mut sink = [0u8; 0];
    decode_into(raw, &mut sink)
        .map(|_| ())
        .map_err(|_| QueryError::BadEscape(String::from_utf8_lossy(key).into_owned()))
}

fn parse_u64(param: &'static str, raw: &[u8]) -> Result<u64, QueryError> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::NotANumber(param));
    }
    raw.iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(QueryError::NotANumber(param))
}

/// `numwant`: negative means "default" (some clients send -1); huge values saturate.
fn parse_numwant(raw: &[u8]) -> Result<Option<u32>, QueryError> {
    if let Some(rest) = raw.strip_prefix(b"-") {
        parse_u64("numwant", rest)?;
        return Ok(None);
    }
    let n = parse_u64("numwant", raw)?;
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn set_once<T>(slot: &mut Option<T>, param: &'static str, v: T) -> Result<(), QueryError> {
    if slot.replace(v).is_some() {
        return Err(QueryError::Duplicate(param));
    }
    Ok(())
}

fn check_len(query: &[u8]) -> Result<(), QueryError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong {
            len: query.len(),
            max: MAX_QUERY_LEN,
        });
    }
    Ok(())
}

impl AnnounceRequest {
    /// Parses the raw query string (without the leading `?`).
    pub fn parse(query: &[u8]) -> Result<Self, QueryError> {
        check_len(query)?;
        let (mut info_hash, mut peer_id, mut port) = (None, None, None);
        let (mut uploaded, mut downloaded, mut left) = (None, None, None);
        let (mut event, mut numwant) = (Event::None, None);
        let (mut compact, mut no_peer_id) = (true, false);
        for (key, value) in pairs(query) {
            match key {
                b"info_hash" => set_once(
                    &mut info_hash,
                    "info_hash",
                    InfoHash(decode20("info_hash", value)?),
                )?,
                b"peer_id" => {
                    set_once(&mut peer_id, "peer_id", PeerId(decode20("peer_id", value)?))?
                }
                b"port" => {
                    let p = parse_u64("port", value).map_err(|_| QueryError::BadPort)?;
                    let p = u16::try_from(p)
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or(QueryError::BadPort)?;
                    set_once(&mut port, "port", p)?
                }
                b"uploaded" => set_once(&mut uploaded, "uploaded", parse_u64("uploaded", value)?)?,
                b"downloaded" => set_once(
                    &mut downloaded,
                    "downloaded",
                    parse_u64("downloaded", value)?,
                )?,
                b"left" => set_once(&mut left, "left", parse_u64("left", value)?)?,
                b"event" => {
                    event = match value {
                        b"started" => Event::Started,
                        b"completed" => Event::Completed,
                        b"stopped" => Event::Stopped,
                        b"paused" => Event::Paused,
                        _ => Event::None,
                    }
                }
                b"numwant" => numwant = parse_numwant(value)?,
                b"compact" => compact = value != b"0",
                b"no_peer_id" => no_peer_id = value != b"0",
                _ => check_escapes(value, key)?,
            }
        }
        Ok(AnnounceRequest {
            info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
            peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
            port: port.ok_or(QueryError::Missing("port"))?,
            uploaded: uploaded.ok_or(QueryError::Missing("uploaded"))?,
            downloaded: downloaded.ok_or(QueryError::Missing("downloaded"))?,
            left: left.ok_or(QueryError::Missing("left"))?,
            event,
            numwant,
            compact,
            no_peer_id,
        })
    }

    /// Writes the request as a query string (what a client sends), percent-encoding binary fields.
    pub fn to_query(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("info_hash=");
        percent_encode(&self.info_hash.0, &mut s);
        s.push_str("&peer_id=");
        percent_encode(&self.peer_id.0, &mut s);
        let _ = write!(
            s,
            "&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact)
        );
        if self.no_peer_id {
            s.push_str("&no_peer_id=1");
        }
        let event = match self.event {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
            Event::Paused => Some("paused"),
        };
        if let Some(e) = event {
            let _ = write!(s, "&event={e}");
        }
        if let Some(n) = self.numwant {
            let _ = write!(s, "&numwant={n}");
        }
        s
    }
}

/// Parses a BEP 48 scrape query: one or more `info_hash` parameters.
pub fn parse_scrape(query: &[u8]) -> Result<Vec<InfoHash>, QueryError> {
    check_len(query)?;
    let mut hashes = Vec::new();
    for (key, value) in pairs(query) {
        if key == b"info_hash" {
            if hashes.len() == MAX_SCRAPE_HASHES {
                let count = pairs(query).filter(|(k, _)| *k == b"info_hash").count();
                return Err(QueryError::TooManyHashes {
                    count,
                    max: MAX_SCRAPE_HASHES,
                });
            }
            hashes.push(InfoHash(decode20("info_hash", value)?));
        } else {
            check_escapes(value, key)?;
        }
    }
    if hashes.is_empty() {
        return Err(QueryError::NoScrapeHashes);
    }
    Ok(hashes)
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
