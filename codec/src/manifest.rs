//! The manifest: the gateway's versioned, bencoded record of one stored object.
//!
//! It is the only thing that ties an object to its shards; nodes never see it. Layout (bencoded dict,
//! keys sorted as BEP 3 requires):
//!
//! | key | value |
//! |---|---|
//! | `v` | format version, `1` |
//! | `size` | plaintext bytes |
//! | `sha256` | SHA-256 of the plaintext (32 bytes) |
//! | `segment size`, `block size`, `piece length`, `k`, `m` | the [`Geometry`] |
//! | `cipher` | `aes-256-gcm` |
//! | `key` | `{kind: wrapped, kek, nonce, sealed}` or `{kind: client, fingerprint}` |
//! | `shards` | list of `k + m` dicts `{info hash (20 bytes), length, piece length}`, in shard order |
//!
//! Readers refuse a version they do not know (rather than misread it) and ignore keys they do not know,
//! so a later version 1 writer may add optional keys.

use bendy::encoding::Encoder;

use crate::bencode::{self, FieldProblem};
use crate::crypto::WrappedKey;
use crate::layout::{Geometry, Layout, LayoutError};
use crate::metainfo::InfoHash;

pub const MANIFEST_VERSION: u64 = 1;
pub const MAX_MANIFEST_LEN: usize = 1 << 20;
const CIPHER: &str = "aes-256-gcm";

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than {MAX_MANIFEST_LEN}")]
    TooLarge(usize),
    #[error(transparent)]
    Bencode(#[from] bencode::BencodeError),
    #[error("missing field {0:?}")]
    Missing(&'static str),
    #[error("field {field:?} must be a {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("manifest version {0} is not supported (this build reads version {MANIFEST_VERSION})")]
    UnsupportedVersion(u64),
    #[error("cipher {0:?} is not supported")]
    UnsupportedCipher(String),
    #[error("key kind {0:?} is not supported")]
    UnsupportedKeyKind(String),
    #[error("field {field:?} must be {len} bytes")]
    FixedLength { field: &'static str, len: usize },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{actual} shards listed for k + m = {expected}")]
    ShardCount { expected: usize, actual: usize },
    #[error("shard {index} is described as {length} bytes / {piece_length}-byte pieces; the layout says {expected_length} / {expected_piece_length}")]
    ShardShape {
        index: usize,
        length: u64,
        piece_length: u64,
        expected_length: u64,
        expected_piece_length: u64,
    },
}

impl From<FieldProblem> for ManifestError {
    fn from(p: FieldProblem) -> Self {
        match p {
            FieldProblem::Missing(f) => ManifestError::Missing(f),
            FieldProblem::WrongType { field, expected } => {
                ManifestError::WrongType { field, expected }
            }
        }
    }
}

/// How to get the object's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// Sealed under a gateway master key.
    Wrapped(WrappedKey),
    /// Kept by the client; only its fingerprint is stored.
    Client { fingerprint: [u8; 16] },
}

/// One shard as the manifest knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRef {
    pub info_hash: InfoHash,
    pub length: u64,
    pub piece_length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub layout: Layout,
    pub sha256: [u8; 32],
    pub key: KeyRef,
    pub shards: Vec<ShardRef>,
}

impl Manifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        let g = &self.layout.geometry;
        let mut e = Encoder::new();
        e.emit_dict(|mut d| {
            d.emit_pair(b"block size", g.block_size)?;
            d.emit_pair(b"cipher", CIPHER)?;
            d.emit_pair(b"k", g.k)?;
            d.emit_pair_with(b"key", |e| emit_key(e, &self.key))?;
            d.emit_pair(b"m", g.m)?;
            d.emit_pair(b"piece length", g.piece_length)?;
            d.emit_pair(b"segment size", g.segment_size)?;
            d.emit_pair_with(b"sha256", |e| e.emit_bytes(&self.sha256))?;
            d.emit_pair_with(b"shards", |e| {
                e.emit_list(|e| {
                    for s in &self.shards {
                        e.emit_dict(|mut d| {
                            d.emit_pair_with(b"info hash", |e| e.emit_bytes(&s.info_hash.0))?;
                            d.emit_pair(b"length", s.length)?;
                            d.emit_pair(b"piece length", s.piece_length)
                        })?;
                    }
                    Ok(())
                })
            })?;
            d.emit_pair(b"size", self.layout.size)?;
            d.emit_pair(b"v", MANIFEST_VERSION)
        })
        .expect("keys are emitted in order");
        e.get_output().expect("one complete dict")
    }

    /// Parses and checks a manifest: geometry invariants, shard count and every shard's shape.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let root = bencode::decode(bytes)?;
        let d = &root.dict("(root)")?;
        let version = d.req("v")?.u64("v")?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let cipher = d.req("cipher")?.str("cipher")?;
        if cipher != CIPHER {
            return Err(ManifestError::UnsupportedCipher(cipher.to_owned()));
        }
        let small = |field: &'static str| -> Result<u16, ManifestError> {
            u16::try_from(d.req(field)?.u64(field)?).map_err(|_| ManifestError::WrongType {
                field,
                expected: "count up to 65535",
            })
        };
        let geometry = Geometry {
            k: small("k")?,
            m: small("m")?,
            segment_size: d.req("segment size")?.u64("segment size")?,
            block_size: d.req("block size")?.u64("block size")?,
            piece_length: d.req("piece length")?.u64("piece length")?,
        };
        let layout = Layout::new(geometry, d.req("size")?.u64("size")?)?;
        let sha256 = fixed::<32>(d.req("sha256")?.bytes("sha256")?, "sha256")?;
        let key = parse_key(d.req("key")?.dict("key")?)?;
        let list = d.req("shards")?.list("shards")?;
        if list.len() != geometry.shard_count() {
            return Err(ManifestError::ShardCount {
                expected: geometry.shard_count(),
                actual: list.len(),
            });
        }
        let mut shards = Vec::with_capacity(list.len());
        for (index, s) in list.iter().enumerate() {
            let s = s.dict("shards")?;
            let shard = ShardRef {
                info_hash: InfoHash(fixed::<20>(
                    s.req("info hash")?.bytes("info hash")?,
                    "info hash",
                )?),
                length: s.req("length")?.u64("length")?,
                piece_length: s.req("piece length")?.u64("piece length")?,
            };
            if shard.length != layout.shard_len() || shard.piece_length != geometry.piece_length {
                return Err(ManifestError::ShardShape {
                    index,
                    length: shard.length,
                    piece_length: shard.piece_length,
                    expected_length: layout.shard_len(),
                    expected_piece_length: geometry.piece_length,
                });
            }
            shards.push(shard);
        }
        Ok(Manifest {
            layout,
            sha256,
            key,
            shards,
        })
    }
}

