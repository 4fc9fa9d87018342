//! The running service: HTTP and UDP servers, the expiry sweeper and the records writer, all
//! started from already-bound sockets and stopped in order.
//!
//! Shutdown order: stop accepting (servers finish the requests in hand), stop the sweeper, then
//! stop the recorder, which drains its queue and writes a last batch, then close the database.
//! Every task and UDP worker thread is started here and awaited in [`Service::shutdown`], so
//! nothing outlives it. UDP workers are OS threads (one per core) on clones of the socket.

pub mod http;
pub mod udp;

use crate::config::Config;
use crate::net::{self, Gate, Tls};
use crate::registry::records::{recorder, RecorderHandle};
use crate::registry::{Registry, RegistryError};
use crate::tracker::Tracker;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown waits for open HTTP connections before closing them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds a TCP listener with a deep accept queue, so a burst of connections (a node starting
/// with thousands of torrents) waits in the kernel instead of being refused.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Binds the UDP socket.
pub async fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(addr).await
}

/// Sockets the service serves on; `None` turns a front off.
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub udp: Option<UdpSocket>,
    /// TLS on the HTTP listener (in a cloud, on the control listener and object API too).
    pub tls: Option<Tls>,
}

/// A running tracker.
pub struct Service {
    pub http_addr: Option<SocketAddr>,
    pub udp_addr: Option<SocketAddr>,
    tracker: Arc<Tracker>,
    stop_servers: watch::Sender<bool>,
    stop_recorder: watch::Sender<bool>,
    servers: Vec<(&'static str, JoinHandle<()>)>,
    udp_stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    recorder_task: JoinHandle<()>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Service {
    /// Starts every task. `config` must have passed [`Config::validate`].
    pub async fn start(
        config: &Config,
        registry: Registry,
        listeners: Listeners,
    ) -> Result<Self, RegistryError> {
        let (rec, handle) = recorder(
            registry.clone(),
            config.records.channel_capacity,
            Duration::from_millis(config.records.flush_interval_ms),
        )
        .await?;
        let (stop_recorder, rec_rx) = watch::channel(false);
        let recorder_task = tokio::spawn(rec.run(stopped(rec_rx)));
        let tracker = Arc::new(
            Tracker::new(registry, handle, config.announce.clone(), config.open)
                .with_scoring(config.scoring.clone()),
        );
        let (stop_servers, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();
        let mut http_addr = None;
        if let Some(listener) = listeners.http {
            http_addr = Some(listener.local_addr().map_err(sqlx::Error::Io)?);
            let routes = http::routes(tracker.clone(), config.admin_token.clone());
            let limits = config.limits.tracker_http();
            let server = net::serve(
                listener,
                warp::service(routes),
                limits,
                Gate::new(limits.caps),
                listeners.tls.clone(),
                stopped(stop_rx.clone()),
            );
            servers.push(("http", tokio::spawn(server)));
        }
        let mut udp_addr = None;
        let udp_stop = Arc::new(AtomicBool::new(false));
        let mut udp_threads = Vec::new();
        if let Some(socket) = listeners.udp {
            udp_addr = Some(socket.local_addr().map_err(sqlx::Error::Io)?);
            let socket = socket.into_std().map_err(sqlx::Error::Io)?;
            socket.set_nonblocking(false).map_err(sqlx::Error::Io)?;
            let ids = Arc::new(udp::ConnectionIds::random());
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            for i in 0..workers {
                let (t, ids, stop) = (tracker.clone(), ids.clone(), udp_stop.clone());
                let socket = socket.try_clone().map_err(sqlx::Error::Io)?;
                let private = !config.open;
                let thread = std::thread::Builder::new()
                    .name(format!("udp-{i}"))
                    .spawn(move || udp::worker(t, ids, private, socket, stop))
                    .map_err(sqlx::Error::Io)?;
                udp_threads.push(thread);
            }
        }
        let sweep_every = Duration::from_secs(config.announce.sweep_interval_secs.into());
        servers.push((
            "sweeper",
            tokio::spawn(sweeper(tracker.clone(), sweep_every, stop_rx)),
        ));
        tracing::info!(?http_addr, ?udp_addr, open = config.open, "tracker serving");
        Ok(Service {
            http_addr,
            udp_addr,
            tracker,
            stop_servers,
            stop_recorder,
            servers,
            udp_stop,
            udp_threads,
            recorder_task,
        })
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    pub fn recorder(&self) -> &RecorderHandle {
        self.tracker.recorder()
    }

    /// Stops everything in order and writes the last records.
    pub async fn shutdown(self) {
        let _ = self.stop_servers.send(true);
        self.udp_stop.store(true, Ordering::Relaxed);
        let threads = self.udp_threads;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        if joined.await.is_err() {
            tracing::error!("a UDP worker panicked");
        }
        for (name, mut task) in self.servers {
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(task = name, "did not stop in time; closing it");
                task.abort();
            }
        }
        let _ = self.stop_recorder.send(true);
        if let Err(e) = self.recorder_task.await {
            tracing::error!(error = %e, "records writer failed");
        }
        let dropped = self.tracker.recorder().dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "observations dropped because the writer fell behind"
            );
        }
        self.tracker.registry().close().await;
        tracing::info!("tracker stopped");
    }

    /// Serves until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

async fn sweeper(t: Arc<Tracker>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let removed = t.swarms().sweep(t.now());
                if removed > 0 {
                    tracing::debug!(removed, "expired peers removed");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
