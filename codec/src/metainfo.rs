//! BitTorrent v1 metainfo (BEP 3, BEP 12 announce-list, BEP 27 private): building the torrent of a
//! shard, and strictly parsing metainfo that arrives from anywhere.
//!
//! Shard torrent conventions (see `bep-spec/` for the normative text):
//! - single-file; `name` is an opaque random id (32 lowercase hex digits) that says nothing of the
//!   object, its sibling shards, k or m; the info dict holds exactly `length`, `name`,
//!   `piece length`, `pieces` and `private = 1`;
//! - `announce` / `announce-list` are chosen by the gateway (they carry a node's passkey) and are
//!   outside the info dict, so one shard has one info-hash whoever it is handed to.
//!
//! The info-hash is the SHA-1 of the info dict's bytes exactly as received.

use std::fmt;

use bendy::encoding::{Encoder, SingleItemEncoder};
use ring::rand::{SecureRandom, SystemRandom};
use sha1::{Digest, Sha1};

use crate::bencode::{self, FieldProblem, Value};

/// Largest metainfo accepted: about 1.6 million pieces.
pub const MAX_METAINFO_LEN: usize = 32 << 20;
/// Most files accepted in a multi-file torrent.
pub const MAX_FILES: usize = 100_000;
/// Largest total torrent size accepted (1 PiB).
pub const MAX_TOTAL_LEN: u64 = 1 << 50;
const MAX_NAME_LEN: usize = 255;
const MAX_TRACKERS: usize = 200;

/// A v1 info-hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn of_info_bytes(info: &[u8]) -> Self {
        InfoHash(Sha1::digest(info).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(InfoHash(out))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

/// Why metainfo bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("metainfo is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Bencode(#[from] bencode::BencodeError),
    #[error("missing field {0:?}")]
    Missing(&'static str),
    #[error("field {field:?} must be a {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("piece length {0} is not a power of two between 16 KiB and 64 MiB")]
    PieceLength(u64),
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesLength(usize),
    #[error("{actual} piece hashes for {expected} pieces")]
    PieceCount { expected: u64, actual: u64 },
    #[error("the torrent holds no data")]
    Empty,
    #[error("total length is above {MAX_TOTAL_LEN} bytes")]
    TooLong,
    #[error("info has both `length` and `files`, or neither")]
    LengthOrFiles,
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("unsafe name or path component {0:?}")]
    UnsafePath(String),
    #[error("too many trackers in announce-list")]
    TooManyTrackers,
    #[error("not a shard torrent: {0}")]
    NotAShard(&'static str),
}

impl From<FieldProblem> for MetainfoError {
    fn from(p: FieldProblem) -> Self {
        match p {
            FieldProblem::Missing(f) => MetainfoError::Missing(f),
            FieldProblem::WrongType { field, expected } => {
                MetainfoError::WrongType { field, expected }
            }
        }
    }
}

/// What files a torrent describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    Single { length: u64 },
    Multi(Vec<FileEntry>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's directory, each checked safe.
    pub path: Vec<String>,
    pub length: u64,
}

/// A parsed info dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub piece_length: u64,
    pub pieces: Vec<[u8; 20]>,
    pub private: bool,
    pub files: Files,
}

impl Info {
    pub fn total_length(&self) -> u64 {
        match &self.files {
            Files::Single { length } => *length,
            Files::Multi(files) => files.iter().map(|f| f.length).sum(),
        }
    }
}

/// A parsed .torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub announce: Option<String>,
    pub announce_list: Vec<Vec<String>>,
    pub info: Info,
    /// The info dict exactly as it was received.
    pub info_bytes: Vec<u8>,
    pub info_hash: InfoHash,
}

impl Metainfo {
    /// Parses untrusted metainfo. Keys this parser does not know are ignored (they are still part of
    /// the info-hash when they sit inside `info`).
    pub fn parse(bytes: &[u8]) -> Result<Self, MetainfoError> {
        if bytes.len() > MAX_METAINFO_LEN {
            return Err(MetainfoError::TooLarge {
                len: bytes.len(),
                max: MAX_METAINFO_LEN,
            });
        }
        let root = bencode::decode(bytes)?;
        let root = &root.dict("(root)")?;
        let announce = root
            .get("announce")
            .map(|v| v.str("announce").map(str::to_owned))
            .transpose()?;
        let announce_list = match root.get("announce-list") {
            None => Vec::new(),
            Some(v) => parse_announce_list(v)?,
        };
        let info_dict = root.req("info")?.dict("info")?;
        let info = parse_info(info_dict)?;
        Ok(Metainfo {
            announce,
            announce_list,
            info,
            info_bytes: info_dict.raw.to_vec(),
            info_hash: InfoHash::of_info_bytes(info_dict.raw),
        })
    }

