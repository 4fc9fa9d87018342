//! `raidtorrent-tracker`: serve the tracker, manage the node registry, or run a whole cloud on
//! this machine (`devnet`).

mod devnet;
mod shards;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use raidtorrent_tracker::cloud::{Cloud, CloudListeners, CloudSettings};
use raidtorrent_tracker::config::{
    parse_limit, parse_size, read_secret, read_secrets, Config, DEFAULT_TOML,
};
use raidtorrent_tracker::net::{Tls, TlsIdentity};
use raidtorrent_tracker::registry::{unix_now, Registry};
use raidtorrent_tracker::server::Service;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "raidtorrent gateway tracker: private BitTorrent swarms with node reliability records"
)]
struct Cli {
    /// Print the default configuration, with comments, and exit.
    #[arg(long, global = true)]
    print_config: bool,
    /// Log lines as text for people, or as one JSON object a line for log shippers.
    #[arg(
        long,
        global = true,
        env = "RAIDTORRENT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Export an object's shards from a running gateway as `.torrent` files and magnet links
    /// for stock BitTorrent clients (a read-only inspector credential inside).
    Shards(shards::ShardsArgs),
    /// Run the tracker until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Run a whole cloud on this machine: a gateway and N node processes in three zones on
    /// loopback, with commands to paste once every node is connected.
    Devnet(devnet::DevnetArgs),
    /// Manage registered nodes in the database directly (works while the tracker is stopped;
    /// a running tracker learns of changes made here only after a restart, so prefer the
    /// admin API then).
    Node {
        /// SQLite database file, or a postgres:// URL.
        #[arg(
            long,
            global = true,
            env = "RAIDTORRENT_DB",
            default_value = "raidtorrent-tracker.db"
        )]
        db: PathBuf,
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Manage S3 access keys in the database (a running gateway sees changes at once: it reads
    /// the keys on every request). Secrets are sealed under the gateway's master key.
    S3Key {
        /// SQLite database file, or a postgres:// URL.
        #[arg(
            long,
            global = true,
            env = "RAIDTORRENT_DB",
            default_value = "raidtorrent-tracker.db"
        )]
        db: PathBuf,
        /// The gateway's data folder (objects.data_dir), which holds its master key.
        #[arg(
            long,
            global = true,
            env = "RAIDTORRENT_DATA_DIR",
            default_value = "raidtorrent-gateway"
        )]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: S3KeyAction,
    },
}

#[derive(Subcommand)]
enum S3KeyAction {
    /// Make a key and print its id and secret (JSON); the secret is shown this once.
    Add {
        /// Whose key it is, for operators.
        owner: String,
        /// Buckets the key may use, comma-separated; * for every bucket.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        buckets: Vec<String>,
        /// Most bytes the key's objects may take: plain bytes or with a unit (500MB, 10GiB);
        /// no limit without it.
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
    },
    /// List keys (never their secrets), revoked ones with when, each with its quota and the
    /// bytes its objects take (JSON).
    List,
    /// Revoke a key: requests it signs are refused from now on.
    Revoke { access_key: String },
    /// Set a key's quota, from its next write on: a size (500MB, 10GiB, 1048576) or none.
    Quota {
        access_key: String,
        #[arg(value_name = "SIZE|none", value_parser = limit_arg)]
        quota: Limit,
    },
}

/// A quota as the `quota` command takes it: a size, or none for no limit (a type of its own, as
/// clap would take an `Option` for an argument that may be left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limit(Option<u64>);

