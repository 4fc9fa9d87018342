//! Rebuilder: rewrites lost shards from any k of the others, byte for byte as the encoder wrote them.
//!
//! Reed-Solomon works on the sealed bytes, so no data key is needed: a gateway can restore a shard
//! whose every copy is gone without opening the object. Segment by segment, the rebuilder reads the
//! whole block of the segment from the first k inputs that are not targets, checks every piece of
//! them against the input's own piece hashes (a bad piece makes that input missing for the segment,
//! and the next input is read instead, as in the decoder), rebuilds the targets' blocks, and checks
//! every rebuilt piece against the target's piece hashes before a byte of it is written. A rebuilt
//! piece that fails its hash means the manifest, the shard torrents and the shards disagree: that is
//! an error, never a silently different shard.
//!
//! Memory is about k + m + 2 blocks (one segment and a half for the default codes): while one
//! segment's rebuilt blocks are written out on one core, the next segment is read, verified and coded
//! on the others.

use std::io::{self, Write};

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::decode::{ShardInput, ShardReader};
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::metainfo::{InfoHash, ShardInfo};
use crate::segment;

/// Why a rebuild failed. Nothing written to an output before the error may be used as the shard.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{expected} input slots are needed (k + m), {actual} were given")]
    ShardCount { expected: usize, actual: usize },
    #[error("{expected} outputs are needed (one per target), {actual} were given")]
    OutputCount { expected: usize, actual: usize },
    #[error("target {index} is not a shard of this object (k + m = {shards}) or is named twice")]
    BadTarget { index: usize, shards: usize },
    #[error("shard {index} has info-hash {actual}, the manifest says {expected}")]
    WrongShard {
        index: usize,
        expected: InfoHash,
        actual: InfoHash,
    },
    #[error("segment {segment}: only {available} of the {needed} shards needed could be read and verified")]
    NotEnoughShards {
        segment: u64,
        available: usize,
        needed: usize,
        /// What went wrong with the inputs up to this point, to blame the nodes that served them.
        report: Box<RebuildReport>,
    },
    #[error("rebuilt piece {piece} of shard {index} does not match its hash: the manifest and the shards disagree")]
    Mismatch { index: usize, piece: u64 },
    #[error("writing rebuilt shard {index} failed: {source}")]
    Write {
        index: usize,
        #[source]
        source: io::Error,
    },
}

/// A shard to rebuild: its index in the manifest and its torrent info (for the piece hashes).
#[derive(Debug, Clone, Copy)]
pub struct RebuildTarget<'a> {
    pub index: usize,
    pub info: &'a ShardInfo,
}

/// What a successful rebuild met on the way: for the gateway's reliability records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// (shard, piece) pairs of inputs whose bytes did not match the piece hash.
    pub bad_pieces: Vec<(usize, u64)>,
    /// Inputs that failed to read, with the error; they were not read again.
    pub failed_shards: Vec<(usize, String)>,
    /// Bytes read from the inputs.
    pub bytes_read: u64,
    /// Segments rebuilt.
    pub segments: u64,
}

