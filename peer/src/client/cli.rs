//! The client subcommands of `raidtorrent-peer`: their flags, and what each prints (plain text
//! for people, one JSON document with `--json` for scripts). Progress and errors go to stderr;
//! the exit code follows [`ClientError::exit_code`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::api::{Api, Credentials};
use super::cap::Capability;
use super::get::{self, GetOptions, Output};
use super::journal::Journals;
use super::keyring::Keyring;
use super::progress::{human, Progress};
use super::put::{self, Input, PutOptions};
use super::{ClientError, ObjectName, EXIT_CODES};

/// Flags every client subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The gateway's object API URL, e.g. http://127.0.0.1:8080 (get and stat use the one in
    /// the capability).
    #[arg(long, env = "RT_GATEWAY")]
    gateway: Option<String>,
    /// Object API key, sent as `Authorization: Bearer`.
    #[arg(
        long,
        env = "RT_API_KEY",
        hide_env_values = true,
        conflicts_with = "access_key"
    )]
    api_key: Option<String>,
    /// S3 access key id: requests are signed with it (AWS Signature Version 4) and reach only
    /// its buckets; what it stores counts against its quota.
    #[arg(long, env = "RT_ACCESS_KEY", requires = "secret_key")]
    access_key: Option<String>,
    /// The S3 access key's secret; it never leaves this machine.
    #[arg(
        long,
        env = "RT_SECRET_KEY",
        hide_env_values = true,
        requires = "access_key"
    )]
    secret_key: Option<String>,
    /// Region named in signatures (the gateway accepts any).
    #[arg(long, env = "RT_REGION", default_value = "us-east-1")]
    region: String,
    /// Keyring file [default: $XDG_CONFIG_HOME/raidtorrent/keyring or ~/.config/raidtorrent/keyring].
    #[arg(long, env = "RT_KEYRING")]
    keyring: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn gateway(&self) -> Result<&str, ClientError> {
        self.gateway
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--gateway (or RT_GATEWAY) is required").into())
    }

    fn api(&self) -> Result<Api, ClientError> {
        Api::new(self.gateway()?, self.credentials())
    }

    fn credentials(&self) -> Credentials {
        match (&self.api_key, &self.access_key, &self.secret_key) {
            (Some(key), _, _) => Credentials::ApiKey(key.clone()),
            (None, Some(id), Some(secret)) => Credentials::AccessKey {
                id: id.clone(),
                secret: secret.clone(),
                region: self.region.clone(),
            },
            _ => Credentials::None,
        }
    }

    fn keyring(&self) -> Result<Keyring, ClientError> {
        match &self.keyring {
            Some(p) => Ok(Keyring::at(p)),
            None => Ok(Keyring::at(Keyring::default_path()?)),
        }
    }

    fn progress(&self) -> Progress {
        Progress { quiet: self.quiet }
    }
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Encrypt and erasure-code a file here, seed its shards to the nodes the gateway chooses, and
    /// print its read capability (also kept in the keyring).
    #[command(after_help = EXIT_CODES)]
    Put(PutArgs),
    /// Read an object by capability (or by BUCKET/KEY from the keyring) straight from the nodes.
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// List buckets, or the objects of BUCKET whose keys start with PREFIX.
    #[command(after_help = EXIT_CODES)]
    Ls(LsArgs),
    /// Delete an object and its keyring line.
    #[command(after_help = EXIT_CODES)]
    Rm(RmArgs),
    /// Show an object's size, redundancy and the holders of each shard.
    #[command(after_help = EXIT_CODES)]
    Stat(StatArgs),
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// The file to store; - reads standard input.
    file: String,
    /// Where to store it, BUCKET/KEY; without it, --bucket and the file's name.
    target: Option<String>,
    /// The bucket, when no BUCKET/KEY is given (the key is then the file's name).
    #[arg(long)]
    bucket: Option<String>,
    /// The client's BitTorrent listener (port 0: any free port).
    #[arg(long, env = "RT_CLIENT_LISTEN", default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Do not offer the listener to the nodes (behind NAT): the client dials them instead.
    #[arg(long)]
    no_listen_advertise: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// A capability (rtcap1:...) or BUCKET/KEY to look up in the keyring.
    what: String,
    /// Output file; - or absent writes to standard output.
    #[arg(long, short)]
    output: Option<String>,
    /// Only bytes FIRST-LAST (inclusive) of the object.
    #[arg(long, value_parser = get::parse_range)]
    range: Option<std::ops::Range<u64>>,
    /// Give up on a node, and on a piece, that sends nothing for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_timeout: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// BUCKET or BUCKET/PREFIX; absent lists the buckets.
    path: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The object, BUCKET/KEY.
    name: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct StatArgs {
    /// A capability (rtcap1:...) or BUCKET/KEY to look up in the keyring.
    what: String,
    #[command(flatten)]
    common: Common,
}

