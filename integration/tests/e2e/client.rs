//! The CLI peer as a client (RT-0004): `raidtorrent-peer put` encrypts and codes on the client's
//! machine and seeds the shards to the nodes the gateway chose; `raidtorrent-peer get` reads them
//! back from the nodes with nothing but the capability. A real gateway process, real node
//! processes, and the client binary run as a user would; the gateway's database, logs and data
//! folder are then searched for the plaintext and the data keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use raidtorrent_codec::{Geometry, DEFAULT_SEGMENT_TARGET};
use raidtorrent_integration::process::{GatewayProcess, ProcessNode, API_KEY};
use raidtorrent_testkit::{files_under, peer_binary, random_bytes, wait_until};

const BUCKET: &str = "own-keys";
const K: u16 = 4;
const M: u16 = 2;
const COPIES: usize = 2;

/// A gateway process, its nodes (two per zone, three zones) and a client's folder.
struct ClientCloud {
    gw: GatewayProcess,
    nodes: Vec<ProcessNode>,
    client: PathBuf,
    dir: tempfile::TempDir,
}

impl ClientCloud {
    async fn start(n: usize) -> ClientCloud {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::new(dir.path(), |_| {});
        let nodes: Vec<ProcessNode> = (0..n)
            .map(|i| ProcessNode::start(&gw, &format!("node-{i}"), &format!("zone-{}", i % 3)))
            .collect();
        gw.start().await;
        let client = dir.path().join("client");
        std::fs::create_dir_all(&client).unwrap();
        let c = ClientCloud {
            gw,
            nodes,
            client,
            dir,
        };
        c.all_connected().await;
        let policy = serde_json::json!({
            "k": K, "m": M, "copies": COPIES, "high_share": 0.0, "inline_max": 0
        });
        assert_eq!(c.gw.api().create_bucket(BUCKET, policy).await, 200);
        c
    }

    async fn all_connected(&self) {
        let nodes = &self.nodes;
        wait_until(
            Duration::from_secs(90),
            "every node connected",
            || async move {
                nodes
                    .iter()
                    .filter(|n| n.process.pid().is_some())
                    .all(|n| n.connected().is_some())
            },
        )
        .await;
    }

    /// Runs the client binary with `args` (its gateway, API key and keyring set), off the
    /// runtime's threads.
    async fn peer(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(peer_binary());
        cmd.args(args)
            .env("RT_GATEWAY", format!("http://{}", self.gw.api_addr))
            .env("RT_API_KEY", API_KEY)
            .env("RT_LOG_FORMAT", "text")
            .env("XDG_CONFIG_HOME", self.client.join("config"))
            .env("HOME", &self.client);
        tokio::task::spawn_blocking(move || cmd.output().expect("raidtorrent-peer runs"))
            .await
            .unwrap()
    }

