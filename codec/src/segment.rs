//! The work done on one segment, shared by the encoder, the decoder and the rebuilder: sealing and opening chunks,
//! Reed-Solomon over column stripes, and piece hashing, each spread over every core with rayon.
//!
//! A segment's sealed bytes live in one contiguous *data area*; data block `i` of the segment is
//! `area[i * block_len .. (i + 1) * block_len]` (for full segments `block_len == block_size`, a
//! multiple of the 64 KiB chunk, so a chunk never straddles two blocks there; in the shorter last
//! segment it may, which is why the area is contiguous).

use rayon::prelude::*;
use reed_solomon_erasure::galois_8::ReedSolomon;
use sha1::{Digest, Sha1};

use crate::crypto::{CryptoError, DataKey};
use crate::layout::{CHUNK_CIPHERTEXT, CHUNK_PLAINTEXT, TAG_LEN};

/// Columns per parallel Reed-Solomon task: large enough to amortise the task, small enough to spread.
const STRIPE: usize = 256 * 1024;

/// Seals `plain` (one segment) into `area` chunk by chunk, zero-filling `area` after the sealed bytes.
/// `area` must hold at least the sealed length.
pub(crate) fn seal(key: &DataKey, segment: u64, plain: &[u8], last_segment: bool, area: &mut [u8]) {
    let chunks = plain.len().div_ceil(CHUNK_PLAINTEXT as usize).max(1);
    let sealed = plain.len() + chunks * TAG_LEN as usize;
    area[sealed..].fill(0);
    area[..sealed]
        .par_chunks_mut(CHUNK_CIPHERTEXT as usize)
        .enumerate()
        .for_each(|(c, slot)| {
            let start = c * CHUNK_PLAINTEXT as usize;
            let pt = &plain[start..(start + CHUNK_PLAINTEXT as usize).min(plain.len())];
            let (body, tag) = slot.split_at_mut(pt.len());
            body.copy_from_slice(pt);
            let last = last_segment && c + 1 == chunks;
            tag[..TAG_LEN as usize].copy_from_slice(&key.seal_chunk(segment, c as u64, last, body));
        });
}

/// Opens chunks `first..first + n` of a segment whose chunk slots start at `area[0]` (slot `c - first`
/// at `(c - first) * 64 KiB`), in place. Returns each chunk's plaintext length, in order.
pub(crate) fn open(
    key: &DataKey,
    segment: u64,
    first: u64,
    last_chunk_of_object: Option<u64>,
    area: &mut [u8],
) -> Result<Vec<usize>, (u64, CryptoError)> {
    area.par_chunks_mut(CHUNK_CIPHERTEXT as usize)
        .enumerate()
        .map(|(i, slot)| {
            let c = first + i as u64;
            let last = last_chunk_of_object == Some(c);
            key.open_chunk(segment, c, last, slot).map_err(|e| (c, e))
        })
        .collect()
}

/// Computes the parity blocks from the data blocks, stripe by stripe in parallel.
pub(crate) fn encode_parity(rs: &ReedSolomon, data: &[&[u8]], parity: &mut [&mut [u8]]) {
    let len = data[0].len();
    let mut stripes: Vec<Vec<&mut [u8]>> = (0..len.div_ceil(STRIPE)).map(|_| Vec::new()).collect();
    for p in parity.iter_mut() {
        for (s, chunk) in p.chunks_mut(STRIPE).enumerate() {
            stripes[s].push(chunk);
        }
    }
    stripes
        .into_par_iter()
        .enumerate()
        .for_each(|(s, mut out)| {
            let cols = s * STRIPE..((s + 1) * STRIPE).min(len);
            let ins: Vec<&[u8]> = data.iter().map(|d| &d[cols.clone()]).collect();
            rs.encode_sep(&ins, &mut out)
                .expect("shard counts and lengths match the codec");
        });
}

/// Rebuilds the missing data blocks, and the missing parity blocks too when `parity` is set.
/// `blocks` holds all k + m blocks of equal length; `present[i]` says whether block i holds good
/// bytes. At least k must be present.
pub(crate) fn reconstruct(
    rs: &ReedSolomon,
    blocks: &mut [&mut [u8]],
    present: &[bool],
    parity: bool,
) {
    let len = blocks[0].len();
    let n = blocks.len();
    let mut stripes: Vec<Vec<(&mut [u8], bool)>> = (0..len.div_ceil(STRIPE))
        .map(|_| Vec::with_capacity(n))
        .collect();
    for (b, ok) in blocks.iter_mut().zip(present) {
        for (s, chunk) in b.chunks_mut(STRIPE).enumerate() {
            stripes[s].push((chunk, *ok));
        }
    }
    stripes.into_par_iter().for_each(|mut stripe| {
        if parity {
            rs.reconstruct(&mut stripe)
        } else {
            rs.reconstruct_data(&mut stripe)
        }
        .expect("at least k blocks are present");
    });
}

/// SHA-1 of every piece of every block, in parallel; `out[b]` gets block b's piece hashes.
pub(crate) fn hash_pieces(blocks: &[&[u8]], piece_length: usize) -> Vec<Vec<[u8; 20]>> {
    let jobs: Vec<(usize, &[u8])> = blocks
        .iter()
        .enumerate()
        .flat_map(|(b, block)| block.chunks(piece_length).map(move |p| (b, p)))
        .collect();
    let hashes: Vec<(usize, [u8; 20])> = jobs
        .into_par_iter()
        .map(|(b, p)| (b, Sha1::digest(p).into()))
        .collect();
    let mut out = vec![Vec::new(); blocks.len()];
    for (b, h) in hashes {
        out[b].push(h);
    }
    out
}
