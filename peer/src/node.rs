//! A running node: the ledger's decisions carried out on the librqbit session, the disk and the
//! control connections. Directive handling lives in `directives.rs`; start-up, restore, reports and
//! shutdown here.
//!
//! Locks (`ledger`, `status`, `conns`, `fetches`) are std mutexes held only for a few statements,
//! never across an await. Writes of the held set run whole on tokio's blocking threads, one at a
//! time (`persisting`): their fsyncs do not stall the runtime's workers, and a write once begun
//! finishes, and updates the ledger, even if the task that asked for it is dropped. (A new
//! hold's metainfo file and `status.json` are still written on a worker.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use raidtorrent_proto::{InfoHash, Message, Report};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::Engine;
use crate::ledger::{Ledger, Shard, ShardState};
use crate::reported::Reported;
use crate::status::{unix_now, GatewayStatus, ShardStatus, Status, STATUS_VERSION};
use crate::store::{Appended, Entry, Store, StoredShard};
use crate::tasks::Tasks;

/// How long shutdown waits for tasks to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How many shard data files may be open at once: the configured number, lowered to fit under
/// this process's open-file limit.
fn shard_file_budget(configured: usize) -> anyhow::Result<usize> {
    let limit = crate::fds::nofile_limit().context("reading the open-file limit")?;
    let budget = crate::fds::shard_file_budget(configured, limit);
    if budget < configured {
        tracing::warn!(
            open_files = limit,
            configured,
            budget,
            "the open-file limit is low: fewer shard files are kept open than configured"
        );
    }
    tracing::info!(budget, "shard data files open at most");
    Ok(budget)
}

/// The held set's record of a shard (one [`Shard::kept`]).
fn stored(ih: &InfoHash, shard: &Shard) -> StoredShard {
    StoredShard {
        info_hash: ih.to_hex(),
        name: shard.name.clone(),
        length: shard.length,
        owners: shard.owners.clone(),
    }
}

/// Runs a write of the held set off the runtime's worker threads, to its end.
async fn on_blocking_thread(
    write: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(write)
        .await
        .context("a write of the held set did not finish")?
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fetch in progress: cancelled by a drop, which then waits for `done`.
pub(crate) struct Fetch {
    pub cancel: CancellationToken,
    pub done: watch::Receiver<bool>,
}

pub struct Node {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) status: Mutex<Status>,
    /// Outbound queues of the open control connections, by connection id.
    pub(crate) conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>,
    pub(crate) fetches: Mutex<HashMap<InfoHash, Fetch>>,
    /// Bumped whenever the held set changes, so connections send a report.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) tasks: Tasks,
    next_conn: AtomicU64,
    /// Held across taking the held set and writing it, so two directives finishing at once
    /// neither race on the temporary file nor leave the older set on disk.
    persisting: Mutex<()>,
}

/// A started node and the handle to stop it.
pub struct RunningNode {
    node: Arc<Node>,
}

