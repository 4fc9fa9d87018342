//! One running gateway: the tracker service, the control listener, the gateway's session, the
//! object path with its workers and the object API, started together and stopped in order. The
//! only place a gateway is assembled: `serve`, `devnet`, the test harnesses and the benchmarks all
//! start a [`Cloud`].

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiAuth};
use crate::config::Config;
use crate::control::{ControlConfig, ControlHub};
use crate::gateway::{
    open_master_key, AccessKeys, Gateway, GatewayConfig, Meta, OwnNode, PeerSession,
};
use crate::net::{self, Gate, HttpLimits, Tls};
use crate::ops::Ops;
use crate::registry::Registry;
use crate::server::{bind_tcp, bind_udp, Listeners, Service};

/// Name under which the gateway registers its own seeder as a node.
pub const GATEWAY_NODE_NAME: &str = "gateway";

/// What a cloud runs with besides the tracker's own configuration: made from the configuration
/// ([`CloudSettings::from_config`]), then adjusted by whoever starts it.
#[derive(Clone)]
pub struct CloudSettings {
    /// Address the gateway's BitTorrent session listens on (its port is chosen at start).
    pub swarm_ip: IpAddr,
    pub control: ControlConfig,
    /// The object path; `tracker_url` is filled in from the HTTP tracker's address when empty.
    pub gateway: GatewayConfig,
    /// Who may call the object API.
    pub auth: ApiAuth,
    /// Connection caps and timeouts of the object API (and of the S3 API).
    pub api_limits: HttpLimits,
    /// Domain for virtual-host style S3 requests.
    pub s3_domain: Option<String>,
}

impl CloudSettings {
    pub fn from_config(config: &Config) -> Self {
        let objects = &config.objects;
        CloudSettings {
            swarm_ip: objects.swarm_ip,
            control: ControlConfig {
                handshakes: config.limits.control(),
                ..ControlConfig::default()
            },
            gateway: objects.gateway_config(&config.scoring),
            auth: objects.auth(),
            api_limits: config.limits.api_http(),
            s3_domain: Some(objects.s3_domain.clone()).filter(|d| !d.is_empty()),
        }
    }
}

/// The sockets a cloud serves on, bound by its caller (tests bind port 0).
pub struct CloudListeners {
    /// The HTTP and UDP tracker.
    pub tracker: Listeners,
    /// Where nodes dial in.
    pub control: TcpListener,
    /// The object API.
    pub api: TcpListener,
    /// The S3 API, if served.
    pub s3: Option<TcpListener>,
}

impl CloudListeners {
    /// Binds the tracker's addresses the configuration names (for a tracker without objects);
    /// `tls` is what [`crate::config::Config::tls_identity`] gave.
    pub async fn bind_tracker(config: &Config, tls: Option<Tls>) -> anyhow::Result<Listeners> {
        let http = match config.http_addr()? {
            Some(a) => Some(bind_tcp(a).with_context(|| format!("binding HTTP on {a}"))?),
            None => None,
        };
        let udp = match config.udp_addr()? {
            Some(a) => Some(
                bind_udp(a)
                    .await
                    .with_context(|| format!("binding UDP on {a}"))?,
            ),
            None => None,
        };
        Ok(Listeners { http, udp, tls })
    }

    /// Binds every address the configuration names; with `tls`, every TCP listener speaks it.
    pub async fn bind(config: &Config, tls: Option<Tls>) -> anyhow::Result<Self> {
        let tracker = Self::bind_tracker(config, tls).await?;
        let objects = &config.objects;
        let control = objects.control_addr().map_err(anyhow::Error::msg)?;
        let api = objects
            .api_addr()
            .map_err(anyhow::Error::msg)?
            .context("objects.api_listen is off")?;
        Ok(CloudListeners {
            tracker,
            control: bind_tcp(control)
                .with_context(|| format!("binding the control listener on {control}"))?,
            api: bind_tcp(api).with_context(|| format!("binding the object API on {api}"))?,
            s3: match objects.s3_addr().map_err(anyhow::Error::msg)? {
                Some(a) => Some(bind_tcp(a).with_context(|| format!("binding the S3 API on {a}"))?),
                None => None,
            },
        })
    }
}

