//! `raidtorrent-tracker devnet`: a whole cloud on this machine in one command. A gateway with
//! its SQLite database, tracker, control listener and object API, and N `raidtorrent-peer`
//! node processes spread over three zones, all on loopback; it waits until every node is
//! connected, then prints commands to paste.
//!
//! Every node listens on 127.0.0.1 with a port of its own: a node's announces and control
//! connection leave from 127.0.0.1, so a node bound to 127.0.0.x would be announced at an
//! address it does not listen on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use raidtorrent_tracker::cloud::{Cloud, CloudListeners, CloudSettings};
use raidtorrent_tracker::config::{Config, ObjectConfig};
use raidtorrent_tracker::gateway::{BucketPolicy, GatewayError};
use raidtorrent_tracker::registry::control_records::NodePasskey;
use raidtorrent_tracker::registry::{NodeId, Registration, Registry};
use raidtorrent_tracker::server::{bind_tcp, Listeners};
use tokio::net::TcpListener;

/// The bucket the printed commands use.
const DEMO_BUCKET: &str = "demo";
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

#[derive(clap::Args)]
pub struct DevnetArgs {
    /// Number of nodes, spread round-robin over three zones (3 to 64).
    #[arg(long, default_value_t = 6)]
    nodes: usize,
    /// Directory for the database, node data and logs; kept after exit, and a later run on the
    /// same directory reuses its nodes and objects [default: a new directory under the system's
    /// temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address of the object API.
    #[arg(long, default_value = "127.0.0.1:9000")]
    api_listen: SocketAddr,
    /// Address of the S3 API.
    #[arg(long, default_value = "127.0.0.1:9002")]
    s3_listen: SocketAddr,
    /// The node binary [default: raidtorrent-peer beside this binary, else on PATH].
    #[arg(long, env = "RAIDTORRENT_PEER_BIN")]
    peer_bin: Option<PathBuf>,
    /// Disk space each node donates.
    #[arg(long, default_value = "4GiB")]
    quota: String,
    /// Seconds to wait for every node to connect.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
}

/// The default policy for a network of `nodes` nodes in three zones: one shard per node, with
/// enough parity that losing any one zone leaves k shards (so GETs survive a zone outage).
pub fn policy_for(nodes: usize) -> BucketPolicy {
    let nodes = nodes.clamp(3, 256);
    let k = nodes * 2 / 3;
    BucketPolicy {
        k: k as u16,
        m: (nodes - k) as u16,
        copies: 1,
        high_share: 0.0,
        inline_max: 4096,
    }
}

struct NodeProcess {
    id: NodeId,
    name: String,
    zone: &'static str,
    log: PathBuf,
    child: Child,
}

pub async fn run(args: DevnetArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    if !(3..=64).contains(&args.nodes) {
        bail!("--nodes must be between 3 and 64");
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("raidtorrent-devnet-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let peer_bin = peer_binary(args.peer_bin.as_deref())?;

    let config = Config {
        http_listen: "127.0.0.1:0".into(),
        admin_token: Some(admin_token()?),
        udp_listen: "off".into(),
        db: dir.join("gateway.db"),
        objects: ObjectConfig {
            api_listen: args.api_listen.to_string(),
            open_api: true,
            control_listen: "127.0.0.1:0".into(),
            swarm_ip: "127.0.0.1".parse()?,
            data_dir: dir.join("gateway"),
            default_policy: policy_for(args.nodes),
            ..ObjectConfig::default()
        },
        ..Config::default()
    };
    config.validate()?;
    let registry = Registry::open(&config.db).await.with_context(|| {
        format!(
            "opening {}",
            raidtorrent_tracker::registry::db::shown(&config.db)
        )
    })?;
    let listeners = CloudListeners {
        tracker: Listeners {
            http: Some(bind_tcp("127.0.0.1:0".parse()?)?),
            udp: None,
            tls: None,
        },
        control: TcpListener::bind("127.0.0.1:0").await?,
        api: api_listener(args.api_listen).await?,
        s3: Some(api_listener(args.s3_listen).await?),
    };
    let settings = CloudSettings::from_config(&config);
    let mut cloud = Cloud::start(&config, registry.clone(), listeners, settings).await?;

    let mut nodes = Vec::with_capacity(args.nodes);
    let started = async {
        for i in 0..args.nodes {
            nodes.push(start_node(&registry, &cloud, &peer_bin, &dir, &args.quota, i).await?);
        }
        wait_connected(
            &cloud,
            &mut nodes,
            Duration::from_secs(args.connect_timeout),
        )
        .await
    };
    if let Err(e) = started.await {
        stop_nodes(&mut nodes).await;
        cloud.shutdown().await;
        return Err(e);
    }

    match cloud.gateway.create_bucket(DEMO_BUCKET, None).await {
        Ok(_) | Err(GatewayError::BucketExists(_)) => {}
        Err(e) => bail!("creating the {DEMO_BUCKET} bucket: {e}"),
    }
    let admin = config.admin_token.as_deref().unwrap_or_default();
    let s3_key = devnet_s3_key(&cloud, &dir).await?;
    print_banner(&dir, cloud.api_addr, &cloud, &nodes, args.nodes, admin);
    print_s3_banner(&cloud, &s3_key);
    println!("Ctrl-C stops the gateway and the nodes.");
    shutdown.await;

    println!("stopping the devnet (data kept in {})", dir.display());
    cloud.stop_api().await;
    stop_nodes(&mut nodes).await;
    cloud.shutdown().await;
    Ok(())
}

/// The devnet's S3 access key (every bucket): the one kept in `<dir>/s3-credentials` while it is
/// still active, else a new one written there (mode 0600).
async fn devnet_s3_key(cloud: &Cloud, dir: &Path) -> Result<(String, String)> {
    let file = dir.join("s3-credentials");
    let keys = cloud.gateway.access_keys();
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Some((id, secret)) = text.trim().split_once(':') {
            if keys.active(id).await?.is_some_and(|k| k.secret == secret) {
                return Ok((id.to_owned(), secret.to_owned()));
            }
        }
    }
    let (key, secret) = keys
        .create(
            "devnet",
            &[raidtorrent_tracker::gateway::ALL_BUCKETS.to_owned()],
            None,
        )
        .await?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| writeln!(f, "{}:{secret}", key.access_key))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok((key.access_key, secret))
}

