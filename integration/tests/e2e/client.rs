//! The CLI peer as a client (RT-0004): `raidtorrent-peer put` encrypts and codes on the client's
//! machine and seeds the shards to the nodes the gateway chose; `raidtorrent-peer get` reads them
//! back from the nodes with nothing but the capability. A real gateway process, real node
//! processes, and the client binary run as a user would; the gateway's database, logs and data
//! folder are then searched for the plaintext and the data keys.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use raidtorrent_codec::{Geometry, DEFAULT_SEGMENT_TARGET};
use raidtorrent_integration::process::{untracked, GatewayProcess, ProcessNode, API_KEY};
use raidtorrent_testkit::{files_under, peer_binary, random_bytes, tool_works, wait_until, Rng};
use raidtorrent_tracker::config::Config;

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
        Self::start_with(n, |_| {}, &[]).await
    }

    /// As [`ClientCloud::start`], with `tweak` applied to the gateway's configuration and
    /// `serve_args` on its command line.
    async fn start_with(
        n: usize,
        tweak: impl FnOnce(&mut Config),
        serve_args: &[&str],
    ) -> ClientCloud {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::new(dir.path(), tweak);
        gw.serve_args = serve_args.iter().map(|a| a.to_string()).collect();
        let nodes: Vec<ProcessNode> = (0..n)
            .map(|i| ProcessNode::start(&gw, &format!("node-{i}"), &format!("zone-{}", i % 3)))
            .collect();
        gw.start().await;
        let client = dir.path().join("client");
        std::fs::create_dir_all(client.join("tmp")).unwrap();
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
        let mut cmd = self.peer_command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("raidtorrent-peer runs"))
            .await
            .unwrap()
    }

    /// The client binary's command line, its temporary folders under the client's `tmp`.
    fn peer_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(peer_binary());
        cmd.args(args)
            .env("RT_GATEWAY", format!("http://{}", self.gw.api_addr))
            .env("RT_API_KEY", API_KEY)
            .env("RT_LOG_FORMAT", "text")
            .env("XDG_CONFIG_HOME", self.client.join("config"))
            .env("HOME", &self.client)
            .env("TMPDIR", self.client.join("tmp"));
        cmd
    }

    /// What the client left in its temporary folder.
    fn client_tmp(&self) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(self.client.join("tmp")).unwrap();
        entries.map(|e| e.unwrap().path()).collect()
    }

    /// Starts `put FILE BUCKET/KEY` and waits until it has its placement (its `placing` line).
    fn put_until_placing(&self, file: &Path, key: &str) -> Placing {
        let target = format!("{BUCKET}/{key}");
        let mut child = self
            .peer_command(&["put", file.to_str().unwrap(), &target])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("raidtorrent-peer put starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let placing = tokio::task::block_in_place(|| {
            lines
                .by_ref()
                .map_while(Result::ok)
                .find(|l| l.starts_with("placing "))
        });
        let placing = placing.expect("put never reached its placement");
        // "placing BUCKET/KEY: placement <id>, ..."
        let placement = placing
            .split_once(": placement ")
            .and_then(|(_, rest)| rest.split(',').next())
            .unwrap_or_else(|| panic!("no placement id in {placing:?}"))
            .to_owned();
        Placing {
            child,
            lines,
            placement,
        }
    }

    /// The journals of unfinished puts, beside the keyring.
    fn journals(&self) -> Vec<PathBuf> {
        let dir = self.client.join("config/raidtorrent/puts");
        match std::fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until every copy on the nodes is one the gateway records, and the gateway records
    /// only the shards of the objects stored.
    async fn only_stored_copies(&self, keys: &[&str]) {
        let mut stored = std::collections::BTreeSet::new();
        for key in keys {
            stored.extend(self.gw.shards_of(BUCKET, key).await);
        }
        let (nodes, gw, stored) = (&self.nodes, &self.gw, &stored);
        wait_until(
            Duration::from_secs(60),
            "only the stored objects' copies on the nodes",
            || async move {
                let recorded = gw.recorded().await;
                untracked(nodes, &recorded).is_empty()
                    && recorded.values().flatten().all(|ih| stored.contains(ih))
            },
        )
        .await;
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
        let file = self.get_file(what, extra).await?;
        Ok(std::fs::read(file).unwrap())
    }

    /// `get WHAT -o FILE`: the file written, or the failed run.
    async fn get_file(&self, what: &str, extra: &[&str]) -> Result<PathBuf, Output> {
        let out_file = self.client.join("read-back");
        let _ = std::fs::remove_file(&out_file);
        let mut args = vec!["get", what, "-o", out_file.to_str().unwrap()];
        args.extend(extra);
        let out = self.peer(&args).await;
        match out.status.success() {
            true => Ok(out_file),
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

/// A `put` under way, past its `placing` line.
struct Placing {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    placement: String,
}

/// Bytes the process `pid` has read and written through system calls so far (`rchar` +
/// `wchar` of `/proc/<pid>/io`): sockets and files alike.
fn io_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("reading /proc/<pid>/io");
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k == "rchar" || *k == "wchar")
        .map(|(_, v)| v.trim().parse::<u64>().expect("a byte count"))
        .sum()
}

/// Writes `len` bytes of the test RNG's stream seeded with `seed` to `path`, a MiB at a time.
fn write_random(path: &Path, len: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 20);
        out.write_all(&rng.bytes(n as usize)).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}

