//! Test and benchmark support: a real cloud on loopback, the gateway in-process on port 0 and the
//! nodes as `raidtorrent-peer` child processes, each with its own SQLite file and data folder.
//!
//! Nodes are [`raidtorrent_testkit::Node`] processes: they can be killed (SIGKILL, as a crash or a
//! pulled plug), restarted on the same data folder and identity (they re-seed what they held), and
//! have their shard files corrupted in place ([`raidtorrent_testkit::corrupt`]), so a test can make
//! a node serve bad pieces. Tests wait with [`raidtorrent_testkit::wait_until`], never for a fixed
//! time; [`loopback_bandwidth`] measures the plain-TCP baseline that transfer and repair times are
//! compared with.
//!
//! [`process`] runs the gateway as a process as well (`raidtorrent-tracker serve`), so a test can
//! SIGKILL it mid-operation and start it again on the same database and data folder.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use raidtorrent_testkit::{self as testkit, peer_binary, random_bytes};
use raidtorrent_tracker::cloud::{Cloud, CloudListeners, CloudSettings};
use raidtorrent_tracker::config::{Config, ObjectConfig};
use raidtorrent_tracker::registry::{NodeId, Registration, Registry};

pub mod baseline;
pub mod logs;
pub mod process;

/// A node of a [`TestCloud`]: a `raidtorrent-peer` process (everything [`testkit::Node`] does:
/// kill, restart, its data folder and shard files) and the identity the gateway gave it.
pub struct Node {
    pub id: NodeId,
    pub zone: String,
    process: testkit::Node,
}

impl Node {
    /// Starts `binary` with `args` and `env` as node `id` in `zone`; `dir` is the data directory
    /// the arguments name.
    pub fn spawn(
        id: NodeId,
        zone: String,
        dir: PathBuf,
        binary: PathBuf,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    ) -> Node {
        Node {
            id,
            zone,
            process: testkit::Node::spawn(dir, binary, args, env),
        }
    }
}

impl Deref for Node {
    type Target = testkit::Node;

    fn deref(&self) -> &testkit::Node {
        &self.process
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut testkit::Node {
        &mut self.process
    }
}

/// Bytes per second of a plain TCP copy of `bytes` bytes over 127.0.0.1 (a real socket pair on port
/// 0, writer and reader each on its own thread), from the first byte written to the last one read.
pub fn loopback_bandwidth(bytes: usize) -> f64 {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        loop {
            match conn.read(&mut buf).expect("read") {
                0 => break,
                n => got += n,
            }
        }
        (got, Instant::now())
    });
    let mut conn = TcpStream::connect(addr).expect("connect");
    let chunk = random_bytes(1 << 20, 99);
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n]).expect("write");
        left -= n;
    }
    drop(conn);
    let (got, end) = reader.join().expect("reader thread");
    assert_eq!(got, bytes, "the copy lost bytes");
    bytes as f64 / (end - start).as_secs_f64().max(1e-9)
}

pub struct TestCloud {
    pub cloud: Cloud,
    pub nodes: Vec<Node>,
    pub _dir: tempfile::TempDir,
}

/// Samples how many bytes the files under a folder take, every few milliseconds, until
/// stopped: the most a folder held during an operation.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl PeakSampler {
    pub fn start(dir: PathBuf) -> PeakSampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stopped.load(Ordering::Relaxed) {
                tick.tick().await;
                let bytes = testkit::files_under(&dir)
                    .iter()
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum();
                peak = peak.max(bytes);
            }
            peak
        });
        PeakSampler { stop, task }
    }

    /// The most bytes seen.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("the sampler ran")
    }
}