fn print_s3_banner(cloud: &Cloud, (id, secret): &(String, String)) {
    let Some(s3) = cloud.s3_addr else {
        return;
    };
    let url = format!("http://{s3}");
    println!("S3 API  {url}   access key {id}   secret {secret}");
    println!("  export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1");
    println!("  aws --endpoint-url {url} s3 mb s3://photos");
    println!("  aws --endpoint-url {url} s3 cp /tmp/rt-sample.bin s3://photos/sample.bin");
    println!("  aws --endpoint-url {url} s3 ls s3://photos/");
    println!("  aws --endpoint-url {url} s3 cp s3://photos/sample.bin /tmp/rt-s3.bin");
    println!(
        "  rclone --s3-provider Other --s3-endpoint {url} --s3-access-key-id {id} \\\n      --s3-secret-access-key {secret} lsd :s3:"
    );
    println!();
}

/// The object API's listener: the address asked for, else a free port on its IP.
async fn api_listener(addr: SocketAddr) -> Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "object API port taken; using a free one");
            Ok(TcpListener::bind((addr.ip(), 0)).await?)
        }
    }
}

/// The node binary: the flag, else beside this executable (where cargo builds it), else PATH.
fn peer_binary(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    let beside = std::env::current_exe()?.with_file_name("raidtorrent-peer");
    if beside.exists() {
        return Ok(beside);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("raidtorrent-peer"))
                .find(|p| p.exists())
        })
        .unwrap_or_default();
    on_path.context(
        "raidtorrent-peer not found beside this binary or on PATH: build it with \
         `cargo build --bin raidtorrent-peer` (scripts/devnet.sh does), or pass --peer-bin",
    )
}

/// Registers node `i` (or finds it, when the directory is reused) and starts its process.
async fn start_node(
    registry: &Registry,
    cloud: &Cloud,
    bin: &Path,
    dir: &Path,
    quota: &str,
    i: usize,
) -> Result<NodeProcess> {
    let name = format!("devnet-node-{}", i + 1);
    let existing = registry
        .nodes()
        .await?
        .into_iter()
        .find(|n| n.name == name && n.revoked_at.is_none());
    let zone = ZONES[i % ZONES.len()];
    let facts = Registration {
        zone: Some(zone.into()),
        capacity_limit: None,
    };
    let (id, passkey) = match existing {
        Some(n) => match registry.passkey_of(n.id).await? {
            NodePasskey::Valid(passkey, _) => {
                // A folder from before zones were registered gets them now.
                registry.set_registration(n.id, &facts).await?;
                (n.id, passkey)
            }
            other => bail!("node {name} cannot be restarted: {other:?}"),
        },
        None => {
            let new = registry.register_node(&name, &facts).await?;
            (new.node.id, new.passkey)
        }
    };
    let node_dir = dir.join(&name);
    std::fs::create_dir_all(&node_dir)?;
    let log = node_dir.join("node.log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "run",
        "--quota",
        quota,
        "--listen",
        "127.0.0.1:0",
        "--zone",
        zone,
    ])
    .arg("--data-dir")
    .arg(&node_dir)
    .arg("--gateway")
    .arg(format!("{id}:{passkey}@{}", cloud.control_addr))
    .env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info,librqbit=warn".into()),
    )
    .stdin(Stdio::null())
    .stdout(out.try_clone()?)
    .stderr(out);
    die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(NodeProcess {
        id,
        name,
        zone,
        log,
        child,
    })
}

