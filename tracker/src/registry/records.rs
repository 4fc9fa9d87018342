//! Reliability records: the announce path reports an [`Observation`] per announce of a registered
//! node; the recorder task folds them into per-node deltas and adds those to SQLite in one
//! transaction per flush (every `flush_interval`, on request, and on shutdown).
//!
//! How the figures are defined:
//! - *online time*: each announce of a node extends its online time by the gap since its
//!   previous announce (any torrent), up to its allowance (the interval it was told plus grace).
//!   A longer gap means it was away. `uptime ratio = online_secs / (now - first_seen)`.
//! - *hour-of-day profile*: online seconds added to the UTC hour of the announce; the report
//!   divides by the seconds of that hour elapsed since first seen.
//! - *per-day online time*: the same seconds added to the UTC day (`unix / 86400`) of the
//!   announce, so scoring can compute uptime over a window (`node_days`, pruned with the
//!   scoring history).
//! - *intervals*: for each torrent, the gap between two announces of the same peer, next to the
//!   interval the tracker had asked for; a gap past 1.5x is a late announce.
//! - *bytes*: growth of the `uploaded`/`downloaded` counters between two announces of the same
//!   peer; a counter that went down (client restart) counts from zero, and a peer's first
//!   announce only sets the baseline (librqbit reports bytes held as `downloaded`).
//!
//! Invariants: the hot path only calls [`RecorderHandle::observe`], which never blocks (a full
//! channel drops the observation and counts it in `dropped`); the recorder owns all writes to
//! `node_stats`, `node_hours`, `node_days`, `node_torrents` and `node_addresses`. Transfer
//! outcomes ([`RecorderHandle::transfer`]) ride the same batches into `transfer_events`: every
//! commit waits for the disk (see [`super::db`]), so one per batch rather than one per transfer;
//! they wait for room in the channel rather than be dropped.

use super::{NodeId, Registry, RegistryError};
use crate::protocol::InfoHash;
use crate::scoring::book::{FactsBook, SeenDelta};
use crate::scoring::{TransferEvent, TransferKind};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the tracker saw in one announce of a registered node.
#[derive(Clone, Debug)]
pub struct Observation {
    pub node: NodeId,
    pub info_hash: InfoHash,
    pub addr: SocketAddr,
    /// Unix seconds.
    pub at: i64,
    pub seeding: bool,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Gap since this peer's previous announce of the same torrent, if it had one.
    pub gap: Option<u32>,
    /// The interval the tracker asks of this client.
    pub expected_interval: u32,
    /// How long a silence still counts as online.
    pub allowance: u32,
    pub completed: bool,
}

/// One transfer to or from a node: whether it succeeded, its size and duration.
#[derive(Clone, Debug)]
pub struct TransferOutcome {
    pub node: NodeId,
    pub kind: TransferKind,
    pub info_hash: InfoHash,
    pub ok: bool,
    pub bytes: u64,
    pub millis: u64,
    /// Unix seconds.
    pub at: i64,
}

