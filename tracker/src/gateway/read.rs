//! The read path: piece reads (`piece_read`) fetch exactly the pieces the range needs from the
//! shards' holders, and the decoder decrypts and streams each segment as soon as its pieces are in.
//! A read that cannot start (too few shards with a holder online, or none of the first segment's
//! pieces to be had) fails with an error status; one that fails later cuts the response short.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use raidtorrent_codec::{decode_range, DataKey, DecodeError, KeyRef, Layout};
use raidtorrent_fetch::{window_pieces, PieceRead};
use tokio::sync::{mpsc, oneshot};

use super::fetch::ObjectShards;
use super::meta::ObjectRow;
use super::model::Body;
use super::piece_read::GatewayRead;
use super::{Gateway, GatewayError};

/// Bytes per chunk sent to the client.
const SEND_CHUNK: usize = 256 * 1024;

pub(super) async fn get_swarm(
    gw: &Gateway,
    row: &ObjectRow,
    range: Range<u64>,
) -> Result<Body, GatewayError> {
    let shards = ObjectShards::load(&gw.inner.meta, row).await?;
    let key = object_key(gw, &shards)?;
    let (tx, rx) = mpsc::channel(8);
    if range.is_empty() {
        return Ok(rx);
    }
    // The read's turn and memory are held until it is streamed.
    let turn = gw.inner.admission.get().await?;
    let layout = shards.manifest.layout;
    let memory = gw
        .inner
        .admission
        .read_memory(read_memory(&layout, &range))
        .await?;
    let read = GatewayRead::start(gw, &shards, range.clone()).await?;
    let (started, first) = oneshot::channel();
    tokio::spawn(async move {
        let reading = read.read.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            decode(&shards, &key, &reading, range, tx, started)
        })
        .await;
        // The nodes' records are written before the client sees the end of the body.
        read.finish().await;
        match decoded {
            Ok(Some(tail)) => tail.finish().await,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "decoder task failed"),
        }
        drop((turn, memory));
    });
    match first.await {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(GatewayError::Internal(
            "the decoder stopped before the first byte".into(),
        )),
    }
}

/// Bytes of the chunks at either end of a range, and the pieces they widen to, beyond it.
const RANGE_SLACK: u64 = 128 << 10;

/// The most memory a read of `range` holds: the pieces fetched ahead of the decoder (at most its
/// window per shard, for k shards and a parity shard started when a data shard fails), and the
/// decoder's buffers (two sealed segments and what it reads of each shard).
fn read_memory(layout: &Layout, range: &Range<u64>) -> u64 {
    let g = layout.geometry;
    let (k, n) = (u64::from(g.k), g.shard_count() as u64);
    let len = range.end - range.start + RANGE_SLACK;
    let touched = len.min(g.segment_size + RANGE_SLACK);
    let window = window_pieces(&g) * g.piece_length;
    let per_shard = (len.div_ceil(k) + 2 * g.piece_length).min(window);
    (k + 1) * per_shard + touched * 2 + touched.div_ceil(k) * n
}

/// The object's data key, unwrapped with the gateway's master key.
fn object_key(gw: &Gateway, shards: &ObjectShards) -> Result<DataKey, GatewayError> {
    match &shards.manifest.key {
        KeyRef::Wrapped(w) => gw
            .inner
            .master
            .unwrap(w)
            .map_err(|e| GatewayError::Internal(format!("unwrapping the object key: {e}"))),
        KeyRef::Client { .. } => Err(GatewayError::BadRequest(
            "this object's key is held by its client; read it with the client".into(),
        )),
    }
}

/// Decodes `range` from the piece read into `tx`, all but the last chunk, which the returned writer
/// holds. A failure before the first bytes goes to `started` (the client gets an error status); a
/// later one ends the stream with an error, so the client's response is cut short rather than
/// completed.
fn decode(
    shards: &ObjectShards,
    key: &DataKey,
    read: &Arc<PieceRead>,
    range: Range<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    started: oneshot::Sender<Result<(), GatewayError>>,
) -> Option<ChannelWriter> {
    let mut out = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(SEND_CHUNK),
        started: Some(started),
    };
    match decode_range(&shards.manifest, key, read.inputs(), range, &mut out) {
        Ok(report) => {
            if !report.bad_pieces.is_empty() || !report.failed_shards.is_empty() {
                tracing::warn!(?report, "read worked around bad shards");
            }
            Some(out)
        }
        Err(e) => {
            match out.started.take() {
                Some(started) => {
                    let _ = started.send(Err(read_error(e)));
                }
                None => {
                    let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                }
            }
            None
        }
    }
}

/// What a client is told when a read fails before its first byte.
fn read_error(e: DecodeError) -> GatewayError {
    match e {
        DecodeError::NotEnoughShards { .. } => GatewayError::Unavailable(e.to_string()),
        e => GatewayError::Internal(format!("reading the object: {e}")),
    }
}

/// Sends what the decoder writes to the response, in chunks; the last one waits for
/// [`ChannelWriter::finish`].
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    /// Told once, at the first chunk, that the read is under way.
    started: Option<oneshot::Sender<Result<(), GatewayError>>>,
}

impl ChannelWriter {
    /// The buffered bytes as a chunk; the read is under way.
    fn chunk(&mut self) -> Bytes {
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
        Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(SEND_CHUNK),
        ))
    }

    /// Sends the last chunk.
    async fn finish(mut self) {
        let chunk = self.chunk();
        if !chunk.is_empty() {
            let _ = self.tx.send(Ok(chunk)).await;
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_CHUNK {
            let chunk = self.chunk();
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(data.len())
    }

    /// Keeps the bytes: the last chunk leaves with [`ChannelWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raidtorrent_codec::Geometry;

    use super::*;

    #[test]
    fn a_read_holds_memory_by_its_range_up_to_its_window() {
        // The default geometry for a 1 GiB object: 32 MiB segments, 8 MiB blocks, (4, 2).
        let g = Geometry::choose(4, 2, 32 << 20, Some(1 << 30)).unwrap();
        let layout = Layout::new(g, 1 << 30).unwrap();
        let small = read_memory(&layout, &(5_000_000..5_065_536));
        let whole = read_memory(&layout, &(0..1 << 30));
        assert!(small < 4 << 20, "a 64 KiB read holds {small} bytes");
        // 5 shards x 2 blocks ahead, and about 3.5 segments of decoder buffers.
        assert!(
            (150 << 20..250 << 20).contains(&whole),
            "a whole read holds {whole} bytes"
        );
        assert!(read_memory(&layout, &(0..1 << 20)) < whole / 8);
    }
}
