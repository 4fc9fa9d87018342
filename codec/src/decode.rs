//! Decoder: any k verified shards (and a data key) back to plaintext, whole or by byte range.
//!
//! Every block read is checked against its shard's piece hashes before it is used: a piece that does
//! not match makes that shard count as missing for the segment (and is reported, so the gateway can
//! blame the node that served it), and the segment is rebuilt from other shards. Chunks are then
//! opened with AES-256-GCM, so even bytes that slipped past the hashes could only cause an error.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

use reed_solomon_erasure::galois_8::ReedSolomon;
use sha2::{Digest, Sha256};

use crate::crypto::DataKey;
use crate::layout::{Layout, SegmentSpan, CHUNK_CIPHERTEXT, CHUNK_PLAINTEXT};
use crate::manifest::{KeyRef, Manifest};
use crate::metainfo::{InfoHash, ShardInfo};
use crate::segment;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{expected} shard slots are needed (k + m), {actual} were given")]
    ShardCount { expected: usize, actual: usize },
    #[error("shard {index} has info-hash {actual}, the manifest says {expected}")]
    WrongShard {
        index: usize,
        expected: InfoHash,
        actual: InfoHash,
    },
    #[error("the key does not match the manifest's key fingerprint")]
    WrongKey,
    #[error("segment {segment}: only {available} of the {needed} shards needed could be read and verified")]
    NotEnoughShards {
        segment: u64,
        available: usize,
        needed: usize,
    },
    #[error("segment {segment} chunk {chunk} failed authentication: wrong key or altered data")]
    Unauthentic { segment: u64, chunk: u64 },
    #[error("the plaintext does not match the manifest's SHA-256")]
    ContentHash,
    #[error("writing the object failed: {0}")]
    Write(#[source] io::Error),
}

/// Random access to one shard's bytes.
pub trait ShardReader {
    /// Fills `buf` with the shard's bytes starting at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// True when every byte this reader returns was already checked against the shard's piece
    /// hashes (a network fetcher that verifies each piece as it arrives): the decoder then does
    /// not hash it again.
    fn verified(&self) -> bool {
        false
    }
}

impl<R: Read + Seek> ShardReader for R {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.seek(SeekFrom::Start(offset))?;
        self.read_exact(buf)
    }
}

/// Adapts a forward-only stream (a socket, a pipe) to [`ShardReader`]: reads at increasing offsets
/// skip forward; a read behind the current position is an error.
pub struct Sequential<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Sequential<R> {
    pub fn new(inner: R) -> Self {
        Sequential { inner, pos: 0 }
    }
}

impl<R: Read> ShardReader for Sequential<R> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset < self.pos {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a sequential shard cannot go back",
            ));
        }
        let skipped = io::copy(
            &mut (&mut self.inner).take(offset - self.pos),
            &mut io::sink(),
        )?;
        if skipped != offset - self.pos {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.inner.read_exact(buf)?;
        self.pos = offset + buf.len() as u64;
        Ok(())
    }
}

/// One available shard: its torrent info (for the piece hashes) and where to read it.
pub struct ShardInput<'a, R> {
    pub info: &'a ShardInfo,
    pub reader: R,
}

/// What went wrong on the way, without failing the read: for the gateway's reliability records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// (shard, piece) pairs whose bytes did not match the piece hash.
    pub bad_pieces: Vec<(usize, u64)>,
    /// Shards that failed to read, with the error; they were not read again.
    pub failed_shards: Vec<(usize, String)>,
    /// Segments that had to be rebuilt from parity.
    pub rebuilt_segments: u64,
}

/// Decodes the whole object into `out` and checks its SHA-256. On error, `out` may have received a
/// prefix of the object: a caller streaming to a client must abort that response, not finish it.
pub fn decode<R: ShardReader + Send, W: Write + Send>(
    manifest: &Manifest,
    key: &DataKey,
    shards: Vec<Option<ShardInput<'_, R>>>,
    out: W,
) -> Result<DecodeReport, DecodeError> {
    let mut hashing = HashingWriter {
        inner: out,
        sha: Sha256::new(),
    };
    let report = decode_range(manifest, key, shards, 0..manifest.layout.size, &mut hashing)?;
    if <[u8; 32]>::from(hashing.sha.finalize()) != manifest.sha256 {
        return Err(DecodeError::ContentHash);
    }
    Ok(report)
}

