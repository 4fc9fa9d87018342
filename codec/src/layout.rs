//! Where every byte of an object lives: segments, encryption chunks, shard blocks and pieces.
//!
//! ```text
//! object  |---------- segment 0 ----------|---------- segment 1 ----------|-- tail --|
//! segment = chunks of CHUNK_PLAINTEXT bytes, each sealed to CHUNK_CIPHERTEXT bytes (data + tag)
//! sealed segment, cut into k equal blocks:  | block 0 | block 1 | ... | block k-1 |  + m parity blocks
//! shard i = block i of segment 0, block i of segment 1, ...   (one contiguous file, one torrent)
//! ```
//!
//! Invariants, relied on by the encoder, the decoder and range reads:
//! - A full segment seals to exactly `k * block_size` bytes: `block_size` is a multiple of
//!   `CHUNK_CIPHERTEXT`, so no padding is stored for full segments and no chunk straddles two blocks.
//! - `block_size` is a multiple of `piece_length`, so every block of a full segment starts on a piece
//!   boundary in its shard and no piece straddles two segments.
//! - Only the last segment may be shorter; its blocks are `ceil(sealed / k)` bytes (the sealed tail is
//!   zero-padded to `k` blocks before coding), so all k+m shards have the same length.
//! - Every object has at least one chunk: an empty object is one sealed empty chunk (a bare tag), so
//!   even emptiness is authenticated.

use std::ops::Range;

/// Bytes of ciphertext per encryption chunk: sealed plaintext plus the 16-byte AEAD tag.
pub const CHUNK_CIPHERTEXT: u64 = 64 * 1024;
/// AES-256-GCM tag length.
pub const TAG_LEN: u64 = 16;
/// Plaintext bytes per full encryption chunk.
pub const CHUNK_PLAINTEXT: u64 = CHUNK_CIPHERTEXT - TAG_LEN;
/// Smallest piece length (BEP 3 clients request 16 KiB blocks; smaller pieces are not worth a hash).
pub const MIN_PIECE_LENGTH: u64 = 16 * 1024;
/// Largest piece length the codec chooses for its own shards.
pub const MAX_PIECE_LENGTH: u64 = 4 * 1024 * 1024;
/// Default plaintext segment size the geometry aims for.
pub const DEFAULT_SEGMENT_TARGET: u64 = 32 * 1024 * 1024;
/// Pieces per shard the geometry aims for at most (more pieces = bigger metainfo; fewer = coarser
/// audits and retransmissions).
const TARGET_PIECES_PER_SHARD: u64 = 2048;

/// Why a geometry or layout is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("k must be at least 1 and m at least 1, with k + m at most 256 (got k={k}, m={m})")]
    ShardCount { k: u64, m: u64 },
    #[error("piece length {0} is not a power of two between 16 KiB and 64 MiB")]
    PieceLength(u64),
    #[error(
        "block size {block} is not a positive multiple of the piece length {piece} and of 64 KiB"
    )]
    BlockSize { block: u64, piece: u64 },
    #[error("segment size {segment} does not match k={k} blocks of {block} bytes")]
    SegmentSize { segment: u64, k: u64, block: u64 },
    #[error("segment target {0} is out of range (64 KiB ..= 1 GiB)")]
    SegmentTarget(u64),
    #[error("object size {0} is too large for this layout")]
    ObjectTooLarge(u64),
}

/// How an object is cut, independent of its size: chosen before the first byte is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Data shards: any `k` of the `k + m` shards rebuild the object.
    pub k: u16,
    /// Parity shards.
    pub m: u16,
    /// Plaintext bytes in every segment but the last.
    pub segment_size: u64,
    /// Bytes of one shard per full segment.
    pub block_size: u64,
    /// BitTorrent piece length of every shard torrent.
    pub piece_length: u64,
}