/// On Linux, a node gets SIGTERM if the devnet dies without stopping it.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Waits until the control hub sees every node, failing early (with the log's tail) if a node
/// process exits.
async fn wait_connected(cloud: &Cloud, nodes: &mut [NodeProcess], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for n in nodes.iter_mut() {
            if let Some(status) = n.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before connecting; its log ends:\n{}",
                    n.name,
                    tail(&n.log)
                );
            }
            if cloud.hub.node(n.id).is_none() {
                waiting.push(n.name.as_str());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("not connected after {timeout:?}: {}", waiting.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM to every node, then up to 10 s for them to finish, then SIGKILL.
async fn stop_nodes(nodes: &mut [NodeProcess]) {
    for n in nodes.iter() {
        if let Ok(pid) = i32::try_from(n.child.id()) {
            // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        while matches!(n.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if matches!(n.child.try_wait(), Ok(None)) {
            tracing::warn!(node = %n.name, "did not stop on SIGTERM; killing it");
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

/// A fresh admin token for this run: the node reports name every node's addresses.
fn admin_token() -> Result<String> {
    let mut raw = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| anyhow::anyhow!("no system randomness for the admin token"))?;
    Ok(hex::encode(raw))
}

fn print_banner(
    dir: &Path,
    api: SocketAddr,
    cloud: &Cloud,
    nodes: &[NodeProcess],
    n: usize,
    admin: &str,
) {
    let p = policy_for(n);
    let tracker = cloud
        .service
        .http_addr
        .map_or_else(|| "off".to_owned(), |a| a.to_string());
    let url = format!("http://{api}");
    println!();
    println!(
        "raidtorrent devnet is up: a gateway and {n} nodes in 3 zones, data in {}",
        dir.display()
    );
    println!();
    println!("  object API  {url}   (open, no API key: a local devnet only)");
    println!("  tracker     http://{tracker}");
    println!("  dashboard   http://{tracker}/admin/dashboard   (any user name; password: the admin token)");
    println!("  admin token {admin}");
    println!("  control     {}", cloud.control_addr);
    for node in nodes {
        println!(
            "  {:<15} id {:<3} {}   pid {:<7} log: {}",
            node.name,
            node.id,
            node.zone,
            node.child.id(),
            node.log.display()
        );
    }
    println!(
        "  bucket '{DEMO_BUCKET}': k={} m={} copies={} (objects up to {} bytes stay inline)",
        p.k, p.m, p.copies, p.inline_max
    );
    println!();
    println!("Paste:");
    println!("  head -c 20M /dev/urandom > /tmp/rt-sample.bin");
    println!("  curl -fsS -T /tmp/rt-sample.bin {url}/{DEMO_BUCKET}/sample.bin");
    println!("  curl -fsS {url}/{DEMO_BUCKET}/sample.bin -o /tmp/rt-copy.bin && cmp /tmp/rt-sample.bin /tmp/rt-copy.bin && echo identical");
    println!("  curl -fsS -r 1000-1999 {url}/{DEMO_BUCKET}/sample.bin | wc -c");
    println!("  curl -fsSI {url}/{DEMO_BUCKET}/sample.bin");
    println!("  curl -fsS '{url}/{DEMO_BUCKET}?prefix=sample&limit=10'");
    println!("  curl -fsS -X PUT {url}/photos -d '{{\"k\":2,\"m\":1,\"copies\":2,\"high_share\":0.0,\"inline_max\":4096}}'");
    println!("  curl -fsS -X DELETE {url}/{DEMO_BUCKET}/sample.bin");
    println!("  curl -fsS -H 'Authorization: Bearer {admin}' http://{tracker}/admin/nodes");
    println!("  curl -fsS -H 'Authorization: Bearer {admin}' http://{tracker}/metrics");
    println!("  RAIDTORRENT_ADMIN_TOKEN={admin} raidtorrent-tracker shards {DEMO_BUCKET}/sample.bin --out /tmp/rt-shards --gateway http://{tracker}");
    println!();
    println!("Encrypt on your own machine and seed the shards to the nodes yourself (RT-0004):");
    println!("  export RT_GATEWAY={url}");
    println!(
        "  raidtorrent-peer put /tmp/rt-sample.bin {DEMO_BUCKET}/mine.bin   # prints a capability"
    );
    println!(
        "  raidtorrent-peer get {DEMO_BUCKET}/mine.bin -o /tmp/rt-mine.bin  # or: get <capability>"
    );
    println!("  raidtorrent-peer stat {DEMO_BUCKET}/mine.bin");
    println!();
}
