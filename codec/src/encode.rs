//! Streaming encoder: plaintext `Read` in, k + m shard `Write`rs out, memory bounded by one segment.

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
    geometry.validate()?;
    let (k, n) = (usize::from(geometry.k), geometry.shard_count());
    if shards.len() != n {
        return Err(EncodeError::WriterCount {
            expected: n,
            actual: shards.len(),
        });
    }
    let rs = ReedSolomon::new(k, usize::from(geometry.m)).expect("geometry validated k and m");
    let block = geometry.block_size as usize;
    let mut plain = vec![0u8; geometry.segment_size as usize];
    let mut area = vec![0u8; k * block];
    let mut parity: Vec<Vec<u8>> = (k..n).map(|_| vec![0u8; block]).collect();
    let mut sha = Sha256::new();
    let mut pieces: Vec<Vec<[u8; 20]>> = vec![Vec::new(); n];
    let mut input = Lookahead::new(input);
    let mut size = 0u64;

    for s in 0.. {
        let len = input.fill(&mut plain).map_err(EncodeError::Read)?;
        let last = input.at_end().map_err(EncodeError::Read)?;
        size += len as u64;
        let plain = &plain[..len];
        let sealed_len = Layout::new(geometry, len as u64)?.sealed_len(0) as usize;
        let block_len = sealed_len.div_ceil(k);

        // The content hash is sequential: run it beside all the parallel work of the segment.
        let (area, parity) = (&mut area[..k * block_len], &mut parity);
        let ((), hashes) = rayon::join(
            || sha.update(plain),
            || {
                segment::seal(key, s, plain, last, area);
                let data: Vec<&[u8]> = area.chunks(block_len).collect();
                let mut par: Vec<&mut [u8]> =
                    parity.iter_mut().map(|p| &mut p[..block_len]).collect();
                segment::encode_parity(&rs, &data, &mut par);
                let all: Vec<&[u8]> = data
                    .iter()
                    .copied()
                    .chain(par.iter().map(|p| &**p))
                    .collect();
                segment::hash_pieces(&all, geometry.piece_length as usize)
            },
        );
        for (i, h) in hashes.into_iter().enumerate() {
            pieces[i].extend(h);
        }
        let all = area
            .chunks(block_len)
            .chain(parity.iter().map(|p| &p[..block_len]));
        for (index, (w, bytes)) in shards.iter_mut().zip(all).enumerate() {
            w.write_all(bytes)
                .map_err(|source| EncodeError::Write { index, source })?;
        }
        if last {
            break;
        }
    }
    Ok(Encoded {
        layout: Layout::new(geometry, size)?,
        sha256: sha.finalize().into(),
        pieces,
    })
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
