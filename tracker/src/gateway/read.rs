//! The read path: fetch any k verified shards (`fetch`), then decode, decrypt and stream.
//!
//! librqbit 9 fetches whole files only (no piece selection), so a ranged read fetches whole shards
//! and then decodes only the pieces the range needs from them.

use std::io::{self, Write};
use std::ops::Range;

use bytes::Bytes;
use raidtorrent_codec::{decode_range, DataKey, KeyRef};
use tokio::sync::mpsc;

use super::fetch::ObjectShards;
use super::meta::ObjectRow;
use super::model::Body;
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
    // The read's turn and the disk its fetched shards take are held until it is streamed.
    let turn = gw.inner.admission.get().await?;
    let space = gw.inner.admission.reserve(fetch_bytes(gw, &shards))?;
    let fetched = gw.fetch_k(&shards, &[]).await?;
    let gw = gw.clone();
    tokio::spawn(async move {
        let paths = fetched.paths.clone();
        let decoded =
            tokio::task::spawn_blocking(move || decode(&shards, &key, &paths, range, tx)).await;
        if let Err(e) = decoded {
            tracing::error!(error = %e, "decoder task failed");
        }
        fetched.release(&gw).await;
        drop((turn, space));
    });
    Ok(rx)
}

/// Disk a read may fill: k shards plus the hedged ones, at the longest shard's length.
fn fetch_bytes(gw: &Gateway, shards: &ObjectShards) -> u64 {
    let longest = shards.infos.iter().flatten().map(|i| i.length).max();
    let k = usize::from(shards.manifest.layout.geometry.k);
    let fetched = (k + gw.inner.config.read_hedge).min(shards.infos.len());
    longest.unwrap_or(0).saturating_mul(fetched as u64)
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

/// Decodes `range` from the fetched shards into `tx`; a failure part-way ends the stream with
/// an error, so the client's response is cut short rather than completed.
fn decode(
    shards: &ObjectShards,
    key: &DataKey,
    paths: &std::collections::HashMap<usize, std::path::PathBuf>,
    range: Range<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let mut out = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(SEND_CHUNK),
    };
    match decode_range(&shards.manifest, key, shards.inputs(paths), range, &mut out) {
        Ok(report) => {
            if !report.bad_pieces.is_empty() || !report.failed_shards.is_empty() {
                tracing::warn!(?report, "read worked around bad shards");
            }
        }
        Err(e) => {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    }
}

/// Sends what the decoder writes to the response, in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(SEND_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