/// Runs one client command on a fresh runtime; errors are printed and become the exit code.
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: ClientCommand) -> Result<(), ClientError> {
    match command {
        ClientCommand::Put(a) => run_put(a).await,
        ClientCommand::Get(a) => run_get(a).await,
        ClientCommand::Ls(a) => run_ls(a).await,
        ClientCommand::Rm(a) => run_rm(a).await,
        ClientCommand::Stat(a) => run_stat(a).await,
    }
}

async fn run_put(a: PutArgs) -> Result<(), ClientError> {
    let name = put_target(&a)?;
    let interrupt = CancellationToken::new();
    let progress = a.common.progress();
    let watcher = tokio::spawn(interrupt_on_signal(interrupt.clone(), progress));
    let keyring = a.common.keyring()?;
    let opts = PutOptions {
        gateway: a.common.gateway()?.to_owned(),
        credentials: a.common.credentials(),
        listen: a.listen,
        advertise: !a.no_listen_advertise,
        progress,
        interrupt,
        journals: Journals::beside(keyring.path()),
    };
    let outcome = put::put(&opts, Input::from_arg(&a.file), &name).await;
    watcher.abort();
    let outcome = outcome?;
    let cap = outcome.cap.encode();
    keyring.put(&name.to_string(), &cap)?;
    match a.common.json {
        true => print_json(&json!({
            "cap": cap,
            "bucket": name.bucket,
            "key": name.key,
            "size": outcome.size,
            "sha256": hex::encode(outcome.sha256),
            "placement": outcome.placement,
            "resumed": outcome.resumed,
        })),
        false => println!("{cap}"),
    }
    Ok(())
}

/// Cancels `interrupt` at the first SIGINT or SIGTERM, so the command undoes what it began; a
/// second one ends the process at once.
async fn interrupt_on_signal(interrupt: CancellationToken, progress: Progress) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    progress.note("interrupted: cleaning up (again to quit at once)");
    interrupt.cancel();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(130);
}

/// BUCKET/KEY, or --bucket and the file's name.
fn put_target(a: &PutArgs) -> Result<ObjectName, ClientError> {
    if let Some(t) = &a.target {
        return ObjectName::parse(t);
    }
    let bucket = a.bucket.clone().ok_or_else(|| {
        anyhow::anyhow!("say where to store it: BUCKET/KEY, or --bucket (the key is the file name)")
    })?;
    let key = std::path::Path::new(&a.file)
        .file_name()
        .filter(|_| a.file != "-")
        .ok_or_else(|| anyhow::anyhow!("standard input has no name: give BUCKET/KEY"))?;
    Ok(ObjectName {
        bucket,
        key: key.to_string_lossy().into_owned(),
    })
}

/// A capability string, or BUCKET/KEY from the keyring. A capability never holds `/`
/// (base64url), a BUCKET/KEY always does.
fn resolve(what: &str, common: &Common) -> Result<Capability, ClientError> {
    if !what.contains('/') {
        return Ok(Capability::parse(what)?);
    }
    let keyring = common.keyring()?;
    let name = ObjectName::parse(what)?;
    let cap = keyring.get(&name.to_string())?.ok_or_else(|| {
        anyhow::anyhow!("no capability for {name} in {}", keyring.path().display())
    })?;
    Ok(Capability::parse(&cap)?)
}