/// The `key` dict: how to get an object's data key (the manifest's and a sealed object's).
pub(crate) fn emit_key(
    e: bendy::encoding::SingleItemEncoder<'_>,
    key: &KeyRef,
) -> Result<(), bendy::encoding::Error> {
    e.emit_dict(|mut d| match key {
        KeyRef::Wrapped(w) => {
            d.emit_pair(b"kek", w.kek_id.as_str())?;
            d.emit_pair(b"kind", "wrapped")?;
            d.emit_pair_with(b"nonce", |e| e.emit_bytes(&w.nonce))?;
            d.emit_pair_with(b"sealed", |e| e.emit_bytes(&w.sealed))
        }
        KeyRef::Client { fingerprint } => {
            d.emit_pair_with(b"fingerprint", |e| e.emit_bytes(fingerprint))?;
            d.emit_pair(b"kind", "client")
        }
    })
}

pub(crate) fn parse_key(d: &bencode::Dict<'_>) -> Result<KeyRef, ManifestError> {
    match d.req("kind")?.str("kind")? {
        "wrapped" => Ok(KeyRef::Wrapped(WrappedKey {
            kek_id: d.req("kek")?.str("kek")?.to_owned(),
            nonce: fixed::<12>(d.req("nonce")?.bytes("nonce")?, "nonce")?,
            sealed: fixed::<48>(d.req("sealed")?.bytes("sealed")?, "sealed")?,
        })),
        "client" => Ok(KeyRef::Client {
            fingerprint: fixed::<16>(d.req("fingerprint")?.bytes("fingerprint")?, "fingerprint")?,
        }),
        other => Err(ManifestError::UnsupportedKeyKind(other.to_owned())),
    }
}

pub(crate) fn fixed<const N: usize>(
    b: &[u8],
    field: &'static str,
) -> Result<[u8; N], ManifestError> {
    b.try_into()
        .map_err(|_| ManifestError::FixedLength { field, len: N })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_manifest() -> impl Strategy<Value = Manifest> {
        (
            1u16..=16,
            1u16..=8,
            1u64 << 16..=1 << 28,
            0u64..1 << 40,
            any::<bool>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(k, m, target, size, wrapped, seed)| {
                let g = Geometry::choose(k, m, target, Some(size)).unwrap();
                let layout = Layout::new(g, size).unwrap();
                let key = if wrapped {
                    KeyRef::Wrapped(WrappedKey {
                        kek_id: format!("kek-{}", seed[0]),
                        nonce: seed[..12].try_into().unwrap(),
                        sealed: [seed[1]; 48],
                    })
                } else {
                    KeyRef::Client {
                        fingerprint: seed[..16].try_into().unwrap(),
                    }
                };
                let shards = (0..g.shard_count())
                    .map(|i| ShardRef {
                        info_hash: InfoHash([i as u8 ^ seed[2]; 20]),
                        length: layout.shard_len(),
                        piece_length: g.piece_length,
                    })
                    .collect();
                Manifest {
                    layout,
                    sha256: seed,
                    key,
                    shards,
                }
            })
    }

    proptest! {
        #[test]
        fn manifest_round_trips(m in arb_manifest()) {
            let bytes = m.to_bytes();
            prop_assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::parse(&bytes);
        }
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let bytes = b"d1:vi2ee";
        assert_eq!(
            Manifest::parse(bytes),
            Err(ManifestError::UnsupportedVersion(2))
        );
    }
}