impl RunningNode {
    /// Validates the config, opens the data directory, starts the BitTorrent session, re-seeds the
    /// held set from disk, and starts the status writer and one control connection per gateway.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let store = Store::open(&config.data_dir)?;
        let token = CancellationToken::new();
        let tasks = Tasks::new(token.clone());
        let engine = Engine::start(
            &store.shards_dir(),
            config.listen,
            &config.limits,
            shard_file_budget(config.limits.open_files)?,
            config.announce_held,
            token.child_token(),
        )
        .await?;
        let status = Status {
            version: STATUS_VERSION,
            pid: std::process::id(),
            zone: config.zone.clone(),
            listen: engine.listen_addr().to_string(),
            quota: config.quota.0,
            gateways: config
                .gateways
                .iter()
                .map(|g| GatewayStatus {
                    name: g.name().to_owned(),
                    control: g.control.clone(),
                    state: "connecting".into(),
                    since: unix_now(),
                    ..GatewayStatus::default()
                })
                .collect(),
            ..Status::default()
        };
        let node = Arc::new(Node {
            ledger: Mutex::new(Ledger::new(config.quota.0)),
            status: Mutex::new(status),
            conns: Mutex::default(),
            fetches: Mutex::default(),
            changed: watch::channel(0).0,
            next_conn: AtomicU64::new(1),
            persisting: Mutex::new(()),
            config,
            store,
            engine,
            tasks,
        });
        if let Err(e) = node.restore().await {
            node.tasks.token().cancel();
            node.engine.stop().await;
            return Err(e);
        }
        node.tasks
            .spawn("status writer", crate::status_task::run(node.clone()));
        node.tasks
            .spawn("parked shards", crate::restore::run(node.clone()));
        for gw in node.config.gateways.clone() {
            let name = format!("control {}", gw.name());
            node.tasks
                .spawn(name, crate::control::run(node.clone(), gw));
        }
        Ok(RunningNode { node })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.node.engine.listen_addr()
    }

    /// Names of the node's background tasks still running.
    pub fn tasks(&self) -> Vec<String> {
        self.node.tasks.live()
    }

    /// Stops everything: control connections say `bye`, fetches stop, the status is written a last
    /// time, the session stops. Returns the names of tasks that did not stop in time (none, normally).
    pub async fn shutdown(self) -> Vec<String> {
        let left = self.node.tasks.shutdown(SHUTDOWN_GRACE).await;
        tracing::debug!(?left, "tasks stopped");
        self.node.engine.stop().await;
        tracing::debug!("session stopped");
        if let Err(e) = self
            .node
            .snapshot_status()
            .write(&self.node.store.status_path())
        {
            tracing::warn!("writing the final status: {e:#}");
        }
        left
    }

    /// Waits for Ctrl-C or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        let left = self.shutdown().await;
        anyhow::ensure!(left.is_empty(), "tasks did not stop: {left:?}");
        Ok(())
    }
}

