//! Test and benchmark support: a real cloud on loopback, the gateway in-process on port 0 and the
//! nodes as `raidtorrent-peer` child processes, each with its own SQLite file and data folder.
//!
//! Nodes can be killed (SIGKILL, as a crash or a pulled plug), restarted on the same data folder and
//! identity (they re-seed what they held), and have their shard files corrupted in place, so a test
//! can make a node serve bad pieces. [`wait_until`] polls a condition with a deadline, so no test
//! sleeps for a fixed time; [`loopback_bandwidth`] measures the plain-TCP baseline that transfer and
//! repair times are compared with.

use std::collections::HashSet;
use std::ffi::OsString;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raidtorrent_tracker::cloud::{Cloud, CloudListeners, CloudSettings};
use raidtorrent_tracker::config::{Config, ObjectConfig};
use raidtorrent_tracker::registry::{NodeId, Registry};

pub mod baseline;

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

/// One `raidtorrent-peer` process and everything needed to start it again.
pub struct Node {
    pub id: NodeId,
    pub zone: String,
    /// The node's data directory (`shards/`, `torrents/`, `held.json`, `status.json`).
    pub dir: PathBuf,
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    child: Option<Child>,
}

impl Node {
    /// Starts `binary` with `args` and `env` (added to this process's environment); `dir` is the
    /// data directory the arguments name.
    pub fn spawn(
        id: NodeId,
        zone: String,
        dir: PathBuf,
        binary: PathBuf,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    ) -> Node {
        let mut node = Node {
            id,
            zone,
            dir,
            binary,
            args,
            env,
            child: None,
        };
        node.restart();
        node
    }

    /// Hard kill (SIGKILL), as a crash: nothing is flushed, no `bye` is said. Waits for the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again exactly as it was first started: same binary, arguments (so the same
    /// data directory, identity and passkey) and environment. It re-seeds what it held from disk.
    /// A node still running is killed first. With `--listen 127.0.0.1:0` it comes back on a new
    /// port, as a volunteer behind a changing address would.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .spawn()
            .expect("raidtorrent-peer starts");
        self.child = Some(child);
    }

    /// Whether the process is alive (it may have exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data files of the shards the node holds: files under `shards/` whose name the held set
    /// (`held.json`) lists. Fetches still in progress are not included.
    pub fn shard_files(&self) -> Vec<PathBuf> {
        let held = std::fs::read_to_string(self.dir.join("held.json")).unwrap_or_default();
        let mut files: Vec<PathBuf> = files_under(&self.dir.join("shards"))
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    // Shard names are opaque hex ids, so a quoted match is the JSON string itself.
                    .is_some_and(|n| held.contains(&format!("\"{n}\"")))
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Flips (bitwise NOT) `len` bytes of the file at `path` from `offset`, in place: the length and the
/// inode stay, so a process that has the file open serves the changed bytes. Flipping the same
/// bytes again restores them. Panics if the range is not inside the file.
pub fn corrupt(path: &Path, offset: u64, len: usize) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let size = f.metadata().unwrap().len();
    assert!(
        offset + len as u64 <= size,
        "{}: bytes {offset}..{} are outside its {size} bytes",
        path.display(),
        offset + len as u64
    );
    let mut bytes = vec![0u8; len];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut bytes).unwrap();
    bytes.iter_mut().for_each(|b| *b = !*b);
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
}