impl TestCloud {
    /// Shard files on every node.
    pub fn shard_files(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| testkit::files_under(&n.dir.join("shards")).len())
            .sum()
    }

    /// The gateway's staging folder (shards of uploads being placed).
    pub fn staging_dir(&self) -> PathBuf {
        self._dir.path().join("gateway").join("staging")
    }

    /// Whether every shard of every stored object has at least `copies` copies on connected
    /// nodes (copies on nodes that are gone may still be recorded).
    pub async fn redundant(&self, copies: usize) -> bool {
        let connected: HashSet<NodeId> =
            self.cloud.hub.connected().iter().map(|c| c.node).collect();
        let objects = self.cloud.gateway.meta().health_snapshot().await.unwrap();
        objects.iter().flat_map(|o| &o.shards).all(|s| {
            s.copies
                .iter()
                .filter(|c| connected.contains(&c.node))
                .count()
                >= copies
        })
    }

    /// The shards that do not have exactly `copies` copies, all on connected nodes and none
    /// failed, each described for a failure message; empty once the cloud has settled.
    pub async fn unsettled(&self, copies: usize) -> Vec<String> {
        let connected: HashSet<NodeId> =
            self.cloud.hub.connected().iter().map(|c| c.node).collect();
        let objects = self.cloud.gateway.meta().health_snapshot().await.unwrap();
        objects
            .iter()
            .flat_map(|o| o.shards.iter().map(move |s| (o.id, s)))
            .filter(|(_, s)| {
                s.copies.len() != copies
                    || s.copies
                        .iter()
                        .any(|c| c.failed_audit || !connected.contains(&c.node))
            })
            .map(|(o, s)| {
                let online: Vec<bool> = s
                    .copies
                    .iter()
                    .map(|c| connected.contains(&c.node))
                    .collect();
                format!(
                    "object {o} shard {} {}: {:?} (connected: {online:?})",
                    s.idx,
                    &s.info_hash.to_hex()[..8],
                    s.copies
                )
            })
            .collect()
    }
}

impl TestCloud {
    /// The copies on running nodes (held or being fetched) that the gateway does not record,
    /// each described; empty while every node holds only what the gateway tracks.
    pub async fn untracked(&self) -> Vec<String> {
        let running: Vec<&Node> = self.nodes.iter().filter(|n| n.pid().is_some()).collect();
        let ids: Vec<NodeId> = running.iter().map(|n| n.id).collect();
        let recorded = self.cloud.gateway.meta().recorded_on(&ids).await.unwrap();
        let recorded: HashSet<(String, NodeId)> =
            recorded.iter().map(|(ih, n)| (ih.to_hex(), *n)).collect();
        running
            .iter()
            .flat_map(|n| process::copies_in(&n.dir).into_iter().map(|ih| (ih, n.id)))
            .filter(|copy| !recorded.contains(copy))
            .map(|(ih, node)| format!("node {node} holds {ih}"))
            .collect()
    }
}

/// The admin token of a [`TestCloud`]'s admin API and operator view.
pub const ADMIN_TOKEN: &str = "test-cloud-admin-token";

impl TestCloud {
    /// The tracker's HTTP address: announces, the admin API, the dashboard and `/metrics`.
    pub fn admin_url(&self) -> String {
        let addr = self
            .cloud
            .service
            .http_addr
            .expect("the HTTP tracker is served");
        format!("http://{addr}")
    }

    /// A gateway and `n` nodes spread over `zones` zones, all connected.
    pub async fn start(n: usize, zones: usize) -> TestCloud {
        Self::start_with(n, zones, |_| {}).await
    }

    /// As [`TestCloud::start`], with `tweak` applied to the gateway's settings before it starts.
    pub async fn start_with(
        n: usize,
        zones: usize,
        tweak: impl FnOnce(&mut CloudSettings),
    ) -> TestCloud {
        Self::start_custom(n, zones, |_| {}, tweak, &[]).await
    }