/// Decodes plaintext bytes `range` (clamped to the object) into `out`, reading only the pieces the
/// range needs (see [`Layout::plan_range`]).
pub fn decode_range<R: ShardReader + Send, W: Write + Send>(
    manifest: &Manifest,
    key: &DataKey,
    shards: Vec<Option<ShardInput<'_, R>>>,
    range: Range<u64>,
    mut out: W,
) -> Result<DecodeReport, DecodeError> {
    if let KeyRef::Client { fingerprint } = manifest.key {
        if fingerprint != key.fingerprint() {
            return Err(DecodeError::WrongKey);
        }
    }
    let layout = manifest.layout;
    let n = layout.geometry.shard_count();
    if shards.len() != n {
        return Err(DecodeError::ShardCount {
            expected: n,
            actual: shards.len(),
        });
    }
    for (index, s) in shards.iter().enumerate() {
        if let Some(s) = s {
            let actual = s.info.info_hash();
            if actual != manifest.shards[index].info_hash {
                return Err(DecodeError::WrongShard {
                    index,
                    expected: manifest.shards[index].info_hash,
                    actual,
                });
            }
        }
    }
    let mut reader = Reader {
        layout,
        rs: ReedSolomon::new(layout.k(), usize::from(layout.geometry.m)).expect("validated"),
        shards,
        bufs: vec![Vec::new(); n],
        report: DecodeReport::default(),
    };
    // Two buffers: while one segment's plaintext is written out on a thread of its own, the next
    // segment is read, verified and opened on this one (its coding spread over the rayon pool).
    // Neither waits inside the pool: the output and the shard readers may block (a slow client,
    // pieces still in flight), and a pool thread blocked on them would stall every other
    // encode and decode of the process.
    let mut spare = vec![Vec::new(), Vec::new()];
    let mut ready: Option<Opened> = None;
    for span in layout.plan_range(range).spans {
        let sealed = spare.pop().expect("two buffers rotate");
        let previous = ready.take();
        let (written, opened) = std::thread::scope(|scope| {
            let out = &mut out;
            let writing = previous.map(|p| scope.spawn(move || p.emit(out)));
            let opened = reader.open_span(key, &span, sealed);
            let written = writing
                .map(|w| w.join().expect("the segment writer does not panic"))
                .transpose();
            (written, opened)
        });
        if let Some(buf) = written? {
            spare.push(buf);
        }
        ready = Some(opened?);
    }
    if let Some(last) = ready {
        last.emit(&mut out)?;
    }
    out.flush().map_err(DecodeError::Write)?;
    Ok(reader.report)
}

/// One segment's opened chunks, waiting to be written.
struct Opened {
    sealed: Vec<u8>,
    lens: Vec<usize>,
    skip: usize,
    take: usize,
}

impl Opened {
    /// Writes the wanted plaintext and gives the buffer back for reuse.
    fn emit<W: Write>(self, out: &mut W) -> Result<Vec<u8>, DecodeError> {
        let (mut skip, mut take) = (self.skip, self.take);
        for (slot, &len) in self
            .sealed
            .chunks(CHUNK_CIPHERTEXT as usize)
            .zip(&self.lens)
        {
            let part = &slot[skip.min(len)..len.min(skip + take)];
            out.write_all(part).map_err(DecodeError::Write)?;
            take -= part.len();
            skip = skip.saturating_sub(CHUNK_PLAINTEXT as usize);
        }
        debug_assert_eq!(take, 0);
        Ok(self.sealed)
    }
}

struct Reader<'a, R> {
    layout: Layout,
    rs: ReedSolomon,
    shards: Vec<Option<ShardInput<'a, R>>>,
    /// One reusable buffer per shard, so a long read allocates once.
    bufs: Vec<Vec<u8>>,
    report: DecodeReport,
}