/// Whether two files hold the same bytes, read a MiB at a time.
fn same_file(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut at = 0;
    while at < buf.len() {
        match f.read(&mut buf[at..]).unwrap() {
            0 => break,
            n => at += n,
        }
    }
    at
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

/// A 300 MiB object through a gateway whose own data path is off: the gateway refuses its PUT
/// and GET, and while the client stores the object and reads it back the gateway reads and
/// writes (sockets and files together) under 5% of the object's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_data_path_the_gateway_moves_almost_none_of_a_large_objects_bytes() {
    const SIZE: u64 = 300 << 20;
    let started = Instant::now();
    // Audits read pieces of the shards on purpose; they have tests of their own and are kept
    // out of this measurement of what storing and reading cost the gateway.
    let no_audits = |c: &mut Config| c.objects.health.audit_interval_ms = 3_600_000;
    let c = ClientCloud::start_with(6, no_audits, &["--no-data-path"]).await;
    let api = c.gw.api();
    let refused = api
        .put(BUCKET, "direct", b"through the gateway".to_vec())
        .await;
    assert_eq!(
        refused.unwrap(),
        403,
        "a PUT through the gateway is refused"
    );
    assert!(
        api.list(BUCKET).await.is_empty(),
        "the refused PUT left nothing"
    );

    let file = c.client.join("large");
    write_random(&file, SIZE, 300);
    let pid = c.gw.pid().expect("the gateway runs");
    let before = io_bytes(pid);
    let put_started = Instant::now();
    let cap = c.put(&file, "large").await;
    let (put_secs, put_bytes) = (put_started.elapsed(), io_bytes(pid) - before);
    let before = io_bytes(pid);
    let get_started = Instant::now();
    let back = c
        .get_file(&cap, &[])
        .await
        .unwrap_or_else(|o| panic!("{}", stderr(&o)));
    let (get_secs, get_bytes) = (get_started.elapsed(), io_bytes(pid) - before);
    assert!(same_file(&file, &back), "read back differs");
    eprintln!(
        "300 MiB object: put {put_secs:.1?}, gateway moved {put_bytes} bytes; get {get_secs:.1?}, \
         gateway moved {get_bytes} bytes; test so far {:.1?}",
        started.elapsed()
    );
    assert!(
        put_bytes < SIZE / 20,
        "the gateway moved {put_bytes} bytes during the put"
    );
    assert!(
        get_bytes < SIZE / 20,
        "the gateway moved {get_bytes} bytes during the get"
    );

    // The object is the gateway's to list and describe, not to serve.
    let listed = api.list(BUCKET).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["size"], SIZE);
    assert_eq!(api.get(BUCKET, "large").await, Err(403));
}