fn limit_arg(text: &str) -> Result<Limit, raidtorrent_tracker::config::SizeError> {
    parse_limit(text).map(Limit)
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see --print-config).
    #[arg(long, short, env = "RAIDTORRENT_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP listen address, or "off" (overrides http_listen).
    #[arg(long, env = "RAIDTORRENT_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// UDP listen address, or "off" (overrides udp_listen).
    #[arg(long, env = "RAIDTORRENT_UDP_LISTEN")]
    udp_listen: Option<String>,
    /// SQLite database file, or a postgres:// URL (overrides db).
    #[arg(long, env = "RAIDTORRENT_DB")]
    db: Option<PathBuf>,
    /// Bearer token for the admin API (overrides admin_token).
    #[arg(long, env = "RAIDTORRENT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// File holding the admin token, instead of --admin-token (which others see in `ps`).
    #[arg(long, env = "RAIDTORRENT_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Serve announces without a passkey (a public tracker; overrides open).
    #[arg(long, env = "RAIDTORRENT_OPEN")]
    open: bool,
    /// Object API address, or "off" (overrides objects.api_listen).
    #[arg(long, env = "RAIDTORRENT_API_LISTEN")]
    api_listen: Option<String>,
    /// Object API keys, comma-separated (overrides objects.api_keys).
    #[arg(
        long = "api-key",
        env = "RAIDTORRENT_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// File of object API keys, one a line, instead of --api-key (which others see in `ps`).
    #[arg(long, env = "RAIDTORRENT_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Control listener address for nodes (overrides objects.control_listen).
    #[arg(long, env = "RAIDTORRENT_CONTROL_LISTEN")]
    control_listen: Option<String>,
    /// Directory for staged shards and the master key (overrides objects.data_dir).
    #[arg(long, env = "RAIDTORRENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Carry no object bytes: refuse object PUT/GET and S3 uploads, copies and reads, so clients
    /// store with `raidtorrent-peer put/get` (objects.data_path = false).
    #[arg(long, env = "RAIDTORRENT_NO_DATA_PATH")]
    no_data_path: bool,
    /// Serve the control listener, the HTTP tracker and the object API over TLS (tls.enabled).
    #[arg(long, env = "RAIDTORRENT_TLS")]
    tls: bool,
    /// PEM certificate chain for TLS (overrides tls.cert_file); needs --tls-key.
    #[arg(long, env = "RAIDTORRENT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (overrides tls.key_file); needs --tls-cert.
    #[arg(long, env = "RAIDTORRENT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum NodeAction {
    /// Register a node and print its id, passkey (give it to the node) and announce token.
    Add {
        /// A name for operators.
        name: String,
        /// The node's zone: placement trusts this, not the node's claim (a node claiming
        /// another zone is refused). Without it the node counts as in no zone.
        #[arg(long)]
        zone: Option<String>,
        /// Most bytes the node may offer; a larger claim is cut to it.
        #[arg(long)]
        capacity_limit: Option<u64>,
    },
    /// Revoke a node's passkey.
    Revoke { id: i64 },
    /// List nodes with their reliability figures (JSON).
    List,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.print_config {
        print!("{DEFAULT_TOML}");
        return Ok(());
    }
    let Some(command) = cli.command else {
        anyhow::bail!("no command given; try `raidtorrent-tracker --help`");
    };
    // Logs go to stderr: stdout carries the JSON that `node` commands print.
    init_logs(cli.log_format);
    // Before the runtime: this may set the process's trust store, which only a process without
    // other threads may do.
    let serving = match &command {
        Command::Serve(args) => Some(serve_config(args)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            Command::Serve(_) => {
                let (config, tls) = serving.expect("prepared above");
                serve(config, tls).await
            }
            Command::Devnet(args) => devnet::run(args, shutdown_signal()).await,
            Command::Shards(args) => shards::run(args).await,
            Command::Node { db, action } => node(db, action).await,
            Command::S3Key {
                db,
                data_dir,
                action,
            } => s3_key(db, data_dir, action).await,
        }
    })
}

/// Logs to stderr, as text or JSON lines, filtered by `RUST_LOG` (default `info`).
fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// The configuration `serve` runs with, and its TLS (the gateway's own certificate made the only
/// one its BitTorrent session trusts for announces).
fn serve_config(args: &ServeArgs) -> Result<(Config, Option<Tls>)> {
    let config = read_config(args)?;
    let Some(identity) = config.tls_identity()? else {
        return Ok((config, None));
    };
    trust_only(&identity)?;
    tracing::info!(
        cert = %identity.cert_file().display(),
        sha256 = %identity.fingerprint(),
        "TLS on the control listener, the tracker and the object API"
    );
    Ok((config, Some(identity.acceptor()?)))
}

/// Makes the gateway's own certificate chain the trust store of HTTPS requests this process makes
/// (its session's announces to its own tracker), through `SSL_CERT_FILE`. Called before any
/// other thread exists.
fn trust_only(identity: &TlsIdentity) -> Result<()> {
    let file = std::path::absolute(identity.cert_file())?;
    std::env::set_var("SSL_CERT_FILE", file);
    std::env::remove_var("SSL_CERT_DIR");
    Ok(())
}

fn read_config(args: &ServeArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(v) = args.http_listen.clone() {
        config.http_listen = v;
    }
    if let Some(v) = args.udp_listen.clone() {
        config.udp_listen = v;
    }
    if let Some(v) = args.db.clone() {
        config.db = v;
    }
    if let Some(v) = args.admin_token.clone() {
        config.admin_token = Some(v);
    }
    config.open |= args.open;
    if let Some(v) = args.api_listen.clone() {
        config.objects.api_listen = v;
    }
    if !args.api_keys.is_empty() {
        config.objects.api_keys = args.api_keys.clone();
    }
    if let Some(path) = &args.api_key_file {
        config.objects.api_keys = read_secrets(path)?;
    }
    if let Some(path) = &args.admin_token_file {
        config.admin_token = Some(read_secret(path)?);
    }
    if let Some(v) = args.control_listen.clone() {
        config.objects.control_listen = v;
    }
    if let Some(v) = &args.data_dir {
        config.objects.data_dir = v.clone();
    }
    if args.no_data_path {
        config.objects.data_path = false;
    }
    config.tls.enabled |= args.tls;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        (config.tls.cert_file, config.tls.key_file) = (cert.clone(), key.clone());
    }
    config.validate()?;
    Ok(config)
}