    /// The same torrent with no tracker: the info dict exactly as received (so the same
    /// info-hash) and nothing else. A client given it announces nowhere.
    pub fn without_trackers(&self) -> Vec<u8> {
        [&b"d4:info"[..], &self.info_bytes, b"e"].concat()
    }

    /// Checks that this is a shard torrent by the conventions above and returns its shard view.
    pub fn shard(&self) -> Result<ShardInfo, MetainfoError> {
        let Files::Single { length } = self.info.files else {
            return Err(MetainfoError::NotAShard("a shard torrent is a single file"));
        };
        if !self.info.private {
            return Err(MetainfoError::NotAShard("a shard torrent is private"));
        }
        if !is_shard_name(&self.info.name) {
            return Err(MetainfoError::NotAShard(
                "a shard's name is 32 lowercase hex digits",
            ));
        }
        let shard = ShardInfo {
            name: self.info.name.clone(),
            length,
            piece_length: self.info.piece_length,
            pieces: self.info.pieces.clone(),
        };
        if shard.info_bytes() != self.info_bytes {
            return Err(MetainfoError::NotAShard(
                "a shard's info dict holds only the five shard keys",
            ));
        }
        Ok(shard)
    }
}

fn parse_announce_list(v: &Value<'_>) -> Result<Vec<Vec<String>>, MetainfoError> {
    let tiers = v.list("announce-list")?;
    let mut out = Vec::with_capacity(tiers.len());
    let mut count = 0;
    for tier in tiers {
        let urls = tier.list("announce-list")?;
        count += urls.len();
        if count > MAX_TRACKERS {
            return Err(MetainfoError::TooManyTrackers);
        }
        out.push(
            urls.iter()
                .map(|u| u.str("announce-list").map(str::to_owned))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(out)
}

fn parse_info(d: &bencode::Dict<'_>) -> Result<Info, MetainfoError> {
    let name = d.req("name")?.str("name")?;
    check_component(name)?;
    let piece_length = d.req("piece length")?.u64("piece length")?;
    if !piece_length.is_power_of_two() || !(16 << 10..=64 << 20).contains(&piece_length) {
        return Err(MetainfoError::PieceLength(piece_length));
    }
    let raw_pieces = d.req("pieces")?.bytes("pieces")?;
    if raw_pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesLength(raw_pieces.len()));
    }
    let private = match d.get("private") {
        None => false,
        Some(v) => v.u64("private")? == 1,
    };
    let files = match (d.get("length"), d.get("files")) {
        (Some(l), None) => Files::Single {
            length: l.u64("length")?,
        },
        (None, Some(f)) => Files::Multi(parse_files(f)?),
        _ => return Err(MetainfoError::LengthOrFiles),
    };
    let info = Info {
        name: name.to_owned(),
        piece_length,
        pieces: raw_pieces
            .chunks_exact(20)
            .map(|c| c.try_into().expect("chunks of 20"))
            .collect(),
        private,
        files,
    };
    let total = info.total_length();
    if total == 0 {
        return Err(MetainfoError::Empty);
    }
    let expected = total.div_ceil(piece_length);
    if expected != info.pieces.len() as u64 {
        return Err(MetainfoError::PieceCount {
            expected,
            actual: info.pieces.len() as u64,
        });
    }
    Ok(info)
}

fn parse_files(v: &Value<'_>) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = v.list("files")?;
    if list.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles);
    }
    let mut total: u64 = 0;
    let mut files = Vec::with_capacity(list.len());
    for f in list {
        let f = f.dict("files")?;
        let length = f.req("length")?.u64("length")?;
        total = total
            .checked_add(length)
            .filter(|t| *t <= MAX_TOTAL_LEN)
            .ok_or(MetainfoError::TooLong)?;
        let parts = f.req("path")?.list("path")?;
        if parts.is_empty() {
            return Err(MetainfoError::UnsafePath(String::new()));
        }
        let path = parts
            .iter()
            .map(|p| {
                let s = p.str("path")?;
                check_component(s)?;
                Ok(s.to_owned())
            })
            .collect::<Result<Vec<_>, MetainfoError>>()?;
        files.push(FileEntry { path, length });
    }
    Ok(files)
}

/// A name or path component is safe when it names one entry inside the torrent's directory.
fn check_component(s: &str) -> Result<(), MetainfoError> {
    let bad = s.is_empty()
        || s == "."
        || s == ".."
        || s.len() > MAX_NAME_LEN
        || s.chars()
            .any(|c| matches!(c, '/' | '\\' | '\0') || c.is_control())
        || (s.len() >= 2 && s.as_bytes()[1] == b':'); // a drive letter
    if bad {
        return Err(MetainfoError::UnsafePath(s.to_owned()));
    }
    Ok(())
}

