//! Large objects as runs of groups: an upload bigger than `group_size` is encoded one group at a
//! time, and each group is placed as a part (an ordinary swarm object of the bucket's part
//! bucket) while the next is encoded, so the gateway stages at most `groups_in_flight + 1` groups
//! whatever the object's size, and the first group's transfers start while later ones are still
//! arriving. The object is committed once every part is durable, in one transaction with its list
//! of parts; a failed upload deletes the parts it committed.
//!
//! A read maps its range onto the parts ([`spans`]) and streams them in order, the next part's
//! pieces fetched while the current one streams.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;

use raidtorrent_codec::ShardInfo;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::attrs::Tags;
use super::meta::{NewObject, NewPart, ObjectRow, Part, StoredBody};
use super::model::{Body, Bucket, ObjectInfo};
use super::write::{self, GroupReader, Staged};
use super::{Gateway, GatewayError};
use crate::registry::unix_now;

/// Stores an upload whose first group is `first` (and which goes on) as a grouped object.
pub(super) async fn put_grouped<B>(
    gw: &Gateway,
    bucket: &Bucket,
    key: &str,
    mut reader: GroupReader<B>,
    first: Staged,
    tags: Option<&Tags>,
) -> Result<ObjectInfo, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let run = store_run(gw, bucket, ShardInfo::random_name(), &mut reader, first).await?;
    let attrs = tags.map(Tags::commit).transpose();
    let result = match attrs {
        Ok(attrs) => {
            let object = NewObject {
                bucket: &bucket.name,
                key,
                size: reader.read(),
                sha256: &reader.sha256(),
                attrs: attrs.as_ref(),
                body: StoredBody::Grouped {
                    part_bucket: &run.bucket.name,
                    parts: &run.parts,
                },
                placed_by: tags.and_then(|t| t.put.placed_by.as_deref()),
            };
            gw.inner.meta.commit_object(&object, unix_now()).await
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        run.abandon();
    }
    result
}

/// Stores the rest of an upload, from its first group `first` on, as part objects of
/// `bucket`'s part bucket under keys `<prefix>/<index>`; returns once every one is durable.
/// On failure the parts already stored are deleted.
pub(super) async fn store_run<B>(
    gw: &Gateway,
    bucket: &Bucket,
    prefix: String,
    reader: &mut GroupReader<B>,
    first: Staged,
) -> Result<PartRun, GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let mut run = PartRun {
        gw: gw.clone(),
        bucket: gw.inner.meta.part_bucket(bucket).await?,
        prefix,
        parts: Vec::new(),
        next_offset: 0,
        placing: VecDeque::new(),
    };
    match place_parts(gw, reader, first, &mut run).await {
        Ok(()) => Ok(run),
        Err(e) => {
            run.abandon();
            Err(e)
        }
    }
}

/// Places every group of the upload as a part, at most `groups_in_flight` at once while the next
/// is encoded; returns once all are durable.
async fn place_parts<B>(
    gw: &Gateway,
    reader: &mut GroupReader<B>,
    first: Staged,
    run: &mut PartRun,
) -> Result<(), GatewayError>
where
    B: AsyncRead + Send + Unpin + 'static,
{
    let mut staged = first;
    loop {
        run.start(staged);
        if reader.ended() {
            break;
        }
        while run.placing.len() >= gw.inner.config.groups_in_flight {
            run.wait_oldest().await?;
        }
        staged = write::encode_group(gw, reader).await?;
    }
    while !run.placing.is_empty() {
        run.wait_oldest().await?;
    }
    Ok(())
}

/// The parts of one upload: those started, and the placements still running.
pub(super) struct PartRun {
    gw: Gateway,
    /// The part bucket.
    bucket: Bucket,
    /// Keys of this upload's parts start with it.
    prefix: String,
    parts: Vec<NewPart>,
    /// Where the next part starts in the object.
    next_offset: u64,
    placing: VecDeque<JoinHandle<Result<ObjectInfo, GatewayError>>>,
}

impl PartRun {
    /// Starts placing a staged group as the next part.
    fn start(&mut self, staged: Staged) {
        let key = format!("{}/{:06}", self.prefix, self.parts.len());
        self.parts.push(NewPart {
            key: key.clone(),
            offset: self.next_offset,
        });
        self.next_offset += staged.size();
        let (gw, bucket) = (self.gw.clone(), self.bucket.clone());
        self.placing.push_back(tokio::spawn(async move {
            write::place(&gw, staged, &bucket, &key, None, None).await
        }));
    }

