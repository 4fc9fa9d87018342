//! The gateway end of the control connection (BEP RT-0002, `bep-spec/bep-rt-0002-placement-extension.md`):
//! nodes dial in, prove they know their passkey, and then take directives (hold a shard, drop a
//! shard) and send reports. [`ControlHub`] is what the rest of the gateway talks to.
//!
//! One task per connection (`conn.rs`, authentication in `handshake.rs`) owns the socket; the hub
//! keeps the live map of authenticated nodes and hands each directive to its node's task through
//! a channel, with a oneshot for the answer.
//!
//! Invariants:
//! - At most one connection per node is in the map. A new authenticated connection of a node
//!   whose current one has carried an authenticated message within the last two keep-alive
//!   intervals is refused with `bye duplicate` (a live session is never evicted by a newcomer);
//!   otherwise the old connection is told `bye replaced` and closed, and the new one takes over.
//! - Every frame after the handshake is authenticated (`raidtorrent_proto::session`); a frame
//!   that fails its tag ends the connection. Only authenticated messages count as hearing from
//!   the node.
//! - A node revoked through the registry loses its connection at once (`bye auth`), and is never
//!   in the map again.
//! - The facts in the map are the registry's where it has them: the zone registered for the node
//!   (a node that claims another is refused with `bye facts`), a capacity no larger than the
//!   registered limit, and the IP address the connection comes from.
//! - Every directive resolves exactly once: with the node's `ack` or `refuse`, or
//!   [`ControlError::Disconnected`] when its connection ends first (the answers owed on a
//!   connection die with it, RT-0002 section 6), or [`ControlError::TimedOut`]. Resending after a
//!   reconnect is the caller's choice; directives are idempotent per info-hash.
//! - Before authentication a peer gets our BEP 3 handshake and extended handshake and nothing
//!   else; frames are capped at [`PRE_AUTH_MAX_FRAME`] and the whole exchange at
//!   [`ControlConfig::handshake_timeout_ms`], so a stock client or a scanner costs little.
//! - Liveness feeds the node's reliability record: every authenticated connection reports
//!   [`Observation`](crate::registry::records::Observation)s on the control info-hash (at
//!   authentication, at most once per keep-alive interval while frames arrive, and at the end),
//!   from the node's data address, with the BEP's silence limit (three keep-alive intervals) as
//!   the online allowance. So a node's online time and hour-of-day profile count control
//!   connection time as well as announces, and its torrents list the control info-hash while it
//!   is connected.
//!
//! ```no_run
//! # async fn demo(registry: raidtorrent_tracker::registry::Registry,
//! #               recorder: raidtorrent_tracker::registry::records::RecorderHandle) {
//! use raidtorrent_tracker::control::{ControlConfig, ControlHub, InfoHash, Outcome};
//! use std::time::Duration;
//! let hub = ControlHub::new(registry, recorder, ControlConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn({
//!     let hub = hub.clone();
//!     async move { hub.serve(listener, None, async { let _ = stopped.await; }).await }
//! });
//! if hub.wait_connected(7, Duration::from_secs(30)).await {
//!     let metainfo = std::fs::read("shard.torrent").unwrap();
//!     match hub.hold(7, InfoHash([0; 20]), metainfo, Duration::from_secs(600)).await {
//!         Ok(Outcome::Acked) => println!("node 7 seeds the shard"),
//!         other => println!("not placed: {other:?}"),
//!     }
//! }
//! let _ = stop.send(());
//! server.await.unwrap();
//! # }
//! ```

mod config;
mod conn;
mod handshake;
mod holders;
mod wire;

#[cfg(test)]
mod tests;

use crate::net::{Gate, Tls};
use crate::registry::records::RecorderHandle;
use crate::registry::{NodeId, Registry};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

pub use config::ControlConfig;
pub use raidtorrent_proto::{Hold, InfoHash, MetainfoSource, RefuseCode, Report, Transfer};