/// Ctrl-C during a `put` whose placement is under way: the placement is cancelled at the gateway,
/// the client's temporary shards are removed, nothing becomes visible and the copies the nodes
/// began are dropped; the same `put` run again then stores the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_put_cancels_its_placement_and_can_run_again() {
    let c = ClientCloud::start(3).await;
    let object = random_bytes(3 << 20, 11);
    let file = c.client.join("interrupted");
    std::fs::write(&file, &object).unwrap();

    // Frozen nodes take the holds and never confirm, so the placement is still under way when
    // the user gives up.
    c.nodes.iter().for_each(|n| n.process.pause());
    let Placing {
        child: mut put,
        lines,
        ..
    } = c.put_until_placing(&file, "interrupted");
    let pid = put.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let rest: Vec<String> = tokio::task::block_in_place(|| lines.map_while(Result::ok).collect());
    let status = tokio::task::block_in_place(|| put.wait().unwrap());
    c.nodes.iter().for_each(|n| n.process.resume());
    let said = rest.join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("was cancelled"), "{said}");
    assert!(
        c.client_tmp().is_empty(),
        "left behind: {:?}",
        c.client_tmp()
    );
    assert!(c.journals().is_empty(), "left: {:?}", c.journals());
    assert!(c.gw.api().list(BUCKET).await.is_empty());
    let nodes = &c.nodes;
    let gw = &c.gw;
    wait_until(
        Duration::from_secs(60),
        "the cancelled placement's copies dropped",
        || async move {
            gw.recorded().await.values().all(|s| s.is_empty())
                && nodes.iter().all(|n| n.copies().is_empty())
        },
    )
    .await;

    let cap = c.put(&file, "interrupted").await;
    let back = c
        .get(&cap, &[])
        .await
        .unwrap_or_else(|o| panic!("{}", stderr(&o)));
    assert!(back == object, "read back differs");
    assert!(
        c.client_tmp().is_empty(),
        "left behind: {:?}",
        c.client_tmp()
    );
}

/// A `put` killed outright (SIGKILL) while the gateway reports its placement under way leaves
/// its shards and a journal behind; the same `put` run again resumes: the same placement, no new
/// encoding, and the object reads back. A `put` of another file then cleans up after a second
/// killed `put`: its placement is cancelled and its shards leave the client and the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_killed_outright_resumes_when_run_again_and_is_cleaned_up_otherwise() {
    let c = ClientCloud::start(3).await;
    let api = c.gw.api();
    let object = random_bytes(3 << 20, 12);
    let file = c.client.join("killed");
    std::fs::write(&file, &object).unwrap();

    // Frozen nodes keep the placement under way.
    c.nodes.iter().for_each(|n| n.process.pause());
    let mut killed = c.put_until_placing(&file, "killed");
    let status = api.placement(&killed.placement).await.unwrap();
    assert_eq!(status["state"], "placing", "{status}");
    tokio::task::block_in_place(|| {
        killed.child.kill().unwrap();
        killed.child.wait().unwrap();
    });
    c.nodes.iter().for_each(|n| n.process.resume());
    // The nodes take up their holds (and dial the dead client) before it comes back.
    let held: Vec<String> = status["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["info_hash"].as_str().unwrap().to_owned())
        .collect();
    let (nodes, held) = (&c.nodes, &held);
    wait_until(
        Duration::from_secs(30),
        "the nodes fetching the killed put's shards",
        || async move {
            let fetching: std::collections::BTreeSet<_> =
                nodes.iter().flat_map(|n| n.copies()).collect();
            held.iter().all(|ih| fetching.contains(ih))
        },
    )
    .await;
    assert_eq!(c.client_tmp().len(), 1, "the shard folder stays behind");
    assert_eq!(
        c.journals().len(),
        2,
        "a journal and its lock: {:?}",
        c.journals()
    );
    for j in c.journals() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&j).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", j.display());
    }

    let target = format!("{BUCKET}/killed");
    let out = c
        .peer(&["put", file.to_str().unwrap(), &target, "--json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resumed"], true, "{v}\n{}", stderr(&out));
    assert_eq!(
        v["placement"],
        killed.placement.as_str(),
        "the same placement"
    );
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    let back = c
        .get(v["cap"].as_str().unwrap(), &[])
        .await
        .unwrap_or_else(|o| panic!("{}", stderr(&o)));
    assert!(back == object, "read back differs");
    assert!(c.client_tmp().is_empty(), "left: {:?}", c.client_tmp());
    assert!(c.journals().is_empty(), "left: {:?}", c.journals());
    c.only_stored_copies(&["killed"]).await;

    // Another put killed outright, then a put of another file.
    let abandoned = c.client.join("abandoned");
    std::fs::write(&abandoned, random_bytes(1 << 20, 13)).unwrap();
    c.nodes.iter().for_each(|n| n.process.pause());
    let mut killed = c.put_until_placing(&abandoned, "abandoned");
    tokio::task::block_in_place(|| {
        killed.child.kill().unwrap();
        killed.child.wait().unwrap();
    });
    c.nodes.iter().for_each(|n| n.process.resume());
    let other = c.client.join("other");
    std::fs::write(&other, random_bytes(500_000, 14)).unwrap();
    let cap = c.put(&other, "other").await;
    assert!(c.get(&cap, &[]).await.is_ok());
    let status = api.placement(&killed.placement).await.unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(c.client_tmp().is_empty(), "left: {:?}", c.client_tmp());
    assert!(c.journals().is_empty(), "left: {:?}", c.journals());
    let listed: Vec<_> = api.list(BUCKET).await;
    let keys: Vec<_> = listed.iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["killed", "other"]);
    c.only_stored_copies(&["killed", "other"]).await;
}