async fn run_get(a: GetArgs) -> Result<(), ClientError> {
    let cap = resolve(&a.what, &a.common)?;
    let out = match a.output.as_deref() {
        None | Some("-") => Output::Stdout,
        Some(path) => Output::File(path.into()),
    };
    let opts = GetOptions {
        stall: Duration::from_secs(a.stall_timeout),
        progress: a.common.progress(),
    };
    let bytes = get::get(&cap, out.clone(), a.range, &opts).await?;
    if let Output::File(path) = out {
        match a.common.json {
            true => print_json(&json!({
                "bucket": cap.bucket, "key": cap.key, "bytes": bytes, "output": path,
            })),
            false => a.common.progress().note(format_args!(
                "{}/{}: {} written to {}",
                cap.bucket,
                cap.key,
                human(bytes),
                path.display()
            )),
        }
    }
    Ok(())
}

async fn run_ls(a: LsArgs) -> Result<(), ClientError> {
    let api = a.common.api()?;
    let Some(path) = &a.path else {
        let buckets = api.buckets().await?;
        match a.common.json {
            true => print_json(&json!(buckets)),
            false => buckets.iter().for_each(|b| {
                let p = b.policy;
                println!("{}\tk={} m={} copies={}", b.name, p.k, p.m, p.copies);
            }),
        }
        return Ok(());
    };
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let mut objects = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = api.list(bucket, prefix, after.as_deref()).await?;
        objects.extend(page.objects);
        match page.next_after {
            Some(next) if Some(&next) != after.as_ref() => after = Some(next),
            _ => break,
        }
    }
    match a.common.json {
        true => print_json(&json!(objects)),
        false => objects
            .iter()
            .for_each(|o| println!("{}\t{}\t{}", o.size, o.storage, o.key)),
    }
    Ok(())
}

async fn run_rm(a: RmArgs) -> Result<(), ClientError> {
    let name = ObjectName::parse(&a.name)?;
    a.common.api()?.delete(&name).await?;
    let forgotten = a.common.keyring()?.remove(&name.to_string())?;
    match a.common.json {
        true => print_json(&json!({"deleted": name.to_string(), "keyring": forgotten})),
        false => a.common.progress().note(format_args!("deleted {name}")),
    }
    Ok(())
}

async fn run_stat(a: StatArgs) -> Result<(), ClientError> {
    let cap = resolve(&a.what, &a.common)?;
    let object = get::lookup(&cap).await?;
    let layout = object.manifest.layout;
    let shards: Vec<_> = object
        .shards
        .iter()
        .map(|s| json!({"info_hash": s.info.info_hash().to_hex(), "holders": s.nodes.len(), "nodes": s.nodes}))
        .collect();
    let summary = json!({
        "bucket": cap.bucket, "key": cap.key, "size": layout.size,
        "sha256": hex::encode(object.manifest.sha256),
        "k": layout.geometry.k, "m": layout.geometry.m,
        "at_risk": object.at_risk, "shards": shards,
    });
    match a.common.json {
        true => print_json(&summary),
        false => print_stat(&cap, &object),
    }
    Ok(())
}

fn print_stat(cap: &Capability, object: &get::Object) {
    let layout = object.manifest.layout;
    println!("object   {}/{}", cap.bucket, cap.key);
    println!("size     {} ({})", layout.size, human(layout.size));
    println!("sha256   {}", hex::encode(object.manifest.sha256));
    println!("coding   k={} m={}", layout.geometry.k, layout.geometry.m);
    println!("at risk  {}", if object.at_risk { "yes" } else { "no" });
    for (i, s) in object.shards.iter().enumerate() {
        let nodes: Vec<String> = s.nodes.iter().map(ToString::to_string).collect();
        println!(
            "shard {i:>3}  {} holders  {}",
            s.nodes.len(),
            nodes.join(" ")
        );
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