/// Largest frame accepted before a node has authenticated: room for an extended handshake, far
/// from the 34 MiB a directive answer may never need anyway.
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;

/// A node connected and authenticated now, with the facts it told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedNode {
    pub node: NodeId,
    /// The remote end of the control connection.
    pub peer_addr: SocketAddr,
    /// Where the node accepts BitTorrent connections: the peer's IP and its data port (`p`), if
    /// it announced one.
    pub data_addr: Option<SocketAddr>,
    pub zone: String,
    /// Bytes the node donates.
    pub capacity: u64,
    /// Bytes it can still take: from its handshake, then `min(capacity - used, filesystem free)`
    /// of its latest report.
    pub free: u64,
    /// Its software (`v`).
    pub client: Option<String>,
    /// The placement protocol version agreed in `welcome`.
    pub version: u64,
    pub connected_since: SystemTime,
    pub last_report_at: Option<SystemTime>,
    /// Its latest report's figures and transfers; the held set is in `held`, not here.
    pub report: Option<Arc<Report>>,
    /// Its held set, as its reports on this connection built it up (RT-0002: a full report, then
    /// deltas). Shared, so listing nodes that hold thousands of shards copies no held sets.
    pub held: Option<Arc<HashSet<InfoHash>>>,
}

/// How a node answered a directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Refused { code: RefuseCode, reason: String },
}

/// Why a directive got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("node {0} is not connected")]
    NotConnected(NodeId),
    #[error("node {0} disconnected before answering")]
    Disconnected(NodeId),
    #[error("node {0} did not answer in time")]
    TimedOut(NodeId),
}

/// A directive on its way to a node's connection task.
struct Command {
    ih: InfoHash,
    body: raidtorrent_proto::Message,
    answer: oneshot::Sender<Outcome>,
}

/// Why the gateway closes a node's connection (other than a newer connection replacing it).
enum Evict {
    Revoked,
}

/// A connection in the live map.
struct Live {
    conn: u64,
    /// When the connection last carried an authenticated message, in milliseconds since the
    /// hub's epoch; written by its task.
    heard: Arc<AtomicU64>,
    /// The registered capacity limit its reports are held to.
    capacity_limit: Option<u64>,
    commands: mpsc::Sender<Command>,
    /// Sent on to close the connection; dropped (so its receiver wakes too) when a newer
    /// connection of the node takes over.
    evict: oneshot::Sender<Evict>,
    info: ConnectedNode,
}

struct Inner {
    registry: Registry,
    recorder: RecorderHandle,
    config: ControlConfig,
    nodes: Mutex<HashMap<NodeId, Live>>,
    /// Bumped whenever the live map changes.
    changes: watch::Sender<u64>,
    reports: broadcast::Sender<(NodeId, Report)>,
    /// Shards connected nodes stopped reporting, until the health worker takes them.
    unreported: Mutex<Unreported>,
    /// Who holds each shard by the connected nodes' reports; changed only under `nodes`' lock.
    holders: RwLock<holders::Holders>,
    next_conn: AtomicU64,
    /// The zero of every `heard` time.
    epoch: Instant,
    /// Whether control connections count as the nodes' online time ([`ControlHub::record_liveness`]).
    records_liveness: AtomicBool,
}

/// The control listener and the live map of connected nodes; cheap to clone.
#[derive(Clone)]
pub struct ControlHub {
    inner: Arc<Inner>,
}

impl ControlHub {
    /// `config` must pass [`ControlConfig::validate`].
    pub fn new(registry: Registry, recorder: RecorderHandle, config: ControlConfig) -> Self {
        let (reports, _) = broadcast::channel(config.report_buffer.max(1));
        ControlHub {
            inner: Arc::new(Inner {
                registry,
                recorder,
                config,
                nodes: Mutex::new(HashMap::new()),
                changes: watch::channel(0).0,
                reports,
                unreported: Mutex::default(),
                holders: RwLock::default(),
                next_conn: AtomicU64::new(1),
                epoch: Instant::now(),
                records_liveness: AtomicBool::new(true),
            }),
        }
    }