    /// Waits for the oldest placement still running.
    async fn wait_oldest(&mut self) -> Result<(), GatewayError> {
        let Some(placing) = self.placing.pop_front() else {
            return Ok(());
        };
        match placing.await {
            Ok(placed) => placed.map(drop),
            Err(e) => Err(GatewayError::Internal(format!("placing a part: {e}"))),
        }
    }

    /// Deletes the parts of a failed upload once their placements end (in the background: the
    /// client hears of the failure at once); their shards go to the collector.
    pub(super) fn abandon(self) {
        tokio::spawn(async move {
            for placing in self.placing {
                let _ = placing.await;
            }
            let meta = &self.gw.inner.meta;
            for part in &self.parts {
                match meta.delete_object(&self.bucket.name, &part.key).await {
                    Ok(()) | Err(GatewayError::NoSuchKey(_)) => {}
                    Err(e) => tracing::warn!(key = %part.key, error = %e, "a part was not deleted"),
                }
            }
            self.gw.wake_collector();
        });
    }
}

/// Part `part` and the bytes of it a read needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Span {
    pub part: i64,
    pub range: Range<u64>,
}

/// The parts `range` of a grouped object covers, in order, each with the range within it.
pub(super) fn spans(parts: &[Part], range: Range<u64>) -> Vec<Span> {
    parts
        .iter()
        .filter_map(|p| {
            let start = range.start.max(p.offset);
            let end = range.end.min(p.offset + p.size);
            (start < end).then(|| Span {
                part: p.id,
                range: start - p.offset..end - p.offset,
            })
        })
        .collect()
}

/// Streams `range` of grouped object `row`. A part that cannot be read before the first byte
/// fails the read with an error status; one that fails later cuts the response short.
pub(super) async fn get_grouped(
    gw: &Gateway,
    row: &ObjectRow,
    range: Range<u64>,
) -> Result<Body, GatewayError> {
    let parts = gw.inner.meta.parts(row.id).await?;
    let mut spans = spans(&parts, range).into_iter();
    let (tx, rx) = mpsc::channel(8);
    let Some(first) = spans.next() else {
        return Ok(rx);
    };
    let current = read_span(gw, first).await?;
    tokio::spawn(forward_spans(gw.clone(), current, spans, tx));
    Ok(rx)
}

async fn read_span(gw: &Gateway, span: Span) -> Result<Body, GatewayError> {
    let part = gw.inner.meta.object_by_id(span.part).await?;
    gw.read_shards(&part, span.range).await
}

/// Sends the parts' bytes to the client in order; the next part's read starts (its pieces are
/// fetched, up to the read's window) while the current one streams.
async fn forward_spans(
    gw: Gateway,
    mut current: Body,
    rest: impl Iterator<Item = Span>,
    tx: mpsc::Sender<io::Result<bytes::Bytes>>,
) {
    for span in rest {
        let gw = gw.clone();
        let next = tokio::spawn(async move { read_span(&gw, span).await });
        if !forward(&mut current, &tx).await {
            next.abort();
            return;
        }
        current = match next.await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
        };
    }
    forward(&mut current, &tx).await;
}

/// Sends one part's chunks on; false if the client went away or the part failed (its error is
/// passed on).
async fn forward(body: &mut Body, tx: &mpsc::Sender<io::Result<bytes::Bytes>>) -> bool {
    while let Some(chunk) = body.recv().await {
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: i64, offset: u64, size: u64) -> Part {
        Part { id, offset, size }
    }

    #[test]
    fn a_range_maps_onto_the_parts_it_covers() {
        let parts = [part(7, 0, 10), part(8, 10, 10), part(9, 20, 5)];
        let span = |part, range| Span { part, range };
        assert_eq!(
            spans(&parts, 0..25),
            vec![span(7, 0..10), span(8, 0..10), span(9, 0..5)]
        );
        assert_eq!(spans(&parts, 9..11), vec![span(7, 9..10), span(8, 0..1)]);
        assert_eq!(spans(&parts, 10..20), vec![span(8, 0..10)]);
        assert_eq!(spans(&parts, 24..25), vec![span(9, 4..5)]);
        assert!(spans(&parts, 5..5).is_empty());
    }
}