/// Rebuilds the shards `targets` of the object `manifest` describes from `inputs` (one slot per shard,
/// `None` when that shard is not available) and writes target `j` to `outputs[j]`, block by block, in
/// order; the writers are not flushed. An input given for a target is not read: its bytes are what is
/// being replaced. Every input block used is verified against the input's piece hashes, and every
/// rebuilt piece against the target's, so what is written is exactly what the encoder wrote.
///
/// ```
/// use raidtorrent_codec::{encode, rebuild, DataKey, Geometry, KeyRef, RebuildTarget, ShardInput};
///
/// let object = b"kept on volunteer disks".repeat(5000);
/// let geometry = Geometry::choose(4, 2, 1 << 20, Some(object.len() as u64)).unwrap();
/// let key = DataKey::generate().unwrap();
/// let mut shards = vec![Vec::new(); 6];
/// let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
/// let infos = encoded.shard_infos();
/// let manifest = encoded.manifest(KeyRef::Client { fingerprint: key.fingerprint() }, &infos);
///
/// // Every copy of shards 0 and 5 is gone: rebuild both from the other four, without the key.
/// let inputs = (0..6)
///     .map(|i| (i != 0 && i != 5).then(|| ShardInput {
///         info: &infos[i],
///         reader: std::io::Cursor::new(&shards[i]),
///     }))
///     .collect();
/// let targets = [0, 5].map(|index| RebuildTarget { index, info: &infos[index] });
/// let mut rebuilt = vec![Vec::new(), Vec::new()];
/// rebuild(&manifest, inputs, &targets, &mut rebuilt).unwrap();
/// assert_eq!(rebuilt, [shards[0].clone(), shards[5].clone()]);
/// ```
pub fn rebuild<R: ShardReader + Send, W: Write + Send>(
    manifest: &Manifest,
    inputs: Vec<Option<ShardInput<'_, R>>>,
    targets: &[RebuildTarget<'_>],
    outputs: &mut [W],
) -> Result<RebuildReport, RebuildError> {
    let layout = manifest.layout;
    let n = layout.geometry.shard_count();
    if inputs.len() != n {
        return Err(RebuildError::ShardCount {
            expected: n,
            actual: inputs.len(),
        });
    }
    if outputs.len() != targets.len() {
        return Err(RebuildError::OutputCount {
            expected: targets.len(),
            actual: outputs.len(),
        });
    }
    let mut is_target = vec![false; n];
    for t in targets {
        if t.index >= n || is_target[t.index] {
            return Err(RebuildError::BadTarget {
                index: t.index,
                shards: n,
            });
        }
        is_target[t.index] = true;
        check_info(manifest, t.index, t.info)?;
    }
    for (index, s) in inputs.iter().enumerate() {
        if let Some(s) = s {
            check_info(manifest, index, s.info)?;
        }
    }
    let mut work = Work {
        layout,
        rs: ReedSolomon::new(layout.k(), usize::from(layout.geometry.m)).expect("validated"),
        // Targets are never read: their slots are where the rebuilt bytes go.
        inputs: inputs
            .into_iter()
            .zip(&is_target)
            .map(|(s, &t)| s.filter(|_| !t))
            .collect(),
        targets,
        parity: targets.iter().any(|t| t.index >= layout.k()),
        bufs: vec![Vec::new(); n],
        report: RebuildReport::default(),
    };
    if targets.is_empty() {
        return Ok(work.report);
    }
    // Two sets of target blocks rotate: one is written out while the next segment is rebuilt.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut ready: Option<Vec<Vec<u8>>> = None;
    for s in 0..layout.segment_count() {
        let previous = ready.take();
        let (written, rebuilt) = rayon::join(
            || previous.map(|p| emit(targets, p, outputs)).transpose(),
            || work.segment(s, &mut spare),
        );
        if let Some(bufs) = written? {
            spare.extend(bufs);
        }
        ready = Some(rebuilt?);
    }
    if let Some(last) = ready {
        emit(targets, last, outputs)?;
    }
    Ok(work.report)
}

fn check_info(manifest: &Manifest, index: usize, info: &ShardInfo) -> Result<(), RebuildError> {
    let actual = info.info_hash();
    let expected = manifest.shards[index].info_hash;
    if actual != expected {
        return Err(RebuildError::WrongShard {
            index,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Writes one segment's rebuilt blocks (in target order) and gives the buffers back for reuse.
fn emit<W: Write>(
    targets: &[RebuildTarget<'_>],
    blocks: Vec<Vec<u8>>,
    outputs: &mut [W],
) -> Result<Vec<Vec<u8>>, RebuildError> {
    for ((t, out), block) in targets.iter().zip(outputs.iter_mut()).zip(&blocks) {
        out.write_all(block).map_err(|source| RebuildError::Write {
            index: t.index,
            source,
        })?;
    }
    Ok(blocks)
}

struct Work<'a, 't, R> {
    layout: Layout,
    rs: ReedSolomon,
    inputs: Vec<Option<ShardInput<'a, R>>>,
    targets: &'t [RebuildTarget<'t>],
    /// Some target is a parity shard, so parity must be recomputed too, not only data.
    parity: bool,
    /// One block buffer per shard, reused from segment to segment.
    bufs: Vec<Vec<u8>>,
    report: RebuildReport,
}

impl<R: ShardReader> Work<'_, '_, R> {
    /// Rebuilds segment `s`'s target blocks and returns them in target order, verified.
    fn segment(&mut self, s: u64, spare: &mut Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, RebuildError> {
        let k = self.layout.k();
        let bl = self.layout.block_len(s) as usize;
        for b in &mut self.bufs {
            b.resize(bl, 0);
        }
        let present = self.gather(s, bl)?;
        let mut blocks: Vec<&mut [u8]> = self.bufs.iter_mut().map(|b| &mut b[..]).collect();
        segment::reconstruct(&self.rs, &mut blocks, &present, self.parity);
        debug_assert_eq!(present.iter().filter(|p| **p).count(), k);

        let rebuilt: Vec<&[u8]> = self
            .targets
            .iter()
            .map(|t| &self.bufs[t.index][..])
            .collect();
        let hashes = segment::hash_pieces(&rebuilt, self.layout.geometry.piece_length as usize);
        let first = self.first_piece(s);
        for (t, hashes) in self.targets.iter().zip(hashes) {
            for (j, h) in hashes.iter().enumerate() {
                let piece = first + j as u64;
                if t.info.pieces.get(piece as usize) != Some(h) {
                    return Err(RebuildError::Mismatch {
                        index: t.index,
                        piece,
                    });
                }
            }
        }
        self.report.segments += 1;
        // Hand the rebuilt blocks out; fresh (or recycled) buffers take their slots.
        Ok(self
            .targets
            .iter()
            .map(|t| std::mem::replace(&mut self.bufs[t.index], spare.pop().unwrap_or_default()))
            .collect())
    }

    fn first_piece(&self, s: u64) -> u64 {
        self.layout.block_offset(s) / self.layout.geometry.piece_length
    }

    /// Reads segment `s`'s blocks from inputs, in shard order, until k verify (or none are left).
    /// Returns which shards' buffers hold good blocks: exactly k of them.
    fn gather(&mut self, s: u64, bl: usize) -> Result<Vec<bool>, RebuildError> {
        let k = self.layout.k();
        let n = self.inputs.len();
        let offset = self.layout.block_offset(s);
        let first = self.first_piece(s);
        let piece = self.layout.geometry.piece_length as usize;
        let mut present = vec![false; n];
        let mut count = 0;
        let mut next = 0;
        while count < k && next < n {
            // Read as many as are still needed, then verify them together on every core.
            let mut batch = Vec::new();
            while batch.len() < k - count && next < n {
                let i = next;
                next += 1;
                let Some(input) = self.inputs[i].as_mut() else {
                    continue;
                };
                match input.reader.read_at(offset, &mut self.bufs[i][..bl]) {
                    Ok(()) => {
                        self.report.bytes_read += bl as u64;
                        batch.push(i);
                    }
                    Err(e) => {
                        self.report.failed_shards.push((i, e.to_string()));
                        self.inputs[i] = None;
                    }
                }
            }
            let blocks: Vec<&[u8]> = batch.iter().map(|&i| &self.bufs[i][..bl]).collect();
            let hashes = segment::hash_pieces(&blocks, piece);
            for (&i, hashes) in batch.iter().zip(hashes) {
                let info = self.inputs[i].as_ref().expect("read above").info;
                let mut good = true;
                for (j, h) in hashes.iter().enumerate() {
                    let p = first + j as u64;
                    if info.pieces.get(p as usize) != Some(h) {
                        self.report.bad_pieces.push((i, p));
                        good = false;
                    }
                }
                present[i] = good;
                count += usize::from(good);
            }
        }
        if count < k {
            return Err(RebuildError::NotEnoughShards {
                segment: s,
                available: count,
                needed: k,
                report: Box::new(self.report.clone()),
            });
        }
        Ok(present)
    }
}