    /// Whether control connections count as the nodes' online time (they do unless told
    /// otherwise). Nodes keep a connection to every gateway of their cloud, so a gateway
    /// standing by on a shared database leaves the counting to the holder of the work lease,
    /// and no node's time counts twice.
    pub fn record_liveness(&self, on: bool) {
        self.inner.records_liveness.store(on, Ordering::Relaxed);
    }

    /// The records writer, for what the gateway learns about nodes besides their announces.
    pub fn recorder(&self) -> &RecorderHandle {
        &self.inner.recorder
    }

    /// Serves node connections on an already-bound listener, inside TLS when `tls` is given,
    /// until `shutdown` resolves; then stops accepting, says `bye` (code `shutdown`) on every
    /// connection and waits for their tasks. Outstanding directives on them resolve as
    /// [`ControlError::Disconnected`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<Tls>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let gate = Gate::new(self.inner.config.handshakes);
        tokio::pin!(shutdown);
        tracing::info!(addr = ?listener.local_addr().ok(), "control listener serving");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(handshake) = gate.admit(peer.ip()) else {
                            tracing::debug!(%peer, "too many control handshakes; closed");
                            continue;
                        };
                        let span = tracing::info_span!("control", %peer);
                        let stream = (stream, tls.clone());
                        let task = conn::run(self.clone(), stream, peer, handshake, stop_rx.clone());
                        tasks.spawn(task.instrument(span));
                    }
                    Err(e) => {
                        // Out of descriptors and the like: give the system a moment.
                        tracing::warn!(error = %e, "accepting a control connection failed");
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => log_join(done),
            }
        }
        drop(listener);
        let _ = stop.send(true);
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
        tracing::info!("control listener stopped");
    }

    /// Takes the shards connected nodes stopped reporting since the last take.
    pub fn take_unreported(&self) -> Unreported {
        std::mem::take(&mut *self.unreported())
    }

    fn unreported(&self) -> std::sync::MutexGuard<'_, Unreported> {
        self.inner
            .unreported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Nodes connected and authenticated now, by node id.
    pub fn connected(&self) -> Vec<ConnectedNode> {
        let nodes = self.nodes();
        let mut out: Vec<_> = nodes.values().map(|l| l.info.clone()).collect();
        out.sort_by_key(|n| n.node);
        out
    }

    /// One connected node.
    pub fn node(&self, node: NodeId) -> Option<ConnectedNode> {
        self.nodes().get(&node).map(|l| l.info.clone())
    }

    /// Waits until `node` is connected and authenticated, up to `timeout`; true if it is.
    pub async fn wait_connected(&self, node: NodeId, timeout: Duration) -> bool {
        self.wait_for(timeout, || self.nodes().contains_key(&node))
            .await
    }

    /// Waits until `node` is not connected, up to `timeout`; true if it is gone.
    pub async fn wait_disconnected(&self, node: NodeId, timeout: Duration) -> bool {
        self.wait_for(timeout, || !self.nodes().contains_key(&node))
            .await
    }

    /// Changes whenever a node connects or disconnects.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    async fn wait_for(&self, timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
        let mut changes = self.inner.changes.subscribe();
        let wait = async {
            loop {
                changes.borrow_and_update();
                if ok() {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && ok()
    }

    /// Sends a `hold` with the complete metainfo and resolves when the node acks (the shard is
    /// downloaded, verified and seeded) or refuses; or fails: not connected, connection lost,
    /// no answer within `timeout`.
    pub async fn hold(
        &self,
        node: NodeId,
        info_hash: InfoHash,
        metainfo: Vec<u8>,
        timeout: Duration,
    ) -> Result<Outcome, ControlError> {
        let hold = Hold {
            ih: info_hash,
            source: MetainfoSource::Torrent(metainfo),
            peers: Vec::new(),
        };
        self.hold_with(node, hold, timeout).await
    }

    /// [`hold`](Self::hold) with every field of the directive: a metainfo URL instead of the
    /// bytes, and peers known to hold the shard.
    pub async fn hold_with(
        &self,
        node: NodeId,
        hold: Hold,
        timeout: Duration,
    ) -> Result<Outcome, ControlError> {
        let ih = hold.ih;
        let body = raidtorrent_proto::Message::Hold(hold);
        self.direct(node, ih, body, timeout).await
    }

    /// Sends a `drop` and resolves when the node has deleted the shard (or never held it).
    pub async fn drop_shard(
        &self,
        node: NodeId,
        info_hash: InfoHash,
        timeout: Duration,
    ) -> Result<Outcome, ControlError> {
        let body = raidtorrent_proto::Message::Drop { ih: info_hash };
        self.direct(node, info_hash, body, timeout).await
    }

    /// Closes a node's connection with `bye auth`: for a node whose passkey was just revoked, so it
    /// stops taking directives now rather than at its next reconnect (which the registry then
    /// refuses). Its outstanding directives resolve as [`ControlError::Disconnected`]. False if it
    /// was not connected.
    pub fn disconnect(&self, node: NodeId) -> bool {
        let Some(live) = self.remove_live(&mut self.nodes(), node) else {
            return false;
        };
        let _ = live.evict.send(Evict::Revoked);
        self.inner.changes.send_modify(|n| *n += 1);
        true
    }

    /// Every report any node sends from now on, as it was sent (full or a delta); the held set
    /// it builds up is the node's [`ConnectedNode::held`].
    pub fn subscribe_reports(&self) -> broadcast::Receiver<(NodeId, Report)> {
        self.inner.reports.subscribe()
    }

    async fn direct(
        &self,
        node: NodeId,
        ih: InfoHash,
        body: raidtorrent_proto::Message,
        timeout: Duration,
    ) -> Result<Outcome, ControlError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let commands = self
            .nodes()
            .get(&node)
            .map(|l| l.commands.clone())
            .ok_or(ControlError::NotConnected(node))?;
        let (answer, answered) = oneshot::channel();
        let command = Command { ih, body, answer };
        match tokio::time::timeout_at(deadline, commands.send(command)).await {
            Err(_) => return Err(ControlError::TimedOut(node)),
            Ok(Err(_)) => return Err(ControlError::Disconnected(node)),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, answered).await {
            Err(_) => Err(ControlError::TimedOut(node)),
            Ok(Err(_)) => Err(ControlError::Disconnected(node)),
            Ok(Ok(outcome)) => Ok(outcome),
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Live>> {
        self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a node out of the map (whose lock the caller holds) and out of the holder index.
    fn remove_live(&self, nodes: &mut HashMap<NodeId, Live>, node: NodeId) -> Option<Live> {
        let live = nodes.remove(&node)?;
        self.holders_mut().forget(node, live.info.held.as_deref());
        Some(live)
    }

    fn holders_mut(&self) -> std::sync::RwLockWriteGuard<'_, holders::Holders> {
        self.inner
            .holders
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The BitTorrent addresses of the connected nodes whose latest report holds `ih`: the peers
    /// of the shard's swarm by the placement records, whether or not they announce it.
    pub fn holders_of(&self, ih: &InfoHash) -> Vec<SocketAddr> {
        let holders = self.inner.holders.read();
        holders.unwrap_or_else(|e| e.into_inner()).of(ih)
    }

    /// Milliseconds since the hub's epoch: the clock of `heard`.
    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Puts an authenticated connection in the map. An older connection of the same node is
    /// replaced (and so closed) only if it has been silent for two keep-alive intervals;
    /// otherwise the newcomer is refused.
    fn register(
        &self,
        info: ConnectedNode,
        capacity_limit: Option<u64>,
    ) -> Result<Joined, Duplicate> {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (commands, command_rx) = mpsc::channel(self.inner.config.queue_depth);
        let (evict, evicted) = oneshot::channel();
        let node = info.node;
        let now = self.now_ms();
        let quiet_ms = 2 * self.inner.config.keepalive().as_millis() as u64;
        let heard = Arc::new(AtomicU64::new(now));
        let old = {
            let mut nodes = self.nodes();
            if let Some(live) = nodes.get(&node) {
                let silent_ms = now.saturating_sub(live.heard.load(Ordering::Relaxed));
                if silent_ms < quiet_ms {
                    return Err(Duplicate { silent_ms });
                }
            }
            let live = Live {
                conn,
                heard: heard.clone(),
                capacity_limit,
                commands,
                evict,
                info,
            };
            let old = nodes.insert(node, live);
            self.holders_mut()
                .forget(node, old.as_ref().and_then(|l| l.info.held.as_deref()));
            old
        };
        if old.is_some() {
            tracing::info!(
                node,
                "node reconnected; its silent older connection is closed"
            );
        }
        drop(old);
        self.inner.changes.send_modify(|n| *n += 1);
        Ok(Joined {
            conn,
            heard,
            commands: command_rx,
            evicted,
        })
    }

    /// Removes the connection from the map if it is still the node's current one.
    fn deregister(&self, node: NodeId, conn: u64) {
        let removed = {
            let mut nodes = self.nodes();
            match nodes.get(&node) {
                Some(l) if l.conn == conn => self.remove_live(&mut nodes, node),
                _ => None,
            }
        };
        if removed.is_some() {
            self.inner.changes.send_modify(|n| *n += 1);
        }
    }

    /// Applies a node's report to its held set and tells subscribers. The work follows the
    /// report's size: a delta of one shard from a node holding 10,000 touches one shard.
    fn reported(&self, node: NodeId, conn: u64, report: Report) {
        {
            let mut nodes = self.nodes();
            let Some(l) = nodes.get_mut(&node).filter(|l| l.conn == conn) else {
                return;
            };
            // A report claims capacity as the hello did: never above the registered limit.
            let capacity = l
                .capacity_limit
                .map_or(report.capacity, |c| report.capacity.min(c));
            l.info.free = capacity.saturating_sub(report.used).min(report.free);
            l.info.capacity = capacity;
            l.info.last_report_at = Some(SystemTime::now());
            // Copied only when a snapshot still shares the set.
            let held = Arc::make_mut(l.info.held.get_or_insert_with(Arc::default));
            let change = report.apply(held);
            self.unreported().add(&change.removed);
            self.holders_mut().apply(node, l.info.data_addr, &change);
            l.info.report = Some(Arc::new(Report {
                full: true,
                held: Vec::new(),
                gone: Vec::new(),
                capacity: report.capacity,
                used: report.used,
                free: report.free,
                transfers: report.transfers.clone(),
            }));
        }
        // No subscriber is not an error.
        let _ = self.inner.reports.send((node, report));
    }
}

/// Shards that left some connected node's reports, for the health worker: a copy the node no
/// longer has stops counting without anything else changing. Bounded; past the bound it only
/// says that some were missed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unreported {
    pub shards: Vec<InfoHash>,
    /// More were dropped than kept: the taker must look at everything.
    pub overflowed: bool,
}

/// Most shards [`Unreported`] keeps between two takes.
const UNREPORTED_MAX: usize = 65_536;

impl Unreported {
    fn add(&mut self, removed: &[InfoHash]) {
        for ih in removed {
            if self.shards.len() >= UNREPORTED_MAX {
                self.overflowed = true;
                return;
            }
            self.shards.push(*ih);
        }
    }
}

/// What a connection task gets back when it joins the map.
struct Joined {
    conn: u64,
    /// Its entry's `heard` time, to move on every authenticated message.
    heard: Arc<AtomicU64>,
    commands: mpsc::Receiver<Command>,
    evicted: oneshot::Receiver<Evict>,
}

/// Why a node's new connection was refused: its current one is live.
#[derive(Debug)]
struct Duplicate {
    /// How long the live connection has been silent.
    silent_ms: u64,
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a control connection task panicked");
        }
    }
}
