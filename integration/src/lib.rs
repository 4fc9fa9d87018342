//! Test and benchmark support: a real cloud on loopback, the gateway in-process on port 0 and the
//! nodes as `raidtorrent-peer` child processes, each with its own SQLite file and data folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use raidtorrent_tracker::cloud::{Cloud, CloudSettings};
use raidtorrent_tracker::config::Config;
use raidtorrent_tracker::control::ControlConfig;
use raidtorrent_tracker::gateway::{BucketPolicy, GatewayConfig};
use raidtorrent_tracker::registry::{NodeId, Registry};
use raidtorrent_tracker::server::Listeners;
use tokio::net::TcpListener;

/// The node binary beside this test or bench binary, built here when missing.
pub fn peer_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("raidtorrent-peer");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "raidtorrent-peer",
            "--bin",
            "raidtorrent-peer",
        ]);
        // Benchmarks run from target/release: build the node in the same profile.
        if dir.file_name().is_some_and(|d| d == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building raidtorrent-peer failed");
    }
    bin
}

pub struct Node {
    pub id: NodeId,
    pub zone: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TestCloud {
    pub cloud: Cloud,
    pub nodes: Vec<Node>,
    pub _dir: tempfile::TempDir,
}

impl TestCloud {
    /// A gateway and `n` nodes spread over `zones` zones, all connected.
    pub async fn start(n: usize, zones: usize) -> TestCloud {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("gateway.db"))
            .await
            .unwrap();
        let config = Config {
            http_listen: "127.0.0.1:0".into(),
            udp_listen: "off".into(),
            ..Config::default()
        };
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = CloudSettings {
            data_dir: dir.path().join("gateway"),
            swarm_ip: "127.0.0.1".parse().unwrap(),
            control: ControlConfig::default(),
            gateway: GatewayConfig {
                data_dir: dir.path().join("gateway"),
                tracker_url: String::new(),
                default_policy: BucketPolicy {
                    k: 4,
                    m: 2,
                    copies: 2,
                    high_share: 0.0,
                    inline_max: 4096,
                },
                max_object_size: 1 << 32,
                hold_timeout: Duration::from_secs(120),
                fetch_timeout: Duration::from_secs(120),
                read_hedge: 1,
                segment_target: 8 << 20,
            },
            collect_interval: Duration::from_secs(3600),
        };
        let cloud = Cloud::start(
            &config,
            registry.clone(),
            Listeners {
                http: Some(http),
                udp: None,
            },
            control,
            settings,
        )
        .await
        .unwrap();
        let bin = peer_binary();
        let mut nodes = Vec::new();
        for i in 0..n {
            let new = registry.create_node(&format!("node-{i}")).await.unwrap();
            let zone = format!("zone-{}", i % zones);
            let node_dir = dir.path().join(format!("node-{i}"));
            let child = Command::new(&bin)
                .args(["run", "--quota", "4GiB", "--listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(&node_dir)
                .args(["--zone", &zone])
                .arg("--gateway")
                .arg(format!(
                    "{}:{}@{}",
                    new.node.id, new.passkey, cloud.control_addr
                ))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .spawn()
                .expect("raidtorrent-peer starts");
            nodes.push(Node {
                id: new.node.id,
                zone,
                dir: node_dir,
                child: Some(child),
            });
        }
        for node in &nodes {
            assert!(
                cloud
                    .hub
                    .wait_connected(node.id, Duration::from_secs(60))
                    .await,
                "node {} did not connect",
                node.id
            );
        }
        TestCloud {
            cloud,
            nodes,
            _dir: dir,
        }
    }
}

/// Bytes that do not compress and do not repeat.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