/// An S3 access key signs the client's requests (RT-0004 section 5): it places objects in its
/// own buckets only, within its quota; what it stores counts as its own; a stock signer (curl's
/// `--aws-sigv4`) is understood too; and the secret never reaches the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_access_key_places_in_its_own_buckets_within_its_quota() {
    let c = ClientCloud::start(3).await;
    let policy = serde_json::json!({
        "k": K, "m": M, "copies": COPIES, "high_share": 0.0, "inline_max": 0
    });
    assert_eq!(c.gw.api().create_bucket("elsewhere", policy).await, 200);
    let made =
        c.gw.s3_key(&["add", "alice", "--buckets", BUCKET, "--quota", "1MB"]);
    let id = made["access_key"].as_str().unwrap().to_owned();
    let secret = made["secret_key"].as_str().unwrap().to_owned();
    let as_key = |secret: &str, args: &[&str]| {
        let mut cmd = c.peer_command(args);
        cmd.env_remove("RT_API_KEY")
            .env("RT_ACCESS_KEY", &id)
            .env("RT_SECRET_KEY", secret);
        cmd
    };
    let run = |mut cmd: Command| async move {
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    let file = |name: &str, len: usize, seed: u64| {
        let path = c.client.join(name);
        std::fs::write(&path, random_bytes(len, seed)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (first, second) = (file("first", 600_000, 1), file("second", 600_000, 2));
    let target = |key: &str| format!("{BUCKET}/{key}");

    // Within its bucket and quota: stored, listed, and counted as the key's.
    let out = run(as_key(&secret, &["put", &first, &target("first")])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(as_key(&secret, &["ls", BUCKET, "--json"])).await;
    assert!(stdout(&out).contains("first"), "{}", stdout(&out));
    let listed = c.gw.s3_key(&["list"]);
    let alice = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["access_key"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(alice["used_bytes"], 600_000, "{alice}");

    // Past its quota, outside its buckets, or with a wrong secret: refused, nothing stored.
    let out = run(as_key(&secret, &["put", &second, &target("second")])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("QuotaExceeded"), "{}", stderr(&out));
    // A bucket outside its scope is not even listed to it.
    let out = run(as_key(&secret, &["put", &second, "elsewhere/second"])).await;
    let refused = stderr(&out);
    assert!(
        !out.status.success()
            && (refused.contains("AccessDenied") || refused.contains("NoSuchBucket")),
        "{refused}"
    );
    let out = run(as_key("not-the-secret", &["ls", BUCKET])).await;
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(c.gw.api().list("elsewhere").await.len(), 0);
    assert_eq!(c.gw.api().list(BUCKET).await.len(), 1);

    // Deleting gives the quota back.
    let out = run(as_key(&secret, &["rm", &target("first")])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(as_key(&secret, &["put", &second, &target("second")])).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // curl signs as S3 clients do, and the object API understands it.
    let url = format!("http://{}/{BUCKET}", c.gw.api_addr);
    let curl = |secret: &str| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!("{id}:{secret}"))
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", &url]);
        cmd
    };
    if tool_works("curl", Command::new("curl").arg("--version")) {
        assert_eq!(stdout(&run(curl(&secret)).await), "200");
        assert_eq!(stdout(&run(curl("wrong")).await), "403");
    }

    // The secret crossed no wire and sits nowhere on the gateway in the clear.
    for f in c.gateway_files() {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{} holds the secret",
            f.display()
        );
    }
}