async fn serve(mut config: Config, tls: Option<Tls>) -> Result<()> {
    fit_to_open_files(&mut config);
    let registry = Registry::open(&config.db).await.with_context(|| {
        format!(
            "opening {}",
            raidtorrent_tracker::registry::db::shown(&config.db)
        )
    })?;
    if config
        .objects
        .api_addr()
        .map_err(anyhow::Error::msg)?
        .is_none()
    {
        let listeners = CloudListeners::bind_tracker(&config, tls).await?;
        let service = Service::start(&config, registry, listeners).await?;
        service.run_until(shutdown_signal()).await;
        return Ok(());
    }
    let listeners = CloudListeners::bind(&config, tls).await?;
    let cloud = Cloud::start(
        &config,
        registry,
        listeners,
        CloudSettings::from_config(&config),
    )
    .await?;
    cloud.run_until(shutdown_signal()).await;
    Ok(())
}

/// Raises the open-file limit and lowers the connection caps to fit under it.
fn fit_to_open_files(config: &mut Config) {
    match raidtorrent_tracker::net::raise_open_file_limit() {
        Ok(open_files) => {
            if config.limits.fit_to(open_files) {
                tracing::warn!(
                    open_files,
                    limits = ?config.limits,
                    "connection caps lowered to fit the open-file limit"
                );
            } else {
                tracing::info!(open_files, "open-file limit");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the open-file limit could not be read or raised"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

async fn node(db: PathBuf, action: NodeAction) -> Result<()> {
    let registry = Registry::open(&db)
        .await
        .with_context(|| format!("opening {}", raidtorrent_tracker::registry::db::shown(&db)))?;
    match action {
        NodeAction::Add {
            name,
            zone,
            capacity_limit,
        } => {
            let facts = raidtorrent_tracker::registry::Registration {
                zone,
                capacity_limit,
            };
            let n = registry.register_node(&name, &facts).await?;
            println!("{}", serde_json::to_string_pretty(&n)?);
        }
        NodeAction::Revoke { id } => {
            let n = registry.revoke(id).await?;
            println!("{}", serde_json::to_string_pretty(&n)?);
        }
        NodeAction::List => {
            let r = registry.reports(unix_now()).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
    }
    registry.close().await;
    Ok(())
}

async fn s3_key(db: PathBuf, data_dir: PathBuf, action: S3KeyAction) -> Result<()> {
    use raidtorrent_tracker::gateway::{open_master_key, AccessKeys, Meta};
    let registry = Registry::open(&db)
        .await
        .with_context(|| format!("opening {}", raidtorrent_tracker::registry::db::shown(&db)))?;
    let master = open_master_key(&data_dir, registry.db()).await?;
    let keys = AccessKeys::new(Meta::new(registry.db().clone()), master);
    let done = s3_key_action(&keys, action).await;
    registry.close().await;
    println!("{}", serde_json::to_string_pretty(&done?)?);
    Ok(())
}

async fn s3_key_action(
    keys: &raidtorrent_tracker::gateway::AccessKeys,
    action: S3KeyAction,
) -> Result<serde_json::Value, raidtorrent_tracker::gateway::GatewayError> {
    use serde_json::json;
    Ok(match action {
        S3KeyAction::Add {
            owner,
            buckets,
            quota,
        } => {
            let (k, secret) = keys.create(&owner, &buckets, quota).await?;
            json!({
                "access_key": k.access_key,
                "secret_key": secret,
                "owner": k.owner,
                "buckets": k.buckets,
                "quota_bytes": k.quota_bytes,
            })
        }
        S3KeyAction::List => json!(keys.list().await?),
        S3KeyAction::Revoke { access_key } => {
            keys.revoke(&access_key).await?;
            json!({ "revoked": access_key })
        }
        S3KeyAction::Quota {
            access_key,
            quota: Limit(quota),
        } => {
            keys.set_quota(&access_key, quota).await?;
            let used = keys.usage(&access_key).await?;
            json!({ "access_key": access_key, "quota_bytes": quota, "used_bytes": used })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_key(args: &[&str]) -> Result<S3KeyAction, clap::Error> {
        let argv = ["raidtorrent-tracker", "s3-key"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Some(Command::S3Key { action, .. }) => Ok(action),
            _ => unreachable!("the s3-key command"),
        }
    }

    #[test]
    fn s3_key_quotas_read_sizes_and_none() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let Ok(S3KeyAction::Add { quota, .. }) = s3_key(&["add", "alice", "--quota", "10GiB"])
        else {
            panic!("an add");
        };
        assert_eq!(quota, Some(10 << 30));
        assert!(matches!(
            s3_key(&["add", "alice"]),
            Ok(S3KeyAction::Add { quota: None, .. })
        ));
        let quota = |size| match s3_key(&["quota", "RTA", size]) {
            Ok(S3KeyAction::Quota { quota, .. }) => Ok(quota),
            Ok(_) => unreachable!("a quota"),
            Err(e) => Err(e),
        };
        assert_eq!(quota("500MB").unwrap(), Limit(Some(500_000_000)));
        assert_eq!(quota("none").unwrap(), Limit(None));
        assert!(quota("5PB").is_err());
        assert!(s3_key(&["quota", "RTA"]).is_err(), "the size is required");
    }
}
