//! `raidtorrent-peer run` starts a node; `raidtorrent-peer status` shows what a running (or stopped)
//! node holds and how its gateways are. `put`, `get`, `ls`, `rm` and `stat` use a raidtorrent
//! cloud as a client (BEP RT-0004, `raidtorrent_peer::client`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raidtorrent_peer::client::cli::ClientCommand;
use raidtorrent_peer::config::{parse_gateway_flag, Config, GatewayConfig, Limits};
use raidtorrent_peer::size::ByteSize;
use raidtorrent_peer::status::Status;
use raidtorrent_peer::RunningNode;

#[derive(Parser)]
#[command(
    version,
    about = "A raidtorrent node: donate disk space to a raidtorrent cloud, or store and read objects in one"
)]
struct Cli {
    /// Log lines as text for people, or as one JSON object a line for log shippers.
    #[arg(
        long,
        global = true,
        env = "RT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node until Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Print what the node in a data directory holds, its space and gateways, and recent directives.
    Status {
        /// The node's data directory.
        #[arg(long, env = "RT_DATA_DIR")]
        data_dir: PathBuf,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML config file; flags override its fields.
    #[arg(long, env = "RT_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for shards, metainfo, the held set and the status file.
    #[arg(long, env = "RT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Disk space to donate, e.g. 10GiB.
    #[arg(long, env = "RT_QUOTA")]
    quota: Option<ByteSize>,
    /// Location label, e.g. eu-west/paris.
    #[arg(long, env = "RT_ZONE")]
    zone: Option<String>,
    /// Address of the BitTorrent data listener (port 0: any free port).
    #[arg(long, env = "RT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Gateway to join, NODE_ID:PASSKEY@HOST:PORT; repeat (or comma-separate) for several.
    #[arg(
        long = "gateway",
        env = "RT_GATEWAYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    gateways: Vec<String>,
    /// The gateways given with --gateway share one database: hold copies for them as one cloud
    /// of this name (any of them is told of every copy, and may drop it).
    #[arg(long, env = "RT_CLOUD")]
    cloud: Option<String>,
    /// The certificate (PEM) of the gateways given with --gateway, when they serve TLS: the node
    /// then accepts only that certificate's key.
    #[arg(long, env = "RT_GATEWAY_CERT")]
    gateway_cert: Option<PathBuf>,
    /// Upload limit in bytes per second.
    #[arg(long, env = "RT_UPLOAD_BPS")]
    upload_bps: Option<u32>,
    /// Download limit in bytes per second.
    #[arg(long, env = "RT_DOWNLOAD_BPS")]
    download_bps: Option<u32>,
    /// Announce every shard held to its tracker (for gateways that do not name holders from
    /// the nodes' reports).
    #[arg(long, env = "RT_ANNOUNCE_HELD")]
    announce_held: bool,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config {
                data_dir: self
                    .data_dir
                    .clone()
                    .context("--data-dir (or a --config) is required")?,
                quota: self.quota.context("--quota (or a --config) is required")?,
                zone: String::new(),
                listen: "0.0.0.0:6881".parse().expect("a socket address"),
                gateways: Vec::new(),
                limits: Limits::default(),
                announce_held: false,
            },
        };
        config.announce_held |= self.announce_held;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(q) = self.quota {
            config.quota = q;
        }
        if let Some(z) = &self.zone {
            config.zone = z.clone();
        }
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if !self.gateways.is_empty() {
            config.gateways = self
                .gateways
                .iter()
                .map(|g| parse_gateway_flag(g))
                .collect::<Result<Vec<GatewayConfig>, _>>()?;
            for g in &mut config.gateways {
                g.tls_cert.clone_from(&self.gateway_cert);
                g.cloud.clone_from(&self.cloud);
            }
        }
        if self.upload_bps.is_some() {
            config.limits.upload_bps = self.upload_bps;
        }
        if self.download_bps.is_some() {
            config.limits.download_bps = self.download_bps;
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // A client command's stderr is for its progress and errors; the node's for its log.
    let default_filter = match cli.command {
        Command::Client(_) => "warn,librqbit=error",
        _ => "info,librqbit=warn",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match cli.command {
        Command::Run(args) => {
            let config = args.config()?;
            if args.print_config {
                print!("{}", config.to_toml());
                return Ok(ExitCode::SUCCESS);
            }
            // Before the runtime: pointing the process's trust store at the pinned gateway
            // certificates needs a process without other threads.
            if let Some(bundle) = raidtorrent_peer::tls::trust_pinned(&config)? {
                tracing::info!(bundle = %bundle.display(), "HTTPS trusts the pinned gateways");
            }
            match raidtorrent_peer::fds::raise_nofile() {
                Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit"),
                Err(e) => tracing::warn!("raising the open-file limit: {e}"),
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let node = RunningNode::start(config).await?;
                tracing::info!(listen = %node.listen_addr(), "node running");
                node.run_until_signal().await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { data_dir } => {
            let status = Status::read(&data_dir.join("status.json"))
                .with_context(|| format!("no node status in {}", data_dir.display()))?;
            print!("{}", status.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(command) => Ok(raidtorrent_peer::client::cli::run(command)),
    }
}
