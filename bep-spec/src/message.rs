//! Placement messages (RT-0002 section 5): one bencoded dictionary per extended message, with a type
//! `t` and the sender's sequence number `seq`.
//!
//! Parsing follows section 7: a payload without a usable envelope is [`MessageError::NoEnvelope`]
//! (ignored); a known type with bad keys is [`MessageError::Malformed`], which the receiver answers with
//! a `malformed` refusal when it was a directive ([`MessageError::refusal`]); an unknown type is
//! [`Message::Unknown`], not an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use raidtorrent_codec::bencode::{self, BencodeError, Dict, Value};
use raidtorrent_codec::InfoHash;

use crate::auth::Proof;
use crate::bencode_out::{DictOut, Out};
use crate::fields::{self, FieldError};

/// A placement message and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's sequence number, from 1, per connection and direction.
    pub seq: u64,
    pub body: Message,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Gateway → node: authentication done.
    Welcome(Welcome),
    /// Gateway → node: store, verify and seed a shard.
    Hold(Hold),
    /// Gateway → node: stop seeding a shard and delete it.
    Drop {
        ih: InfoHash,
    },
    /// Node → gateway: the directive `re` is done.
    Ack {
        re: u64,
        ih: InfoHash,
    },
    /// Node → gateway: the directive `re` will not be done.
    Refuse {
        re: u64,
        ih: Option<InfoHash>,
        code: RefuseCode,
        text: String,
    },
    /// Node → gateway: held set, space and transfer statistics.
    Report(Report),
    Ping,
    Pong {
        re: u64,
    },
    /// The sender is about to close the connection.
    Bye {
        code: ByeCode,
        text: String,
    },
    /// A type this implementation does not know; receivers ignore it.
    Unknown {
        t: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub proof: Proof,
    /// The protocol version both sides use on this connection.
    pub ver: u64,
    pub report_interval: u64,
    pub keepalive_interval: u64,
}

/// Default intervals when `welcome` leaves them out.
pub const DEFAULT_REPORT_INTERVAL: u64 = 300;
pub const DEFAULT_KEEPALIVE_INTERVAL: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub ih: InfoHash,
    pub source: MetainfoSource,
    /// Peers known to hold the shard (compact `peers` and `peers6`).
    pub peers: Vec<SocketAddr>,
}

/// Where the metainfo of a held shard comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoSource {
    Torrent(Vec<u8>),
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// `held` is the whole held set (else: additions since the last report, and `gone` removals).
    pub full: bool,
    pub held: Vec<InfoHash>,
    pub gone: Vec<InfoHash>,
    pub capacity: u64,
    pub used: u64,
    pub free: u64,
    pub transfers: Vec<Transfer>,
}

/// One remote peer of one shard, as the node's BitTorrent client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub ih: InfoHash,
    pub addr: String,
    pub down: u64,
    pub up: u64,
    pub errors: u64,
    pub state: String,
}

macro_rules! string_codes {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A code from a newer peer.
            Other(String),
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_codes!(
    /// Why a directive was refused (RT-0002 `refuse` codes). Receivers treat `Other` like `Io`.
    RefuseCode {
        Quota = "quota",
        Metainfo = "metainfo",
        Mismatch = "mismatch",
        Fetch = "fetch",
        Superseded = "superseded",
        Malformed = "malformed",
        Io = "io",
        Stalled = "stalled",
        Shutdown = "shutdown",
    }
);

string_codes!(
    /// Why a peer closes the connection.
    ByeCode {
        Auth = "auth",
        Version = "version",
        Shutdown = "shutdown",
        Malformed = "malformed",
        Duplicate = "duplicate",
        Facts = "facts",
    }
);

/// Why a payload is not a usable placement message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Nothing to answer: not bencode, not a dictionary, or no `t` / `seq`. Ignored.
    #[error("no placement envelope: {0}")]
    NoEnvelope(EnvelopeProblem),
    /// A known type whose keys are missing or ill-typed.
    #[error("malformed {t} (seq {seq}): {problem}")]
    Malformed {
        t: String,
        seq: u64,
        /// The message's `ih` when it was valid, for the refusal.
        ih: Option<InfoHash>,
        problem: FieldError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeProblem {
    #[error("{0}")]
    Bencode(BencodeError),
    #[error("payload is not a dictionary")]
    NotADict,
    #[error("{0}")]
    Field(FieldError),
    #[error("seq must be at least 1")]
    ZeroSeq,
}

impl MessageError {
    /// For a malformed directive: the `seq` and `ih` of the `refuse` (code `malformed`) owed to it.
    pub fn refusal(&self) -> Option<(u64, Option<InfoHash>)> {
        match self {
            MessageError::Malformed { t, seq, ih, .. } if t == "hold" || t == "drop" => {
                Some((*seq, *ih))
            }
            _ => None,
        }
    }
}

impl Message {
    /// The `t` this message is sent with.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Welcome(_) => "welcome",
            Message::Hold(_) => "hold",
            Message::Drop { .. } => "drop",
            Message::Ack { .. } => "ack",
            Message::Refuse { .. } => "refuse",
            Message::Report(_) => "report",
            Message::Ping => "ping",
            Message::Pong { .. } => "pong",
            Message::Bye { .. } => "bye",
            Message::Unknown { t } => t,
        }
    }
}