enum Message {
    Observe(Observation),
    Transfer(TransferOutcome),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Sending side of the recorder, held by the servers.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl RecorderHandle {
    /// Queues an observation without waiting; drops it if the recorder is behind.
    pub fn observe(&self, o: Observation) {
        if self.tx.try_send(Message::Observe(o)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues a transfer's outcome for the next batch; waits for room rather than lose it.
    pub async fn transfer(&self, t: TransferOutcome) -> Result<(), String> {
        self.tx
            .send(Message::Transfer(t))
            .await
            .map_err(|_| "recorder has stopped".to_owned())
    }

    /// Writes everything queued so far to the database.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Message::Flush(ack))
            .await
            .map_err(|_| "recorder has stopped".to_owned())?;
        done.await.map_err(|_| "recorder has stopped".to_owned())?
    }

    /// Observations dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Pending {
    first_seen: Option<i64>,
    last_seen: i64,
    announces: i64,
    online_secs: i64,
    interval_samples: i64,
    interval_observed: i64,
    interval_expected: i64,
    late: i64,
    bytes_up: i64,
    bytes_down: i64,
    completions: i64,
    address_changes: i64,
    last_addr: Option<String>,
    hours: [i64; 24],
    /// Online seconds by UTC day number.
    days: HashMap<i64, i64>,
    torrents: HashMap<InfoHash, (bool, i64, i64)>,
    addresses: HashMap<String, (i64, i64)>,
}

/// What the recorder remembers of each node between flushes.
struct Live {
    last_seen: i64,
    last_addr: Option<String>,
}

/// The recorder task's state.
pub struct Recorder {
    registry: Registry,
    rx: mpsc::Receiver<Message>,
    live: HashMap<NodeId, Live>,
    pending: HashMap<NodeId, Pending>,
    transfers: Vec<TransferOutcome>,
    flush_every: Duration,
}

/// Creates the recorder; run [`Recorder::run`] in a task and give the handle to the servers.
pub async fn recorder(
    registry: Registry,
    capacity: usize,
    flush_every: Duration,
) -> Result<(Recorder, RecorderHandle), RegistryError> {
    let rows: Vec<(NodeId, i64, Option<String>)> =
        sqlx::query_as("SELECT node_id, last_seen, last_addr FROM node_stats")
            .fetch_all(registry.reader())
            .await?;
    let live = rows
        .into_iter()
        .map(|(id, last_seen, last_addr)| {
            (
                id,
                Live {
                    last_seen,
                    last_addr,
                },
            )
        })
        .collect();
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let handle = RecorderHandle {
        tx,
        dropped: Arc::default(),
    };
    let recorder = Recorder {
        registry,
        rx,
        live,
        pending: HashMap::new(),
        transfers: Vec::new(),
        flush_every,
    };
    Ok((recorder, handle))
}

impl Recorder {
    /// Folds observations and flushes them until `shutdown` resolves, then drains the channel
    /// and flushes a last time.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.handle(m).await,
                    None => break,
                },
                _ = tick.tick() => self.flush_logged().await,
                _ = &mut shutdown => break,
            }
        }
        self.rx.close();
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m).await;
        }
        self.flush_logged().await;
    }

    async fn handle(&mut self, m: Message) {
        match m {
            Message::Observe(o) => self.fold(o),
            Message::Transfer(t) => self.transfers.push(t),
            Message::Flush(ack) => {
                let r = self.flush().await.map_err(|e| e.to_string());
                let _ = ack.send(r);
            }
        }
    }

    async fn flush_logged(&mut self) {
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "writing reliability records failed; will retry");
        }
    }

    fn fold(&mut self, o: Observation) {
        let addr = o.addr.to_string();
        let p = self.pending.entry(o.node).or_default();
        match self.live.get_mut(&o.node) {
            Some(live) => {
                let gap = (o.at - live.last_seen).max(0);
                let credit = gap.min(i64::from(o.allowance));
                p.online_secs += credit;
                p.hours[crate::scoring::hours::hour_of(o.at)] += credit;
                if credit > 0 {
                    *p.days.entry(o.at.div_euclid(86_400)).or_default() += credit;
                }
                live.last_seen = live.last_seen.max(o.at);
                if live.last_addr.as_deref() != Some(addr.as_str()) {
                    if live.last_addr.is_some() {
                        p.address_changes += 1;
                    }
                    live.last_addr = Some(addr.clone());
                }
            }
            None => {
                p.first_seen = Some(o.at);
                self.live.insert(
                    o.node,
                    Live {
                        last_seen: o.at,
                        last_addr: Some(addr.clone()),
                    },
                );
            }
        }
        p.last_seen = p.last_seen.max(o.at);
        p.announces += 1;
        if let Some(gap) = o.gap {
            p.interval_samples += 1;
            p.interval_observed += i64::from(gap);
            p.interval_expected += i64::from(o.expected_interval);
            if u64::from(gap) * 2 > u64::from(o.expected_interval) * 3 {
                p.late += 1;
            }
        }
        p.bytes_up = p.bytes_up.saturating_add(clamp_i64(o.bytes_up));
        p.bytes_down = p.bytes_down.saturating_add(clamp_i64(o.bytes_down));
        p.completions += i64::from(o.completed);
        p.last_addr = Some(addr.clone());
        let t = p
            .torrents
            .entry(o.info_hash)
            .or_insert((o.seeding, o.at, o.at));
        t.0 = o.seeding;
        t.2 = o.at;
        let a = p.addresses.entry(addr).or_insert((o.at, o.at));
        a.1 = a.1.max(o.at);
    }

    /// Adds all pending deltas and transfer outcomes to the database in one transaction.
    pub async fn flush(&mut self) -> Result<(), RegistryError> {
        if self.pending.is_empty() && self.transfers.is_empty() {
            return Ok(());
        }
        let since = std::time::Instant::now();
        let mut book = self.registry.book.lock().await;
        let mut tx = self.registry.writer().begin().await?;
        for (node, p) in &self.pending {
            write_pending(&mut tx, *node, p).await?;
        }
        for t in &self.transfers {
            write_transfer(&mut tx, t).await?;
        }
        tx.commit().await?;
        if let Some(book) = book.as_mut() {
            self.apply(book);
        }
        drop(book);
        crate::metrics::metrics().db_write(since);
        self.pending.clear();
        self.transfers.clear();
        Ok(())
    }
}