impl Geometry {
    /// Chooses a geometry for an object of about `size_hint` bytes (None when unknown, as for a
    /// streamed upload) aiming at `segment_target` plaintext bytes per segment.
    pub fn choose(
        k: u16,
        m: u16,
        segment_target: u64,
        size_hint: Option<u64>,
    ) -> Result<Self, LayoutError> {
        check_shard_count(k, m)?;
        if !(CHUNK_CIPHERTEXT..=1 << 30).contains(&segment_target) {
            return Err(LayoutError::SegmentTarget(segment_target));
        }
        let k64 = u64::from(k);
        // Round down, so the default 32 MiB target gives blocks of exactly 8 MiB for k = 4.
        let sealed_target = (segment_target / CHUNK_PLAINTEXT).max(1) * CHUNK_CIPHERTEXT;
        let raw_block = sealed_target.div_ceil(k64);
        // Without a hint, assume the object fills a few segments.
        let size = size_hint.unwrap_or(4 * segment_target);
        let shard_estimate = (size + size / CHUNK_PLAINTEXT * TAG_LEN).div_ceil(k64);
        let by_count = shard_estimate
            .div_ceil(TARGET_PIECES_PER_SHARD)
            .next_power_of_two();
        // Pieces no bigger than an eighth of a block, so a ranged read never fetches much extra.
        let by_block = prev_power_of_two((raw_block / 8).max(1));
        let piece_length = by_count
            .min(by_block)
            .clamp(MIN_PIECE_LENGTH, MAX_PIECE_LENGTH);
        let align = piece_length.max(CHUNK_CIPHERTEXT);
        let block_size = (raw_block / align * align).max(align);
        let segment_size = k64 * block_size / CHUNK_CIPHERTEXT * CHUNK_PLAINTEXT;
        let g = Geometry {
            k,
            m,
            segment_size,
            block_size,
            piece_length,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks the invariants in the module docs; used on geometry read from untrusted manifests.
    pub fn validate(&self) -> Result<(), LayoutError> {
        check_shard_count(self.k, self.m)?;
        let p = self.piece_length;
        if !p.is_power_of_two() || !(MIN_PIECE_LENGTH..=64 << 20).contains(&p) {
            return Err(LayoutError::PieceLength(p));
        }
        let b = self.block_size;
        if b == 0 || b % p != 0 || b % CHUNK_CIPHERTEXT != 0 || b > 1 << 40 {
            return Err(LayoutError::BlockSize { block: b, piece: p });
        }
        let k = u64::from(self.k);
        if self.segment_size != k * b / CHUNK_CIPHERTEXT * CHUNK_PLAINTEXT {
            return Err(LayoutError::SegmentSize {
                segment: self.segment_size,
                k,
                block: b,
            });
        }
        Ok(())
    }

    pub fn shard_count(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Encryption chunks in a full segment.
    pub fn chunks_per_segment(&self) -> u64 {
        self.segment_size / CHUNK_PLAINTEXT
    }

    /// Bytes stored across all shards per plaintext byte, for full segments.
    pub fn expansion(&self) -> f64 {
        (self.shard_count() as f64 * self.block_size as f64) / self.segment_size as f64
    }
}

fn check_shard_count(k: u16, m: u16) -> Result<(), LayoutError> {
    if k == 0 || m == 0 || u32::from(k) + u32::from(m) > 256 {
        return Err(LayoutError::ShardCount {
            k: k.into(),
            m: m.into(),
        });
    }
    Ok(())
}

fn prev_power_of_two(x: u64) -> u64 {
    1 << (63 - x.leading_zeros())
}

/// A geometry applied to an object of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    pub geometry: Geometry,
    /// Plaintext bytes of the object.
    pub size: u64,
}

impl Layout {
    pub fn new(geometry: Geometry, size: u64) -> Result<Self, LayoutError> {
        geometry.validate()?;
        // Keep every derived quantity (sealed sizes, piece indices) far from overflow.
        if size > 1 << 50 {
            return Err(LayoutError::ObjectTooLarge(size));
        }
        Ok(Layout { geometry, size })
    }

    pub fn k(&self) -> usize {
        usize::from(self.geometry.k)
    }

    pub fn segment_count(&self) -> u64 {
        self.size.div_ceil(self.geometry.segment_size).max(1)
    }

    /// Plaintext byte range of segment `s` within the object.
    pub fn segment_range(&self, s: u64) -> Range<u64> {
        let start = s * self.geometry.segment_size;
        start..(start + self.geometry.segment_size).min(self.size)
    }

    /// Encryption chunks in segment `s` (at least one, even when empty).
    pub fn chunks_in_segment(&self, s: u64) -> u64 {
        let r = self.segment_range(s);
        (r.end - r.start).div_ceil(CHUNK_PLAINTEXT).max(1)
    }

    /// Sealed (ciphertext + tags) bytes of segment `s`.
    pub fn sealed_len(&self, s: u64) -> u64 {
        let r = self.segment_range(s);
        (r.end - r.start) + self.chunks_in_segment(s) * TAG_LEN
    }

    /// Bytes of each shard that belong to segment `s`.
    pub fn block_len(&self, s: u64) -> u64 {
        self.sealed_len(s).div_ceil(u64::from(self.geometry.k))
    }

    /// Offset of segment `s`'s block within every shard.
    pub fn block_offset(&self, s: u64) -> u64 {
        s * self.geometry.block_size
    }

    /// Length of every shard file.
    pub fn shard_len(&self) -> u64 {
        let last = self.segment_count() - 1;
        self.block_offset(last) + self.block_len(last)
    }

    pub fn piece_count(&self) -> u64 {
        self.shard_len().div_ceil(self.geometry.piece_length)
    }

    /// Length of piece `p` (the last one may be short).
    pub fn piece_len(&self, p: u64) -> u64 {
        let start = p * self.geometry.piece_length;
        (self.shard_len() - start).min(self.geometry.piece_length)
    }

    /// Pieces covering bytes `range` of any shard.
    pub fn pieces_covering(&self, range: Range<u64>) -> Range<u64> {
        let p = self.geometry.piece_length;
        if range.is_empty() {
            return range.start / p..range.start / p;
        }
        range.start / p..range.end.div_ceil(p)
    }

    /// Where chunk `c` of segment `s` sits: (data shard, byte offset within that shard's block).
    pub fn chunk_position(&self, c: u64) -> (usize, u64) {
        let at = c * CHUNK_CIPHERTEXT;
        let b = self.geometry.block_size;
        // Lossless: at / b < k <= 256.
        ((at / b) as usize, at % b)
    }

    /// Plaintext bytes of chunk `c` in segment `s`.
    pub fn chunk_plain_len(&self, s: u64, c: u64) -> u64 {
        let r = self.segment_range(s);
        (r.end - r.start - c * CHUNK_PLAINTEXT).min(CHUNK_PLAINTEXT)
    }

    /// What a read of plaintext `range` needs: for each segment it touches, the chunks to open and,
    /// per data shard, the piece-aligned byte range of the shard to fetch.
    pub fn plan_range(&self, range: Range<u64>) -> RangePlan {
        let end = range.end.min(self.size);
        let start = range.start.min(end);
        let mut spans = Vec::new();
        if start == end {
            return RangePlan { spans };
        }
        let seg = self.geometry.segment_size;
        for s in start / seg..end.div_ceil(seg) {
            let sr = self.segment_range(s);
            let (a, b) = (start.max(sr.start) - sr.start, end.min(sr.end) - sr.start);
            let chunks = a / CHUNK_PLAINTEXT..b.div_ceil(CHUNK_PLAINTEXT);
            let mut reads: Vec<ShardRead> = Vec::new();
            for c in chunks.clone() {
                let (shard, off) = self.chunk_position(c);
                let sealed = self.chunk_plain_len(s, c) + TAG_LEN;
                let bytes = self.block_offset(s) + off..self.block_offset(s) + off + sealed;
                match reads.last_mut() {
                    Some(r) if r.shard == shard => r.bytes.end = bytes.end,
                    _ => reads.push(ShardRead { shard, bytes }),
                }
            }
            let piece = self.geometry.piece_length;
            let shard_len = self.shard_len();
            for r in &mut reads {
                r.bytes = r.bytes.start / piece * piece
                    ..(r.bytes.end.div_ceil(piece) * piece).min(shard_len);
            }
            spans.push(SegmentSpan {
                segment: s,
                chunks,
                skip: a % CHUNK_PLAINTEXT,
                take: b - a,
                reads,
            });
        }
        RangePlan { spans }
    }
}

/// The parts of shards a ranged read needs, segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    pub spans: Vec<SegmentSpan>,
}

impl RangePlan {
    /// Every piece index the plan reads, per data shard, when all data shards are available.
    pub fn pieces(&self, layout: &Layout) -> Vec<(usize, Range<u64>)> {
        self.spans
            .iter()
            .flat_map(|s| s.reads.iter())
            .map(|r| (r.shard, layout.pieces_covering(r.bytes.clone())))
            .collect()
    }
}

/// One segment's share of a ranged read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpan {
    pub segment: u64,
    /// Chunk indices within the segment to open.
    pub chunks: Range<u64>,
    /// Plaintext bytes to skip in the first opened chunk.
    pub skip: u64,
    /// Plaintext bytes to return from this segment.
    pub take: u64,
    /// Piece-aligned shard byte ranges holding those chunks, by data shard (k-shard degraded reads
    /// fetch the same byte ranges from parity shards instead).
    pub reads: Vec<ShardRead>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRead {
    /// Data shard index.
    pub shard: usize,
    /// Byte range within the shard file, aligned to pieces.
    pub bytes: Range<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn geometries() -> impl Strategy<Value = Geometry> {
        (
            1u16..=20,
            1u16..=12,
            64u64 * 1024..=64 << 20,
            proptest::option::of(0u64..1 << 36),
        )
            .prop_map(|(k, m, t, h)| Geometry::choose(k, m, t, h).unwrap())
    }

    proptest! {
        #[test]
        fn chosen_geometry_keeps_its_invariants(g in geometries()) {
            prop_assert!(g.validate().is_ok());
            prop_assert_eq!(g.block_size * u64::from(g.k) % CHUNK_CIPHERTEXT, 0);
            // Overhead of a full segment: tags plus at most one alignment unit per block.
            let k = u64::from(g.k);
            let sealed = g.segment_size + g.chunks_per_segment() * TAG_LEN;
            prop_assert_eq!(sealed, k * g.block_size);
        }

        #[test]
        fn segments_tile_the_object_and_blocks_tile_the_shard(g in geometries(), size in 0u64..1 << 30) {
            let l = Layout::new(g, size).unwrap();
            let n = l.segment_count();
            prop_assert_eq!(l.segment_range(0).start, 0);
            prop_assert_eq!(l.segment_range(n - 1).end, size);
            for s in 0..n.saturating_sub(1) {
                prop_assert_eq!(l.segment_range(s).end, l.segment_range(s + 1).start);
                prop_assert_eq!(l.block_len(s), g.block_size);
                prop_assert_eq!(l.block_offset(s) % g.piece_length, 0);
            }
            prop_assert!(l.block_len(n - 1) <= g.block_size && l.block_len(n - 1) > 0);
            let pieces: u64 = (0..l.piece_count()).map(|p| l.piece_len(p)).sum();
            prop_assert_eq!(pieces, l.shard_len());
        }

        #[test]
        fn range_plan_covers_exactly_the_range(g in geometries(), size in 1u64..1 << 32, a in any::<u64>(), len in 0u64..1 << 28) {
            let l = Layout::new(g, size).unwrap();
            let start = a % size;
            let end = (start + len).min(size);
            let plan = l.plan_range(start..end);
            let taken: u64 = plan.spans.iter().map(|s| s.take).sum();
            prop_assert_eq!(taken, end - start);
            for span in &plan.spans {
                let sr = l.segment_range(span.segment);
                let first = span.chunks.start;
                prop_assert!(span.skip < CHUNK_PLAINTEXT);
                prop_assert!(sr.start + first * CHUNK_PLAINTEXT + span.skip >= start);
                for r in &span.reads {
                    prop_assert_eq!(r.bytes.start % g.piece_length, 0);
                    prop_assert!(r.bytes.end <= l.shard_len());
                    prop_assert!(r.bytes.start >= l.block_offset(span.segment));
                    prop_assert!(r.bytes.end <= l.block_offset(span.segment) + l.block_len(span.segment));
                }
            }
        }
    }

    #[test]
    fn default_geometry_is_what_the_readme_says() {
        let g = Geometry::choose(4, 2, DEFAULT_SEGMENT_TARGET, Some(256 << 20)).unwrap();
        assert_eq!(g.block_size, 8 << 20);
        assert_eq!(g.piece_length, 64 * 1024);
        assert!(g.expansion() < 1.51);
        // The worked example in bep-spec/bep-rt-0001-shard-torrents.md.
        let l = Layout::new(g, 256 << 20).unwrap();
        assert_eq!(g.segment_size, 33_546_240);
        assert_eq!(l.segment_count(), 9);
        assert_eq!(l.chunks_in_segment(8), 2);
        assert_eq!(l.shard_len(), 67_125_256);
        assert_eq!(l.piece_count(), 1_025);
    }

    #[test]
    fn empty_object_is_one_sealed_empty_chunk() {
        let g = Geometry::choose(3, 2, DEFAULT_SEGMENT_TARGET, Some(0)).unwrap();
        let l = Layout::new(g, 0).unwrap();
        assert_eq!(l.segment_count(), 1);
        assert_eq!(l.sealed_len(0), TAG_LEN);
        assert_eq!(l.shard_len(), 6);
        assert_eq!(l.piece_count(), 1);
    }

    #[test]
    fn a_small_range_reads_one_piece_of_one_shard() {
        let g = Geometry::choose(4, 2, DEFAULT_SEGMENT_TARGET, Some(256 << 20)).unwrap();
        let l = Layout::new(g, 256 << 20).unwrap();
        let at = 100 << 20; // segment 3, well inside
        let plan = l.plan_range(at..at + 100);
        assert_eq!(plan.spans.len(), 1);
        let reads = plan.pieces(&l);
        assert_eq!(reads.len(), 1);
        assert!(reads[0].1.end - reads[0].1.start <= 3);
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert!(Geometry::choose(0, 2, DEFAULT_SEGMENT_TARGET, None).is_err());
        assert!(Geometry::choose(200, 57, DEFAULT_SEGMENT_TARGET, None).is_err());
        assert!(Geometry::choose(4, 0, DEFAULT_SEGMENT_TARGET, None).is_err());
        let mut g = Geometry::choose(4, 2, DEFAULT_SEGMENT_TARGET, None).unwrap();
        g.piece_length = 3 << 14;
        assert_eq!(g.validate(), Err(LayoutError::PieceLength(3 << 14)));
    }
}
