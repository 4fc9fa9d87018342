//! Streaming encoder: plaintext `Read` (or segments, [`SegmentEncoder`]) in, k + m shard
//! `Write`rs out, memory bounded by one segment (two of plaintext in [`encode`], which reads the
//! next while it codes one).

use std::io::{self, Read, Write};

use reed_solomon_erasure::galois_8::ReedSolomon;
use sha2::{Digest, Sha256};

use crate::crypto::DataKey;
use crate::layout::{Geometry, Layout, LayoutError};
use crate::manifest::{KeyRef, Manifest, ShardRef};
use crate::metainfo::ShardInfo;
use crate::segment;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{expected} shard writers are needed (k + m), {actual} were given")]
    WriterCount { expected: usize, actual: usize },
    #[error("reading the object failed: {0}")]
    Read(#[source] io::Error),
    #[error("segments pushed out of order: {0}")]
    Order(&'static str),
    #[error("writing shard {index} failed: {source}")]
    Write {
        index: usize,
        #[source]
        source: io::Error,
    },
}

/// What encoding produced, besides the shard bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub layout: Layout,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Piece hashes of each shard, in shard order.
    pub pieces: Vec<Vec<[u8; 20]>>,
}

impl Encoded {
    /// One shard torrent per shard, each with a fresh opaque name.
    pub fn shard_infos(&self) -> Vec<ShardInfo> {
        self.pieces
            .iter()
            .map(|pieces| ShardInfo {
                name: ShardInfo::random_name(),
                length: self.layout.shard_len(),
                piece_length: self.layout.geometry.piece_length,
                pieces: pieces.clone(),
            })
            .collect()
    }

    /// The manifest that ties this object to `shards` (as returned by [`Encoded::shard_infos`]).
    pub fn manifest(&self, key: KeyRef, shards: &[ShardInfo]) -> Manifest {
        Manifest {
            layout: self.layout,
            sha256: self.sha256,
            key,
            shards: shards
                .iter()
                .map(|s| ShardRef {
                    info_hash: s.info_hash(),
                    length: s.length,
                    piece_length: s.piece_length,
                })
                .collect(),
        }
    }
}

/// Encrypts and erasure-codes everything `input` yields. Shard `i` is written to `shards[i]` block by
/// block, in order; the writers are not flushed.
pub fn encode<R: Read, W: Write>(
    geometry: Geometry,
    key: &DataKey,
    input: R,
    shards: &mut [W],
) -> Result<Encoded, EncodeError> {
    let mut encoder = SegmentEncoder::new(geometry, key)?;
    let mut input = Lookahead::new(input);
    let mut plain = vec![0u8; encoder.segment_size()];
    let mut next = vec![0u8; encoder.segment_size()];
    let (mut len, mut last) = input.segment(&mut plain).map_err(EncodeError::Read)?;
    loop {
        let block_len = encoder.admit(&plain[..len], last, shards.len())?;
        // Code this segment on the pool while this thread reads the next one: the reader needs
        // no `Send`, and reading no longer leaves the cores idle.
        let read = rayon::in_place_scope(|scope| {
            let (encoder, plain) = (&mut encoder, &plain[..len]);
            scope.spawn(move |_| encoder.code(plain, last, block_len));
            (!last).then(|| input.segment(&mut next))
        });
        encoder.write(block_len, shards)?;
        let Some(read) = read else {
            return encoder.finish();
        };
        (len, last) = read.map_err(EncodeError::Read)?;
        std::mem::swap(&mut plain, &mut next);
    }
}

/// Encodes an object one segment at a time, for callers that receive the plaintext in parts
/// (an upload arriving over the network reads a segment without holding a thread, then hands
/// it over). [`encode`] is this over a `Read`.
pub struct SegmentEncoder {
    geometry: Geometry,
    key: DataKey,
    rs: ReedSolomon,
    area: Vec<u8>,
    parity: Vec<Vec<u8>>,
    sha: Sha256,
    pieces: Vec<Vec<[u8; 20]>>,
    size: u64,
    segment: u64,
    ended: bool,
}

impl SegmentEncoder {
    pub fn new(geometry: Geometry, key: &DataKey) -> Result<Self, EncodeError> {
        geometry.validate()?;
        let (k, n) = (usize::from(geometry.k), geometry.shard_count());
        // Sized by the first segment pushed: an object far smaller than a segment (an S3 part of
        // a few MiB against 32 MiB segments) costs memory for what it holds, not for a segment.
        Ok(SegmentEncoder {
            geometry,
            key: key.clone(),
            rs: ReedSolomon::new(k, usize::from(geometry.m)).expect("geometry validated k and m"),
            area: Vec::new(),
            parity: vec![Vec::new(); n - k],
            sha: Sha256::new(),
            pieces: vec![Vec::new(); n],
            size: 0,
            segment: 0,
            ended: false,
        })
    }

