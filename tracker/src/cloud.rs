//! One running gateway: the tracker service, the control listener, the gateway's swarm session and
//! the object path, started together and stopped in order. Used by `serve`, `devnet` and tests.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use raidtorrent_codec::MasterKey;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::control::{ControlConfig, ControlHub};
use crate::gateway::{Gateway, GatewayConfig, HealthConfig, Swarm};
use crate::registry::{NodeId, Registry};
use crate::server::{Listeners, Service};

/// Name under which the gateway registers its own seeder as a node.
pub const GATEWAY_NODE_NAME: &str = "gateway";

/// What a cloud needs beyond the tracker's own configuration.
pub struct CloudSettings {
    pub data_dir: PathBuf,
    /// Address the gateway's BitTorrent session listens on (its port is chosen at start).
    pub swarm_ip: IpAddr,
    pub control: ControlConfig,
    pub gateway: GatewayConfig,
    /// How often the orphan collector runs on its own.
    pub collect_interval: Duration,
    /// Audits, repair and rebalance.
    pub health: HealthConfig,
}

/// A started cloud gateway.
pub struct Cloud {
    pub service: Service,
    pub hub: ControlHub,
    pub gateway: Gateway,
    pub swarm: Swarm,
    pub control_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Cloud {
    /// Starts everything on already-bound listeners. `settings.gateway.tracker_url` is filled in
    /// from the HTTP tracker's address when empty.
    pub async fn start(
        config: &Config,
        registry: Registry,
        listeners: Listeners,
        control: TcpListener,
        mut settings: CloudSettings,
    ) -> anyhow::Result<Self> {
        let service = Service::start(config, registry.clone(), listeners).await?;
        let control_addr = control.local_addr()?;
        if settings.gateway.tracker_url.is_empty() {
            let http = service
                .http_addr
                .context("the object path needs the HTTP tracker")?;
            settings.gateway.tracker_url = format!("http://{http}");
        }
        let hub = ControlHub::new(
            registry.clone(),
            service.recorder().clone(),
            settings.control,
        );
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let serving = hub.clone();
        let rx = stop_rx.clone();
        tasks.push((
            "control",
            tokio::spawn(async move { serving.serve(control, stopped(rx)).await }),
        ));

        let swarm = Swarm::start(&settings.data_dir.join("swarm"), settings.swarm_ip).await?;
        let master = master_key(&settings.data_dir)?;
        let self_node = own_node(&registry).await?;
        let gateway = Gateway::new(
            settings.gateway,
            registry,
            hub.clone(),
            swarm.clone(),
            master,
            self_node,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let collector = gateway.clone();
        let interval = settings.collect_interval;
        let rx = stop_rx.clone();
        tasks.push((
            "collector",
            tokio::spawn(async move { collector.run_collector(interval, stopped(rx)).await }),
        ));
        let health = gateway.clone();
        let cfg = settings.health.clone();
        let rx = stop_rx.clone();
        tasks.push((
            "health",
            tokio::spawn(async move { health.run_health(cfg, stopped(rx)).await }),
        ));
        let auditor = gateway.clone();
        let cfg = settings.health;
        tasks.push((
            "audits",
            tokio::spawn(async move { auditor.run_audits(cfg, stopped(stop_rx)).await }),
        ));
        Ok(Cloud {
            service,
            hub,
            gateway,
            swarm,
            control_addr,
            stop,
            tasks,
        })
    }

    /// Stops the workers, the control listener, the swarm session and the tracker, in that order.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "task failed while stopping");
            }
        }
        self.swarm.stop().await;
        self.service.shutdown().await;
    }
}

/// The gateway's master key, made on first start and kept in the data folder (mode 0600).
fn master_key(data_dir: &std::path::Path) -> anyhow::Result<MasterKey> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("master.key");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| anyhow::anyhow!("no system randomness for the master key"))?;
            write_private(&path, &key)?;
            key.to_vec()
        }
        Err(e) => return Err(e).context("reading the master key"),
    };
    MasterKey::new("master-1", &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The gateway's own node: registered once, reused after restarts.
async fn own_node(registry: &Registry) -> anyhow::Result<(NodeId, String)> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, passkey FROM nodes WHERE name = ? AND revoked_at IS NULL ORDER BY id LIMIT 1",
    )
    .bind(GATEWAY_NODE_NAME)
    .fetch_optional(registry.pool())
    .await?;
    if let Some(row) = row {
        return Ok(row);
    }
    let new = registry.create_node(GATEWAY_NODE_NAME).await?;
    Ok((new.node.id, new.passkey))
}
