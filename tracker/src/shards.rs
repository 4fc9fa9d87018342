//! `raidtorrent-tracker shards BUCKET/KEY --out DIR`: asks a running gateway's admin API to export
//! an object's shards (`POST /admin/objects/<bucket>/<key>/export`), writes each shard's
//! `.torrent` file (its announce URL carries a read-only inspector credential) and prints one
//! magnet link a line, for libtorrent, aria2c, Transmission or any other BitTorrent client.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use base64::Engine;

#[derive(clap::Args)]
pub struct ShardsArgs {
    /// The object, as BUCKET/KEY (the key may contain slashes).
    object: String,
    /// Folder to write `<part>-<index>-<info-hash>.torrent` files into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seconds the inspector credential stays valid.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl: u64,
    /// The gateway's tracker HTTP address (where /announce and the admin API are served).
    #[arg(
        long,
        env = "RAIDTORRENT_GATEWAY",
        default_value = "http://127.0.0.1:6969"
    )]
    gateway: String,
    /// The admin token.
    #[arg(long, env = "RAIDTORRENT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// File holding the admin token, instead of --admin-token (which others see in `ps`).
    #[arg(long, env = "RAIDTORRENT_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

impl ShardsArgs {
    fn token(&self) -> Result<String> {
        match (&self.admin_token, &self.admin_token_file) {
            (Some(t), None) => Ok(t.clone()),
            (None, Some(f)) => Ok(raidtorrent_tracker::config::read_secret(f)?),
            (Some(_), Some(_)) => {
                bail!("give the admin token once: --admin-token or --admin-token-file")
            }
            (None, None) => bail!(
                "the export needs the admin token: --admin-token-file or RAIDTORRENT_ADMIN_TOKEN"
            ),
        }
    }
}

#[derive(serde::Deserialize)]
struct Export {
    shards: Vec<Shard>,
}

#[derive(serde::Deserialize)]
struct Shard {
    part: u32,
    index: u32,
    info_hash: String,
    magnet: String,
    torrent_base64: String,
}

pub async fn run(args: ShardsArgs) -> Result<()> {
    let token = args.token()?;
    let Some((bucket, key)) = args
        .object
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        bail!("name the object as BUCKET/KEY, not {:?}", args.object);
    };
    let url = format!(
        "{}/admin/objects/{}/{}/export?ttl={}",
        args.gateway.trim_end_matches('/'),
        segment(bucket),
        segment(key),
        args.ttl
    );
    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {}", args.gateway))?;
    let status = res.status();
    let body = res.bytes().await.context("reading the gateway's answer")?;
    if !status.is_success() {
        bail!(
            "the gateway answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let export: Export =
        serde_json::from_slice(&body).context("the gateway's export is not the JSON expected")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for s in &export.shards {
        if s.info_hash.len() != 40 || !s.info_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "the gateway named a shard {:?}, not an info-hash",
                s.info_hash
            );
        }
        let torrent = base64::engine::general_purpose::STANDARD
            .decode(&s.torrent_base64)
            .context("a torrent in the export is not base64")?;
        let path = args
            .out
            .join(format!("{}-{}-{}.torrent", s.part, s.index, s.info_hash));
        std::fs::write(&path, torrent).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", s.magnet);
    }
    eprintln!(
        "{} shard torrents written to {}",
        export.shards.len(),
        args.out.display()
    );
    Ok(())
}

/// `s` as one percent-encoded path segment.
fn segment(s: &str) -> String {
    raidtorrent_tracker::api::parse::percent_encode(s, b"-._~")
}