impl Envelope {
    pub fn new(seq: u64, body: Message) -> Self {
        Envelope { seq, body }
    }

    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        let no_env = MessageError::NoEnvelope;
        let v = bencode::decode(payload).map_err(|e| no_env(EnvelopeProblem::Bencode(e)))?;
        let d = fields::as_dict(&v).ok_or(no_env(EnvelopeProblem::NotADict))?;
        let field = |e: FieldError| no_env(EnvelopeProblem::Field(e));
        let t = fields::string(d, "t").map_err(field)?;
        let seq = fields::u64_of(d, "seq").map_err(field)?;
        if seq == 0 {
            return Err(no_env(EnvelopeProblem::ZeroSeq));
        }
        let ih = fields::info_hash(d, "ih").ok();
        let body = parse_body(&t, d).map_err(|problem| MessageError::Malformed {
            t: t.clone(),
            seq,
            ih,
            problem,
        })?;
        Ok(Envelope { seq, body })
    }

    pub fn to_payload(&self) -> Vec<u8> {
        body_out(&self.body)
            .put("seq", Out::uint(self.seq))
            .put("t", Out::str(self.body.type_name()))
            .done()
            .encode()
    }
}

fn parse_body(t: &str, d: &Dict<'_>) -> Result<Message, FieldError> {
    use fields::{info_hash, opt_u64, string, u64_of};
    Ok(match t {
        "welcome" => Message::Welcome(Welcome {
            proof: fields::fixed(d, "proof")?,
            ver: u64_of(d, "ver")?,
            report_interval: opt_u64(d, "report interval")?.unwrap_or(DEFAULT_REPORT_INTERVAL),
            keepalive_interval: opt_u64(d, "keepalive interval")?
                .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL),
        }),
        "hold" => Message::Hold(parse_hold(d)?),
        "drop" => Message::Drop {
            ih: info_hash(d, "ih")?,
        },
        "ack" => Message::Ack {
            re: u64_of(d, "re")?,
            ih: info_hash(d, "ih")?,
        },
        "refuse" => Message::Refuse {
            re: u64_of(d, "re")?,
            ih: d.get("ih").map(|_| info_hash(d, "ih")).transpose()?,
            code: RefuseCode::parse(&string(d, "code")?),
            text: fields::opt_string(d, "text")?.unwrap_or_default(),
        },
        "report" => Message::Report(parse_report(d)?),
        "ping" => Message::Ping,
        "pong" => Message::Pong {
            re: u64_of(d, "re")?,
        },
        "bye" => Message::Bye {
            code: ByeCode::parse(&string(d, "code")?),
            text: fields::opt_string(d, "text")?.unwrap_or_default(),
        },
        other => Message::Unknown {
            t: other.to_owned(),
        },
    })
}

fn parse_hold(d: &Dict<'_>) -> Result<Hold, FieldError> {
    let ih = fields::info_hash(d, "ih")?;
    let source = match (d.get("torrent"), d.get("url")) {
        (Some(t), None) => MetainfoSource::Torrent(t.bytes("torrent")?.to_vec()),
        (None, Some(u)) => MetainfoSource::Url(u.str("url")?.to_owned()),
        _ => return Err(FieldError::OneOf("torrent, url")),
    };
    let mut peers = compact_peers(d, "peers", 6)?;
    peers.extend(compact_peers(d, "peers6", 18)?);
    Ok(Hold { ih, source, peers })
}