fn is_shard_name(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The info of one shard torrent: what the gateway builds and what a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub name: String,
    pub length: u64,
    pub piece_length: u64,
    pub pieces: Vec<[u8; 20]>,
}

impl ShardInfo {
    /// A fresh opaque shard name: 128 random bits in hex.
    pub fn random_name() -> String {
        let mut id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut id)
            .expect("the system random number generator is available");
        hex::encode(id)
    }

    /// The canonical bencoded info dict.
    pub fn info_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.emit_with(|e| self.emit_info(e))
            .expect("keys are emitted in order");
        e.get_output().expect("one complete dict")
    }

    fn emit_info(&self, e: SingleItemEncoder<'_>) -> Result<(), bendy::encoding::Error> {
        e.emit_dict(|mut d| {
            d.emit_pair(b"length", self.length)?;
            d.emit_pair(b"name", self.name.as_str())?;
            d.emit_pair(b"piece length", self.piece_length)?;
            d.emit_pair_with(b"pieces", |e| e.emit_bytes(&self.pieces.concat()))?;
            d.emit_pair(b"private", 1u8)
        })
    }

    pub fn info_hash(&self) -> InfoHash {
        InfoHash::of_info_bytes(&self.info_bytes())
    }

    /// A complete .torrent file. `trackers` are BEP 12 tiers; the first URL is also `announce`.
    pub fn to_torrent(&self, trackers: &[Vec<String>]) -> Vec<u8> {
        let first = trackers.iter().flatten().next();
        let mut e = Encoder::new();
        e.emit_dict(|mut d| {
            if let Some(url) = first {
                d.emit_pair(b"announce", url.as_str())?;
            }
            if trackers.iter().flatten().count() > 1 {
                d.emit_pair_with(b"announce-list", |e| emit_tiers(e, trackers))?;
            }
            d.emit_pair_with(b"info", |e| self.emit_info(e))
        })
        .expect("keys are emitted in order");
        e.get_output().expect("one complete dict")
    }
}

fn emit_tiers(
    e: SingleItemEncoder<'_>,
    trackers: &[Vec<String>],
) -> Result<(), bendy::encoding::Error> {
    e.emit_list(|e| {
        for tier in trackers.iter().filter(|t| !t.is_empty()) {
            e.emit_list(|e| {
                for url in tier {
                    e.emit_str(url)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(len: u64, piece_length: u64) -> ShardInfo {
        let n = len.div_ceil(piece_length);
        ShardInfo {
            name: ShardInfo::random_name(),
            length: len,
            piece_length,
            pieces: (0..n).map(|i| [i as u8; 20]).collect(),
        }
    }

    proptest! {
        #[test]
        fn shard_torrent_round_trips(len in 1u64..1 << 32, exp in 14u32..23, tiers in proptest::collection::vec(proptest::collection::vec("[a-z]{1,8}", 0..3), 0..3)) {
            let s = shard(len, 1 << exp);
            let trackers: Vec<Vec<String>> = tiers.iter().map(|t| t.iter().map(|h| format!("http://{h}/announce")).collect()).collect();
            let bytes = s.to_torrent(&trackers);
            let m = Metainfo::parse(&bytes).unwrap();
            prop_assert_eq!(m.info_hash, s.info_hash());
            prop_assert_eq!(m.shard().unwrap(), s);
            prop_assert_eq!(m.announce.as_ref(), trackers.iter().flatten().next());
            let bare = Metainfo::parse(&m.without_trackers()).unwrap();
            prop_assert_eq!(bare.info_hash, m.info_hash);
            prop_assert!(bare.announce.is_none() && bare.announce_list.is_empty());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Metainfo::parse(&bytes);
        }
    }

    #[test]
    fn info_hash_is_over_the_bytes_received() {
        // Not canonical for us (an extra key), but valid: the hash must cover it as it stands.
        let info = b"d6:lengthi5e4:name4:a.gz12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa6:sourcei1ee";
        let torrent = [&b"d4:info"[..], info, b"e"].concat();
        let m = Metainfo::parse(&torrent).unwrap();
        assert_eq!(m.info_hash, InfoHash::of_info_bytes(info));
        assert_eq!(m.info_bytes, info);
        assert!(m.shard().is_err());
    }

    #[test]
    fn multi_file_paths_are_checked() {
        let mk = |path: &str| {
            format!(
                "d4:infod5:filesld6:lengthi3e4:pathl{}eee4:name1:d12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
                path
            )
        };
        assert!(Metainfo::parse(mk("1:a1:b").as_bytes()).is_ok());
        for bad in ["2:..", "0:", "3:a/b", "1:.", "4:C:xx"] {
            assert!(
                matches!(
                    Metainfo::parse(mk(bad).as_bytes()),
                    Err(MetainfoError::UnsafePath(_))
                ),
                "{bad} accepted"
            );
        }
    }
}