impl Node {
    pub(crate) fn new_connection(&self, tx: mpsc::UnboundedSender<Message>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).insert(id, tx);
        id
    }

    pub(crate) fn close_connection(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Sends an answer on a connection; if it has closed, the answer is lost and the gateway resends.
    pub(crate) fn send(&self, conn: u64, message: Message) {
        if let Some(tx) = lock(&self.conns).get(&conn) {
            let _ = tx.send(message);
        }
    }

    /// Records the held set's changes to the shards `changed` (each as the ledger has it now)
    /// on disk, then tells connections to report: a journal line for one shard, the whole set
    /// for several at once or when a snapshot is due.
    pub(crate) async fn persist(self: &Arc<Self>, changed: &[InfoHash]) -> anyhow::Result<()> {
        let (node, changed) = (self.clone(), changed.to_vec());
        on_blocking_thread(move || node.persist_now(&changed)).await
    }

    /// Writes the whole held set to disk as a new snapshot, then tells connections to report.
    pub(crate) async fn persist_all(self: &Arc<Self>) -> anyhow::Result<()> {
        let node = self.clone();
        on_blocking_thread(move || {
            let _one_at_a_time = lock(&node.persisting);
            node.snapshot()?;
            node.changed.send_modify(|v| *v += 1);
            Ok(())
        })
        .await
    }

    /// [`Node::persist`], on the calling thread.
    fn persist_now(&self, changed: &[InfoHash]) -> anyhow::Result<()> {
        if changed.is_empty() {
            self.changed.send_modify(|v| *v += 1);
            return Ok(());
        }
        let _one_at_a_time = lock(&self.persisting);
        let none = BTreeSet::new();
        let entries: Vec<Entry> = {
            let mut ledger = lock(&self.ledger);
            let entries: Vec<Entry> = changed
                .iter()
                .map(|ih| match ledger.get(ih) {
                    Some(s) if s.kept() => Entry::Keep(stored(ih, s)),
                    _ => Entry::Forget(ih.to_hex()),
                })
                .collect();
            for (ih, entry) in changed.iter().zip(&entries) {
                ledger.writing(ih, entry.owners().unwrap_or(&none));
            }
            entries
        };
        // Several changes at once (rare) are written as a snapshot: an append is one line.
        let appended = match entries.as_slice() {
            [one] => self.store.append(one),
            _ => Ok(Appended::SnapshotDue),
        };
        match appended.context("recording a change to the held set")? {
            Appended::Journaled => {
                let mut ledger = lock(&self.ledger);
                for (ih, entry) in changed.iter().zip(&entries) {
                    ledger.on_disk(ih, entry.owners().unwrap_or(&none));
                }
            }
            Appended::SnapshotDue => self.snapshot()?,
        }
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Writes the held set as the ledger has it now, and records in the ledger what the disk
    /// names. Called with `persisting` held.
    fn snapshot(&self) -> anyhow::Result<()> {
        let (shards, written) = {
            let mut ledger = lock(&self.ledger);
            let held: Vec<(&InfoHash, &Shard)> =
                ledger.shards().filter(|(_, s)| s.kept()).collect();
            let shards: Vec<StoredShard> = held.iter().map(|(ih, s)| stored(ih, s)).collect();
            let written: BTreeMap<InfoHash, BTreeSet<String>> = held
                .iter()
                .map(|(ih, s)| (**ih, s.owners.clone()))
                .collect();
            ledger.writing_all(&written);
            (shards, written)
        };
        self.store.save(shards).context("saving the held set")?;
        lock(&self.ledger).on_disk_all(&written);
        Ok(())
    }

    /// The next report to `gateway` on a connection that has sent `reported`: the whole held set
    /// the first time, then only what changed, with the transfers of the shards being fetched
    /// for it (held ones are in the held set; listing their peers too cost a lookup per held
    /// shard on every change).
    pub fn report(&self, gateway: &str, reported: &mut Reported) -> Report {
        let (held, fetching, capacity, used) = {
            let ledger = lock(&self.ledger);
            (
                ledger.held_for(gateway).into_iter().collect(),
                ledger.fetching_for(gateway),
                ledger.capacity(),
                ledger.used(),
            )
        };
        let change = reported.next(held);
        Report {
            full: change.full,
            held: change.held,
            gone: change.gone,
            capacity,
            used,
            free: self.store.filesystem_free().unwrap_or(0),
            transfers: fetching
                .iter()
                .flat_map(|ih| self.engine.transfers(ih))
                .collect(),
        }
    }

    pub(crate) fn set_gateway_state(&self, name: &str, state: &str, error: Option<String>) {
        let mut status = lock(&self.status);
        if let Some(g) = status.gateways.iter_mut().find(|g| g.name == name) {
            if g.state != state {
                g.since = unix_now();
            }
            if state == "connected" {
                g.connects += 1;
            }
            g.state = state.to_owned();
            if error.is_some() {
                g.last_error = error;
            }
        }
    }

    /// Whether a shard is in the session, complete and served to peers.
    pub fn seeding(&self, ih: &InfoHash) -> bool {
        self.engine.seeding(ih)
    }

    /// Shard data files open now, and the most that may be (see `files.rs`).
    pub fn shard_files(&self) -> (usize, usize) {
        (
            self.engine.open_shard_files(),
            self.engine.shard_file_budget(),
        )
    }

    /// Per-peer statistics of one shard, as reports carry them.
    pub fn transfers(&self, ih: &InfoHash) -> Vec<raidtorrent_proto::Transfer> {
        self.engine.transfers(ih)
    }

    pub fn snapshot_status(&self) -> Status {
        let (shards, quota, used) = {
            let ledger = lock(&self.ledger);
            let shards = ledger
                .shards()
                .map(|(ih, s)| ShardStatus {
                    info_hash: ih.to_hex(),
                    length: s.length,
                    state: match s.state {
                        ShardState::Held => "held".into(),
                        ShardState::Fetching { .. } => "fetching".into(),
                        ShardState::Parked => "parked".into(),
                    },
                    owners: s.owners.iter().cloned().collect(),
                })
                .collect();
            (shards, ledger.capacity(), ledger.used())
        };
        let mut status = lock(&self.status).clone();
        status.updated_at = unix_now();
        status.shards = shards;
        status.quota = quota;
        status.used = used;
        status
    }
}