fn compact_peers(
    d: &Dict<'_>,
    key: &'static str,
    width: usize,
) -> Result<Vec<SocketAddr>, FieldError> {
    let Some(v) = d.get(key) else {
        return Ok(Vec::new());
    };
    let b = v.bytes(key)?;
    if b.len() % width != 0 {
        return Err(FieldError::WrongLength {
            field: key,
            expected: if width == 6 {
                "a multiple of 6"
            } else {
                "a multiple of 18"
            },
            actual: b.len(),
        });
    }
    Ok(b.chunks_exact(width)
        .map(|c| {
            let (ip, port) = c.split_at(width - 2);
            let ip: IpAddr = match ip.len() {
                4 => Ipv4Addr::from(<[u8; 4]>::try_from(ip).expect("4 bytes")).into(),
                _ => Ipv6Addr::from(<[u8; 16]>::try_from(ip).expect("16 bytes")).into(),
            };
            SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
        })
        .collect())
}

fn parse_report(d: &Dict<'_>) -> Result<Report, FieldError> {
    let transfers = match d.get("transfers") {
        None => Vec::new(),
        Some(v) => v
            .list("transfers")?
            .iter()
            .map(parse_transfer)
            .collect::<Result<_, _>>()?,
    };
    Ok(Report {
        full: fields::u64_of(d, "full")? != 0,
        held: fields::info_hashes(d, "held")?,
        gone: fields::info_hashes(d, "gone")?,
        capacity: fields::u64_of(d, "capacity")?,
        used: fields::u64_of(d, "used")?,
        free: fields::u64_of(d, "free")?,
        transfers,
    })
}

fn parse_transfer(v: &Value<'_>) -> Result<Transfer, FieldError> {
    let d = v.dict("transfers[]")?;
    Ok(Transfer {
        ih: fields::info_hash(d, "ih")?,
        addr: fields::string(d, "addr")?,
        down: fields::u64_of(d, "down")?,
        up: fields::u64_of(d, "up")?,
        errors: fields::u64_of(d, "errors")?,
        state: fields::string(d, "state")?,
    })
}

fn body_out(m: &Message) -> DictOut {
    let d = DictOut::default();
    match m {
        Message::Welcome(w) => d
            .put("proof", Out::bytes(&w.proof))
            .put("ver", Out::uint(w.ver))
            .put("report interval", Out::uint(w.report_interval))
            .put("keepalive interval", Out::uint(w.keepalive_interval)),
        Message::Hold(h) => {
            let (v4, v6): (Vec<_>, Vec<_>) = h.peers.iter().partition(|a| a.is_ipv4());
            let d = d.put("ih", Out::bytes(&h.ih.0));
            let d = match &h.source {
                MetainfoSource::Torrent(t) => d.put("torrent", Out::bytes(t)),
                MetainfoSource::Url(u) => d.put("url", Out::str(u)),
            };
            d.put_opt("peers", compact(&v4))
                .put_opt("peers6", compact(&v6))
        }
        Message::Drop { ih } => d.put("ih", Out::bytes(&ih.0)),
        Message::Ack { re, ih } => d.put("re", Out::uint(*re)).put("ih", Out::bytes(&ih.0)),
        Message::Refuse { re, ih, code, text } => d
            .put("re", Out::uint(*re))
            .put_opt("ih", ih.map(|ih| Out::bytes(&ih.0)))
            .put("code", Out::str(code.as_str()))
            .put("text", Out::str(text)),
        Message::Report(r) => d
            .put("full", Out::Int(r.full.into()))
            .put(
                "held",
                Out::Bytes(r.held.iter().flat_map(|h| h.0).collect()),
            )
            .put_opt(
                "gone",
                (!r.gone.is_empty()).then(|| Out::Bytes(r.gone.iter().flat_map(|h| h.0).collect())),
            )
            .put("capacity", Out::uint(r.capacity))
            .put("used", Out::uint(r.used))
            .put("free", Out::uint(r.free))
            .put(
                "transfers",
                Out::List(r.transfers.iter().map(transfer_out).collect()),
            ),
        Message::Ping | Message::Unknown { .. } => d,
        Message::Pong { re } => d.put("re", Out::uint(*re)),
        Message::Bye { code, text } => d
            .put("code", Out::str(code.as_str()))
            .put("text", Out::str(text)),
    }
}

fn transfer_out(t: &Transfer) -> Out {
    DictOut::default()
        .put("ih", Out::bytes(&t.ih.0))
        .put("addr", Out::str(&t.addr))
        .put("down", Out::uint(t.down))
        .put("up", Out::uint(t.up))
        .put("errors", Out::uint(t.errors))
        .put("state", Out::str(&t.state))
        .done()
}

fn compact(addrs: &[&SocketAddr]) -> Option<Out> {
    if addrs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for a in addrs {
        match a.ip() {
            IpAddr::V4(ip) => out.extend(ip.octets()),
            IpAddr::V6(ip) => out.extend(ip.octets()),
        }
        out.extend(a.port().to_be_bytes());
    }
    Some(Out::Bytes(out))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