/// Polls `f` every 50 ms until it returns true; panics naming `what` if `deadline` passes first.
pub async fn wait_until<F: FnMut() -> Fut, Fut: Future<Output = bool>>(
    deadline: Duration,
    what: &str,
    mut f: F,
) {
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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

impl TestCloud {
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
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            http_listen: "127.0.0.1:0".into(),
            udp_listen: "off".into(),
            db: dir.path().join("gateway.db"),
            objects: ObjectConfig {
                api_listen: "127.0.0.1:0".into(),
                control_listen: "127.0.0.1:0".into(),
                data_dir: dir.path().join("gateway"),
                max_object_size: 1 << 32,
                hold_timeout_secs: 120,
                segment_target: 8 << 20,
                collect_interval_secs: 3600,
                ..ObjectConfig::default()
            },
            ..Config::default()
        };
        let registry = Registry::open(&config.db).await.unwrap();
        let listeners = CloudListeners::bind(&config).await.unwrap();
        let mut settings = CloudSettings::from_config(&config);
        tweak(&mut settings);
        let cloud = Cloud::start(&config, registry.clone(), listeners, settings)
            .await
            .unwrap();
        let bin = peer_binary();
        let mut nodes = Vec::new();
        for i in 0..n {
            let new = registry.create_node(&format!("node-{i}")).await.unwrap();
            let zone = format!("zone-{}", i % zones);
            let node_dir = dir.path().join(format!("node-{i}"));
            let args: Vec<OsString> = vec![
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_flips_bytes_in_place_and_twice_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        let original = random_bytes(100_000, 5);
        std::fs::write(&path, &original).unwrap();
        corrupt(&path, 70_000, 3);
        let changed = std::fs::read(&path).unwrap();
        assert_eq!(changed.len(), original.len());
        let differ: Vec<usize> = (0..original.len())
            .filter(|&i| changed[i] != original[i])
            .collect();
        assert_eq!(differ, vec![70_000, 70_001, 70_002]);
        corrupt(&path, 70_000, 3);
        assert!(std::fs::read(&path).unwrap() == original);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn corrupt_refuses_a_range_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        std::fs::write(&path, [0u8; 10]).unwrap();
        corrupt(&path, 8, 3);
    }

    #[tokio::test]
    async fn wait_until_returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(10), "the third call", || {
            calls += 1;
            let done = calls >= 3;
            async move { done }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting until pigs fly")]
    async fn wait_until_names_what_it_waited_for() {
        wait_until(Duration::from_millis(100), "pigs fly", || async { false }).await;
    }

    #[test]
    fn loopback_bandwidth_moves_every_byte() {
        let bps = loopback_bandwidth(64 << 20);
        eprintln!("loopback TCP copy: {:.0} MB/s", bps / 1e6);
        // Loopback moves at least tens of MB/s even on a loaded machine.
        assert!(bps.is_finite() && bps > 10e6, "{bps}");
    }

    #[test]
    fn a_node_process_can_be_killed_and_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::spawn(
            1,
            "zone-0".into(),
            dir.path().to_owned(),
            "sleep".into(),
            vec!["600".into()],
            Vec::new(),
        );
        let first = node.pid().unwrap();
        assert!(node.is_running());
        node.kill();
        assert!(!node.is_running());
        assert_eq!(node.pid(), None);
        node.restart();
        assert!(node.is_running());
        assert_ne!(node.pid(), Some(first));
    }

    #[test]
    fn shard_files_are_the_held_ones() {
        let dir = tempfile::tempdir().unwrap();
        let shards = dir.path().join("shards");
        std::fs::create_dir_all(&shards).unwrap();
        let held = "0123456789abcdef0123456789abcdef";
        let fetching = "fedcba9876543210fedcba9876543210";
        std::fs::write(shards.join(held), b"x").unwrap();
        std::fs::write(shards.join(fetching), b"y").unwrap();
        std::fs::write(
            dir.path().join("held.json"),
            format!(r#"{{"version": 1, "shards": [{{"info_hash": "00", "name": "{held}", "length": 1, "owners": []}}]}}"#),
        )
        .unwrap();
        let node = Node {
            id: 1,
            zone: "zone-0".into(),
            dir: dir.path().to_owned(),
            binary: "true".into(),
            args: Vec::new(),
            env: Vec::new(),
            child: None,
        };
        assert_eq!(node.shard_files(), vec![shards.join(held)]);
    }
}