impl<R: ShardReader> Reader<'_, R> {
    /// Reads, verifies and opens the chunks of one segment a range needs, into `sealed`.
    fn open_span(
        &mut self,
        key: &DataKey,
        span: &SegmentSpan,
        mut sealed: Vec<u8>,
    ) -> Result<Opened, DecodeError> {
        let layout = self.layout;
        let s = span.segment;
        let x0 = span.chunks.start * CHUNK_CIPHERTEXT;
        let x1 = (span.chunks.end * CHUNK_CIPHERTEXT).min(layout.sealed_len(s));
        self.read_sealed(s, x0..x1, &mut sealed)?;
        let last_segment = layout.segment_count() - 1;
        let last_chunk = (s == last_segment).then(|| layout.chunks_in_segment(s) - 1);
        let lens = segment::open(key, s, span.chunks.start, last_chunk, &mut sealed)
            .map_err(|(chunk, _)| DecodeError::Unauthentic { segment: s, chunk })?;
        Ok(Opened {
            sealed,
            lens,
            skip: span.skip as usize,
            take: span.take as usize,
        })
    }

    /// Fills `out` with bytes `want` of segment `s`'s sealed data area, verified.
    fn read_sealed(
        &mut self,
        s: u64,
        want: Range<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let k = self.layout.k();
        let bl = self.layout.block_len(s);
        let piece = self.layout.geometry.piece_length;
        let align =
            |r: Range<u64>| r.start / piece * piece..(r.end.div_ceil(piece) * piece).min(bl);
        // Block-local, piece-aligned ranges of the data blocks that hold `want`.
        let needed: Vec<(usize, Range<u64>)> = (want.start / bl..want.end.div_ceil(bl))
            .map(|d| {
                let local = want.start.max(d * bl) - d * bl..want.end.min((d + 1) * bl) - d * bl;
                (d as usize, align(local))
            })
            .collect();
        out.clear();
        out.resize((want.end - want.start) as usize, 0);
        let copy_out = |out: &mut Vec<u8>, d: usize, buf: &[u8], buf_start: u64| {
            let (a, b) = (
                want.start.max(d as u64 * bl),
                want.end.min((d as u64 + 1) * bl),
            );
            let src = (a - d as u64 * bl - buf_start) as usize;
            out[(a - want.start) as usize..(b - want.start) as usize]
                .copy_from_slice(&buf[src..src + (b - a) as usize]);
        };

        // Fast path: every needed data block reads and verifies.
        let mut good = vec![false; self.shards.len()];
        for (d, r) in &needed {
            good[*d] = self.fetch(*d, s, r.clone());
        }
        if needed.iter().all(|(d, _)| good[*d]) {
            for (d, r) in &needed {
                copy_out(out, *d, &self.bufs[*d], r.start);
            }
            return Ok(());
        }

        // Degraded: read the union window from any k shards and rebuild the missing data blocks.
        self.report.rebuilt_segments += 1;
        let window = needed.iter().map(|(_, r)| r.start).min().unwrap_or(0)
            ..needed.iter().map(|(_, r)| r.end).max().unwrap_or(0);
        let len = (window.end - window.start) as usize;
        let mut present = vec![false; self.shards.len()];
        let mut count = 0;
        for i in 0..self.shards.len() {
            if count == k {
                break;
            }
            let tried = needed.iter().find(|(d, _)| *d == i);
            present[i] = match tried {
                // Already failed for this segment: do not read (or blame) it twice.
                Some(_) if !good[i] => false,
                Some((_, r)) if *r == window => true,
                _ => self.fetch(i, s, window.clone()),
            };
            count += usize::from(present[i]);
        }
        if count < k {
            return Err(DecodeError::NotEnoughShards {
                segment: s,
                available: count,
                needed: k,
            });
        }
        for b in &mut self.bufs {
            b.resize(len, 0);
        }
        let mut blocks: Vec<&mut [u8]> = self.bufs.iter_mut().map(|b| &mut b[..len]).collect();
        segment::reconstruct(&self.rs, &mut blocks, &present, false);
        for (d, _) in &needed {
            copy_out(out, *d, &self.bufs[*d], window.start);
        }
        Ok(())
    }

    /// Reads block-local `range` of segment `s` from shard `i` into its buffer and checks the pieces.
    /// Returns false (and records why) when the shard is absent, fails to read, or fails a hash.
    fn fetch(&mut self, i: usize, s: u64, range: Range<u64>) -> bool {
        let Some(shard) = self.shards[i].as_mut() else {
            return false;
        };
        let start = self.layout.block_offset(s) + range.start;
        let buf = &mut self.bufs[i];
        buf.clear();
        buf.resize((range.end - range.start) as usize, 0);
        if let Err(e) = shard.reader.read_at(start, buf) {
            self.report.failed_shards.push((i, e.to_string()));
            self.shards[i] = None;
            return false;
        }
        if shard.reader.verified() {
            return true;
        }
        let piece = self.layout.geometry.piece_length;
        let first = start / piece;
        let hashes = segment::hash_pieces(&[buf], piece as usize).remove(0);
        let mut ok = true;
        for (j, h) in hashes.iter().enumerate() {
            let p = first + j as u64;
            if shard.info.pieces.get(p as usize) != Some(h) {
                self.report.bad_pieces.push((i, p));
                ok = false;
            }
        }
        ok
    }
}

struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