    /// `put FILE BUCKET/KEY --json`: the capability.
    async fn put(&self, file: &Path, key: &str) -> String {
        let target = format!("{BUCKET}/{key}");
        let out = self
            .peer(&["put", file.to_str().unwrap(), &target, "--json"])
            .await;
        assert!(out.status.success(), "put {key}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("put --json printed {:?}: {e}", stdout(&out)));
        let cap = v["cap"].as_str().expect("a capability").to_owned();
        assert!(cap.starts_with("rtcap1:"), "{cap}");
        cap
    }

    /// `get WHAT -o FILE`: the bytes, or the failed run.
    async fn get(&self, what: &str, extra: &[&str]) -> Result<Vec<u8>, Output> {
        let out_file = self.client.join("read-back");
        let _ = std::fs::remove_file(&out_file);
        let mut args = vec!["get", what, "-o", out_file.to_str().unwrap()];
        args.extend(extra);
        let out = self.peer(&args).await;
        match out.status.success() {
            true => Ok(std::fs::read(&out_file).unwrap()),
            false => Err(out),
        }
    }

    /// The gateway's own files: database, data folder, configuration and logs (the nodes'
    /// folders and the client's sit beside them and are left out).
    fn gateway_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("gateway")
            })
            .flat_map(|p| match p.is_dir() {
                true => files_under(&p),
                false => vec![p],
            })
            .collect()
    }

    /// Waits until every shard the gateway records has `COPIES` copies on running nodes.
    async fn repaired(&self) {
        let running: Vec<_> = self
            .nodes
            .iter()
            .filter(|n| n.process.pid().is_some())
            .map(|n| n.id)
            .collect();
        let running = &running;
        let gw = &self.gw;
        wait_until(
            Duration::from_secs(120),
            "every shard repaired",
            || async move {
                let recorded = gw.recorded().await;
                let mut per_shard = std::collections::BTreeMap::<String, usize>::new();
                for (node, shards) in &recorded {
                    for s in shards {
                        *per_shard.entry(s.clone()).or_default() +=
                            usize::from(running.contains(node));
                    }
                }
                !per_shard.is_empty() && per_shard.values().all(|&n| n >= COPIES)
            },
        )
        .await;
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The data key inside a capability: the 32 bytes after the bencoded key `d`.
fn data_key(cap: &str) -> Vec<u8> {
    let dict = URL_SAFE_NO_PAD
        .decode(cap.strip_prefix("rtcap1:").unwrap())
        .expect("a capability is base64url");
    let at = dict
        .windows(6)
        .position(|w| w == b"1:d32:")
        .expect("the capability names its data key");
    dict[at + 6..at + 38].to_vec()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sizes that cross the codec's boundaries for the client's geometry.
fn sizes() -> Vec<(&'static str, usize)> {
    let g = Geometry::choose(K, M, DEFAULT_SEGMENT_TARGET, Some(64 << 20)).unwrap();
    vec![
        ("empty", 0),
        ("one-byte", 1),
        ("one-piece", g.piece_length as usize),
        ("segment-and-a-byte", g.segment_size as usize + 1),
        ("many-segments", 3 * g.segment_size as usize + 12_345),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_stores_and_reads_objects_the_gateway_never_sees() {
    let mut c = ClientCloud::start(6).await;
    let mut stored = Vec::new();
    for (i, (name, size)) in sizes().into_iter().enumerate() {
        let object = random_bytes(size, 40 + i as u64);
        let file = c.client.join(name);
        std::fs::write(&file, &object).unwrap();
        let cap = c.put(&file, name).await;
        let back = c
            .get(&cap, &[])
            .await
            .unwrap_or_else(|o| panic!("{}", stderr(&o)));
        assert!(back == object, "{name}: read back differs");
        // Its owner reads it by name too, through the keyring.
        let by_name = c.get(&format!("{BUCKET}/{name}"), &[]).await;
        assert!(by_name.is_ok_and(|b| b == object), "{name} by name");
        stored.push((object, cap));
    }

    // The gateway moved no object bytes: nothing was staged on it, and it holds no plaintext
    // window and no data key anywhere in its database, logs or data folder.
    let gateway_files = c.gateway_files();
    assert!(gateway_files.iter().any(|f| f.ends_with("gateway.db")));
    for f in &gateway_files {
        let bytes = std::fs::read(f).unwrap();
        for (object, cap) in &stored {
            assert!(
                !contains(&bytes, &data_key(cap)),
                "{} holds a data key",
                f.display()
            );
            for at in (0..object.len().saturating_sub(4096)).step_by(1 << 20) {
                let window = &object[at..at + 4096];
                assert!(!contains(&bytes, window), "{} holds plaintext", f.display());
            }
        }
    }

    // A zone goes dark: every object still reads with the same capability, and the gateway
    // repairs the client's objects as its own, with no key.
    let (object, cap) = stored.last().unwrap();
    // Node i is in zone i % 3.
    for n in c.nodes.iter_mut().step_by(3) {
        n.process.kill();
    }
    assert!(c.get(cap, &[]).await.is_ok_and(|b| &b == object));
    c.repaired().await;
    // Then a node that may hold repaired copies goes too.
    c.nodes[1].process.kill();
    let back = c
        .get(cap, &[])
        .await
        .unwrap_or_else(|o| panic!("{}", stderr(&o)));
    assert!(&back == object, "read back after repair differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_capabilities_and_an_unreachable_cloud_fail_with_their_exit_codes() {
    let mut c = ClientCloud::start(3).await;
    let object = random_bytes(300_000, 7);
    let file = c.client.join("obj");
    std::fs::write(&file, &object).unwrap();
    let cap = c.put(&file, "obj").await;

    let code = |r: Result<Vec<u8>, Output>| r.err().and_then(|o| o.status.code());
    // A mistyped capability and a truncated one are refused before the gateway is asked.
    let mut typo = cap.clone().into_bytes();
    let at = typo.len() / 2;
    typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(code(c.get(&typo, &[]).await), Some(2));
    assert_eq!(code(c.get(&cap[..cap.len() - 5], &[]).await), Some(2));
    assert_eq!(code(c.get("not-a-capability", &[]).await), Some(2));

    // Every node gone: too few shards reachable.
    for n in &mut c.nodes {
        n.process.kill();
    }
    let failed = c.get(&cap, &[]).await.unwrap_err();
    assert_eq!(failed.status.code(), Some(4), "{}", stderr(&failed));
    // The gateway gone: unreachable.
    c.gw.kill();
    let failed = c.get(&cap, &[]).await.unwrap_err();
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
}