    /// As [`TestCloud::start_with`], with `configure` applied to the gateway's configuration
    /// first and `node_args` added to every node's command line.
    pub async fn start_custom(
        n: usize,
        zones: usize,
        configure: impl FnOnce(&mut Config),
        tweak: impl FnOnce(&mut CloudSettings),
        node_args: &[&str],
    ) -> TestCloud {
        logs::capture();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            http_listen: "127.0.0.1:0".into(),
            udp_listen: "off".into(),
            db: dir.path().join("gateway.db"),
            admin_token: Some(ADMIN_TOKEN.into()),
            objects: ObjectConfig {
                api_listen: "127.0.0.1:0".into(),
                s3_listen: "127.0.0.1:0".into(),
                control_listen: "127.0.0.1:0".into(),
                data_dir: dir.path().join("gateway"),
                max_object_size: 1 << 32,
                hold_timeout_secs: 120,
                segment_target: 8 << 20,
                // Collection and reconciliation run all the time, so every test also checks
                // that they never take a copy the gateway counts.
                collect_interval_secs: 1,
                reconcile_settle_secs: 2,
                ..ObjectConfig::default()
            },
            ..Config::default()
        };
        configure(&mut config);
        let registry = Registry::open(&config.db).await.unwrap();
        let listeners = CloudListeners::bind(&config, None).await.unwrap();
        let mut settings = CloudSettings::from_config(&config);
        // Objects of every size take the swarm path here; packing has tests of its own.
        settings.gateway.packing.max_object = 0;
        tweak(&mut settings);
        serve_s3_domain_at_its_port(&mut settings, &listeners);
        let cloud = Cloud::start(&config, registry.clone(), listeners, settings)
            .await
            .unwrap();
        let bin = peer_binary();
        let mut nodes = Vec::new();
        for i in 0..n {
            let zone = format!("zone-{}", i % zones);
            // The zone is the operator's to assign; the node's --zone only has to agree.
            let facts = Registration {
                zone: Some(zone.clone()),
                capacity_limit: None,
            };
            let new = registry
                .register_node(&format!("node-{i}"), &facts)
                .await
                .unwrap();
            let node_dir = dir.path().join(format!("node-{i}"));
            let mut args: Vec<OsString> = vec![
                "run".into(),
                "--quota".into(),
                "4GiB".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                node_dir.clone().into(),
                "--zone".into(),
                zone.clone().into(),
                "--gateway".into(),
                format!("{}:{}@{}", new.node.id, new.passkey, cloud.control_addr).into(),
            ];
            args.extend(node_args.iter().map(OsString::from));
            let env = vec![("RUST_LOG".into(), "warn".into())];
            nodes.push(Node::spawn(
                new.node.id,
                zone,
                node_dir,
                bin.clone(),
                args,
                env,
            ));
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

/// A virtual-host domain given without a port (`s3.test`) gets the port the S3 listener was
/// bound to (port 0 here), as clients send it in `Host` and an operator would write it.
fn serve_s3_domain_at_its_port(settings: &mut CloudSettings, listeners: &CloudListeners) {
    let port = listeners
        .s3
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port());
    if let (Some(domain), Some(port)) = (settings.s3_domain.as_mut(), port) {
        if !domain.contains(':') {
            *domain = format!("{domain}:{port}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_bandwidth_moves_every_byte() {
        let bps = loopback_bandwidth(64 << 20);
        eprintln!("loopback TCP copy: {:.0} MB/s", bps / 1e6);
        // Loopback moves at least tens of MB/s even on a loaded machine.
        assert!(bps.is_finite() && bps > 10e6, "{bps}");
    }

    #[test]
    fn a_cloud_node_is_its_process_with_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::spawn(
            1,
            "zone-0".into(),
            dir.path().to_owned(),
            "sleep".into(),
            vec!["600".into()],
            Vec::new(),
        );
        assert_eq!((node.id, node.zone.as_str()), (1, "zone-0"));
        assert_eq!(node.dir, dir.path());
        assert!(node.is_running());
        node.kill();
        assert!(!node.is_running());
    }
}