    /// Plaintext bytes of every segment but the last.
    pub fn segment_size(&self) -> usize {
        self.geometry.segment_size as usize
    }

    /// Encodes the next segment, `plain`: a whole segment unless it is the `last` (which may be
    /// shorter, or empty for an empty object), and writes its block of each shard to `shards`.
    pub fn push<W: Write>(
        &mut self,
        plain: &[u8],
        last: bool,
        shards: &mut [W],
    ) -> Result<(), EncodeError> {
        let block_len = self.admit(plain, last, shards.len())?;
        self.code(plain, last, block_len);
        self.write(block_len, shards)
    }

    /// Checks that `plain` may be the next segment, counts it, and returns its block length.
    fn admit(&mut self, plain: &[u8], last: bool, writers: usize) -> Result<usize, EncodeError> {
        let n = self.geometry.shard_count();
        if writers != n {
            return Err(EncodeError::WriterCount {
                expected: n,
                actual: writers,
            });
        }
        if self.ended {
            return Err(EncodeError::Order("a segment after the last one"));
        }
        if plain.len() > self.segment_size() || (!last && plain.len() < self.segment_size()) {
            return Err(EncodeError::Order(
                "every segment but the last must be exactly the segment size",
            ));
        }
        let sealed_len = Layout::new(self.geometry, plain.len() as u64)?.sealed_len(0) as usize;
        self.size += plain.len() as u64;
        self.ended = last;
        Ok(sealed_len.div_ceil(usize::from(self.geometry.k)))
    }

    /// Seals, codes and hashes one admitted segment into the encoder's blocks; writes nothing, so
    /// it can run on the pool while the caller does I/O.
    fn code(&mut self, plain: &[u8], last: bool, block_len: usize) {
        let k = usize::from(self.geometry.k);
        grow(&mut self.area, k * block_len);
        for p in &mut self.parity {
            grow(p, block_len);
        }
        let (s, key, rs) = (self.segment, &self.key, &self.rs);
        let piece_length = self.geometry.piece_length as usize;
        // The content hash is sequential: run it beside all the parallel work of the segment.
        let (area, parity, sha) = (
            &mut self.area[..k * block_len],
            &mut self.parity,
            &mut self.sha,
        );
        let ((), hashes) = rayon::join(
            || sha.update(plain),
            || {
                segment::seal(key, s, plain, last, area);
                let data: Vec<&[u8]> = area.chunks(block_len).collect();
                let mut par: Vec<&mut [u8]> =
                    parity.iter_mut().map(|p| &mut p[..block_len]).collect();
                segment::encode_parity(rs, &data, &mut par);
                let all: Vec<&[u8]> = data
                    .iter()
                    .copied()
                    .chain(par.iter().map(|p| &**p))
                    .collect();
                segment::hash_pieces(&all, piece_length)
            },
        );
        for (i, h) in hashes.into_iter().enumerate() {
            self.pieces[i].extend(h);
        }
        self.segment += 1;
    }

    /// Writes the blocks of the segment just coded, one to each shard.
    fn write<W: Write>(&self, block_len: usize, shards: &mut [W]) -> Result<(), EncodeError> {
        let k = usize::from(self.geometry.k);
        let all = self.area[..k * block_len]
            .chunks(block_len)
            .chain(self.parity.iter().map(|p| &p[..block_len]));
        for (index, (w, bytes)) in shards.iter_mut().zip(all).enumerate() {
            w.write_all(bytes)
                .map_err(|source| EncodeError::Write { index, source })?;
        }
        Ok(())
    }

    /// What encoding produced, once the last segment was pushed.
    pub fn finish(self) -> Result<Encoded, EncodeError> {
        if !self.ended {
            return Err(EncodeError::Order("finished before the last segment"));
        }
        Ok(Encoded {
            layout: Layout::new(self.geometry, self.size)?,
            sha256: self.sha.finalize().into(),
            pieces: self.pieces,
        })
    }
}

/// Makes `buf` at least `len` bytes long.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// A reader that can tell whether it is exhausted before the caller asks for more, so the encoder
/// knows which segment is the last while it still holds it.
struct Lookahead<R> {
    inner: R,
    peeked: Option<u8>,
}

impl<R: Read> Lookahead<R> {
    fn new(inner: R) -> Self {
        Lookahead {
            inner,
            peeked: None,
        }
    }

    /// Fills `buf` completely unless the input ends first; returns the bytes written.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if let Some(b) = self.peeked.take() {
            buf[0] = b;
            n = 1;
        }
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(r) => n += r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Fills `buf` as [`Lookahead::fill`] does, and tells whether the input ended there.
    fn segment(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let len = self.fill(buf)?;
        Ok((len, self.at_end()?))
    }

    fn at_end(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