/// A started cloud gateway.
pub struct Cloud {
    pub service: Service,
    pub hub: ControlHub,
    pub gateway: Gateway,
    pub control_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// The S3 API's address, if served.
    pub s3_addr: Option<SocketAddr>,
    session: PeerSession,
    /// Stops the object API first, then everything else.
    stop_api: watch::Sender<bool>,
    api: Option<JoinHandle<()>>,
    s3: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Cloud {
    /// Starts everything on already-bound listeners.
    pub async fn start(
        config: &Config,
        registry: Registry,
        listeners: CloudListeners,
        mut settings: CloudSettings,
    ) -> anyhow::Result<Self> {
        // First: a missing or wrong key must stop the gateway before it serves anything.
        let master = open_master_key(&settings.gateway.data_dir, registry.db()).await?;
        let tls = listeners.tracker.tls.clone();
        let service = Service::start(config, registry.clone(), listeners.tracker).await?;
        service.tracker().serve_access_keys(AccessKeys::new(
            Meta::new(registry.db().clone()),
            master.clone(),
        ));
        if settings.gateway.tracker_url.is_empty() {
            let http = service
                .http_addr
                .context("the object path needs the HTTP tracker")?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            settings.gateway.tracker_url = format!("{scheme}://{http}");
        }
        let control_addr = listeners.control.local_addr()?;
        let api_addr = listeners.api.local_addr()?;
        let hub = ControlHub::new(
            registry.clone(),
            service.recorder().clone(),
            settings.control,
        );
        service.tracker().answer_from_reports(hub.clone());
        let (stop, stop_rx) = watch::channel(false);
        let serving = hub.clone();
        let rx = stop_rx.clone();
        let (control, control_tls) = (listeners.control, tls.clone());
        let mut tasks = vec![(
            "control",
            tokio::spawn(async move { serving.serve(control, control_tls, stopped(rx)).await }),
        )];
        let data_dir = settings.gateway.data_dir.clone();
        let session = PeerSession::start(&data_dir.join("swarm"), settings.swarm_ip).await?;
        let own = own_node(&registry).await?;
        service.tracker().record_nothing_of(own.id);
        let gateway = Gateway::new(
            settings.gateway,
            registry.clone(),
            hub.clone(),
            session.clone(),
            master,
            own,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        tasks.extend(gateway.spawn_workers(&stop_rx));
        let ops = Ops::new(
            gateway.clone(),
            hub.clone(),
            registry.clone(),
            config.scoring.clone(),
        );
        tasks.push((
            "history",
            serve_ops(&service, ops, stopped(stop_rx.clone())),
        ));
        let (stop_api, api_rx) = watch::channel(false);
        let api = tokio::spawn(net::serve(
            listeners.api,
            warp::service(api::routes(gateway.clone(), settings.auth)),
            settings.api_limits,
            Gate::new(settings.api_limits.caps),
            tls.clone(),
            stopped(api_rx.clone()),
        ));
        let s3_addr = match &listeners.s3 {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let s3 = listeners.s3.map(|listener| {
            tokio::spawn(net::serve(
                listener,
                crate::s3::service(gateway.clone(), settings.s3_domain.clone()),
                settings.api_limits,
                Gate::new(settings.api_limits.caps),
                tls,
                stopped(api_rx),
            ))
        });
        tracing::info!(api = %api_addr, s3 = ?s3_addr, control = %control_addr, "object API serving");
        Ok(Cloud {
            service,
            hub,
            gateway,
            control_addr,
            api_addr,
            session,
            stop_api,
            api: Some(api),
            s3,
            s3_addr,
            stop,
            tasks,
        })
    }

    /// Runs until `shutdown` resolves, then stops in order.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.shutdown().await;
    }

    /// Stops taking object API requests and waits for those in flight.
    pub async fn stop_api(&mut self) {
        let _ = self.stop_api.send(true);
        for api in [self.api.take(), self.s3.take()].into_iter().flatten() {
            if let Err(e) = api.await {
                tracing::error!(task = "api", error = %e, "task failed while stopping");
            }
        }
    }

    /// Stops the object API, then the workers and the control listener, the session and the
    /// tracker, in that order.
    pub async fn shutdown(mut self) {
        self.stop_api().await;
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "task failed while stopping");
            }
        }
        self.session.stop().await;
        self.service.shutdown().await;
    }
}

/// Puts the operator view on the tracker's admin API and starts its history sampler, which runs
/// until `stop` resolves.
fn serve_ops(
    service: &Service,
    ops: Ops,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let sampler = ops
        .history()
        .clone()
        .run(ops.hub().clone(), ops.registry().clone(), stop);
    service.tracker().serve_ops(ops);
    tokio::spawn(sampler)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The gateway's own node: registered once, reused after restarts.
async fn own_node(registry: &Registry) -> anyhow::Result<OwnNode> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM nodes WHERE name = $1 AND revoked_at IS NULL ORDER BY id LIMIT 1",
    )
    .bind(GATEWAY_NODE_NAME)
    .fetch_optional(registry.reader())
    .await?;
    if let Some(token) = row.and_then(|(id,)| Some((id, registry.announce_token(id)?))) {
        return Ok(OwnNode {
            id: token.0,
            announce_token: token.1,
        });
    }
    let new = registry.create_node(GATEWAY_NODE_NAME).await?;
    Ok(OwnNode {
        id: new.node.id,
        announce_token: new.announce_token,
    })
}