impl Recorder {
    /// The batch just committed, in the scoring facts.
    fn apply(&self, book: &mut FactsBook) {
        for (node, p) in &self.pending {
            let delta = SeenDelta {
                first_seen: p.first_seen,
                last_seen: p.last_seen,
                hours: p.hours,
                days: p.days.iter().map(|(d, s)| (*d, *s)).collect(),
            };
            book.seen(*node, &delta);
        }
        for t in &self.transfers {
            book.transfer(
                t.node,
                TransferEvent {
                    at: t.at,
                    ok: t.ok,
                    bytes: t.bytes,
                    millis: t.millis,
                },
            );
        }
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A transfer outcome, unless its node is no longer registered.
async fn write_transfer(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    t: &TransferOutcome,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO transfer_events (node_id, kind, info_hash, ok, bytes, millis, at)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM nodes WHERE id = $1)",
    )
    .bind(t.node)
    .bind(t.kind.as_str())
    .bind(t.info_hash.to_hex())
    .bind(i64::from(t.ok))
    .bind(clamp_i64(t.bytes))
    .bind(clamp_i64(t.millis))
    .bind(t.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Rows per multi-row INSERT (5 parameters each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

async fn write_pending(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    node: NodeId,
    p: &Pending,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO node_stats (node_id, first_seen, last_seen, announces, online_secs,
             interval_samples, interval_observed_secs, interval_expected_secs, late_announces,
             bytes_up, bytes_down, completions, address_changes, last_addr)
         VALUES ($1, coalesce($2, $3), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (node_id) DO UPDATE SET
             last_seen = CASE WHEN excluded.last_seen > node_stats.last_seen
                 THEN excluded.last_seen ELSE node_stats.last_seen END,
             announces = node_stats.announces + excluded.announces,
             online_secs = node_stats.online_secs + excluded.online_secs,
             interval_samples = node_stats.interval_samples + excluded.interval_samples,
             interval_observed_secs = node_stats.interval_observed_secs + excluded.interval_observed_secs,
             interval_expected_secs = node_stats.interval_expected_secs + excluded.interval_expected_secs,
             late_announces = node_stats.late_announces + excluded.late_announces,
             bytes_up = node_stats.bytes_up + excluded.bytes_up,
             bytes_down = node_stats.bytes_down + excluded.bytes_down,
             completions = node_stats.completions + excluded.completions,
             address_changes = node_stats.address_changes + excluded.address_changes,
             last_addr = coalesce(excluded.last_addr, node_stats.last_addr)",
    )
    .bind(node)
    .bind(p.first_seen)
    .bind(p.last_seen)
    .bind(p.announces)
    .bind(p.online_secs)
    .bind(p.interval_samples)
    .bind(p.interval_observed)
    .bind(p.interval_expected)
    .bind(p.late)
    .bind(p.bytes_up)
    .bind(p.bytes_down)
    .bind(p.completions)
    .bind(p.address_changes)
    .bind(&p.last_addr)
    .execute(&mut **tx)
    .await?;
    for (hour, secs) in p.hours.iter().enumerate().filter(|(_, s)| **s > 0) {
        sqlx::query(
            "INSERT INTO node_hours (node_id, hour, online_secs) VALUES ($1, $2, $3)
             ON CONFLICT (node_id, hour)
             DO UPDATE SET online_secs = node_hours.online_secs + excluded.online_secs",
        )
        .bind(node)
        .bind(hour as i64)
        .bind(secs)
        .execute(&mut **tx)
        .await?;
    }
    for (day, secs) in &p.days {
        sqlx::query(
            "INSERT INTO node_days (node_id, day, online_secs) VALUES ($1, $2, $3)
             ON CONFLICT (node_id, day)
             DO UPDATE SET online_secs = node_days.online_secs + excluded.online_secs",
        )
        .bind(node)
        .bind(day)
        .bind(secs)
        .execute(&mut **tx)
        .await?;
    }
    write_seen(tx, node, p).await
}

/// The torrents and addresses a node was seen with. Many rows per statement: a node seeding
/// thousands of torrents touches all of them in every batch, and one statement per row would
/// make the writer fall behind the announces.
async fn write_seen(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    node: NodeId,
    p: &Pending,
) -> Result<(), sqlx::Error> {
    let torrents: Vec<_> = p.torrents.iter().collect();
    for chunk in torrents.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO node_torrents (node_id, info_hash, seeding, first_seen, last_seen) {}
             ON CONFLICT (node_id, info_hash) DO UPDATE SET seeding = excluded.seeding,
                 last_seen = CASE WHEN excluded.last_seen > node_torrents.last_seen
                     THEN excluded.last_seen ELSE node_torrents.last_seen END",
            values_rows(chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for (hash, (seeding, first, last)) in chunk {
            q = q
                .bind(node)
                .bind(hash.to_string())
                .bind(i64::from(*seeding))
                .bind(*first)
                .bind(*last);
        }
        q.execute(&mut **tx).await?;
    }
    let addresses: Vec<_> = p.addresses.iter().collect();
    for chunk in addresses.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO node_addresses (node_id, addr, first_seen, last_seen) {}
             ON CONFLICT (node_id, addr) DO UPDATE SET
                 last_seen = CASE WHEN excluded.last_seen > node_addresses.last_seen
                     THEN excluded.last_seen ELSE node_addresses.last_seen END",
            values_rows(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (addr, (first, last)) in chunk {
            q = q.bind(node).bind(addr.as_str()).bind(*first).bind(*last);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `VALUES ($1, .., $width), ..` for `rows` rows, numbered as both SQLite and PostgreSQL read them.
fn values_rows(rows: usize, width: usize) -> String {
    let row = |r: usize| {
        let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
        format!("({})", cells.join(", "))
    };
    let all: Vec<String> = (0..rows).map(row).collect();
    format!("VALUES {}", all.join(", "))
}
