//! A node keeps a fixed number of shard files open however many shards it holds: a node process
//! under an open-file limit lower than its shard count serves every shard, and a node with a
//! small shard-file budget serves, and uploads, every one of many more shards than the budget
//! without ever having more of their files open.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raidtorrent_peer::fds::{open_files_under, shard_file_budget};
use raidtorrent_peer::store::{Store, StoredShard};
use raidtorrent_proto::InfoHash;

const BIN: &str = env!("CARGO_BIN_EXE_raidtorrent-peer");

/// Shards held, and the open-file limit (soft and hard) of the node process: more shards than
/// descriptors.
const SHARDS: usize = 300;
const LIMIT: u64 = 256;

/// Starts the node binary on `dir`, joined to `gateway`, under an open-file limit of `nofile`
/// (soft and hard, so the node cannot raise it) when given.
fn spawn_node(dir: &Path, gateway: std::net::SocketAddr, nofile: Option<u64>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--quota", "1GiB", "--listen", "127.0.0.3:0"])
        .arg("--data-dir")
        .arg(dir)
        .arg("--gateway")
        .arg(format!("{NODE_ID}:{PASSKEY}@{gateway}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(n) = nofile {
        let lim = libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        // SAFETY: setrlimit is async-signal-safe and `lim` is a plain value moved into the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().expect("the node binary starts")
}

/// A data folder holding `shards` as the node leaves it: data, metainfo and the held set.
fn held_on_disk(dir: &Path, shards: &[TestShard], owner: &str) -> Store {
    let store = Store::open(dir).unwrap();
    for s in shards {
        std::fs::write(store.shards_dir().join(&s.info.name), &s.data).unwrap();
        store.write_torrent(&s.ih, &s.torrent).unwrap();
    }
    let held = shards
        .iter()
        .map(|s| StoredShard {
            info_hash: s.ih.to_hex(),
            name: s.info.name.clone(),
            length: s.data.len() as u64,
            owners: BTreeSet::from([owner.to_owned()]),
        })
        .collect();
    store.save(held).unwrap();
    store
}

fn assert_all_kept(store: &Store, shards: &[TestShard]) {
    let held: BTreeSet<String> = store
        .load()
        .unwrap()
        .into_iter()
        .map(|s| s.info_hash)
        .collect();
    let missing = shards
        .iter()
        .filter(|s| !held.contains(&s.ih.to_hex()))
        .count();
    assert_eq!(missing, 0, "shards forgotten from the held set");
    for s in shards {
        let data = std::fs::read(store.shards_dir().join(&s.info.name)).unwrap();
        assert!(data == s.data, "shard {} changed or deleted", s.ih);
        assert_eq!(
            store.read_torrent(&s.ih).unwrap().as_ref(),
            Some(&s.torrent)
        );
    }
}

/// Files process `pid` has open under `dir`.
fn files_open_by(pid: u32, dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(&dir))
                .count()
        })
        .unwrap_or(0)
}

fn sorted(mut v: Vec<InfoHash>) -> Vec<InfoHash> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_under_a_low_open_file_limit_serves_every_shard() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<TestShard> = (0..SHARDS).map(|i| shard(20_000, 500 + i as u64)).collect();
    // The gateway is named by its control address when joined with --gateway.
    let store = held_on_disk(dir.path(), &shards, &gw.addr().to_string());

    let mut node = spawn_node(dir.path(), gw.addr(), Some(LIMIT));
    let (mut conn, _) = gw.accept_welcomed().await;
    let held = sorted(conn.held().await);
    let all = sorted(shards.iter().map(|s| s.ih).collect());
    assert!(held == all, "{} of {SHARDS} shards served", held.len());
    let open = files_open_by(node.id(), &store.shards_dir());
    let budget = shard_file_budget(256, LIMIT);
    assert!(open <= budget, "{open} shard files open, budget {budget}");
    assert!(node.try_wait().unwrap().is_none(), "the node keeps running");
    assert_all_kept(&store, &shards);
    node.kill().unwrap();
    node.wait().unwrap();
}

/// Samples how many files the test process has open under a folder, keeping the most seen.
struct FdWatch {
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FdWatch {
    fn start(dir: &Path) -> Self {
        let (most, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let dir = dir.to_owned();
        let task = tokio::spawn({
            let (most, stop) = (most.clone(), stop.clone());
            async move {
                // A sampling period, not a wait for anything.
                let mut tick = tokio::time::interval(Duration::from_millis(2));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    most.fetch_max(open_files_under(&dir), Ordering::Relaxed);
                }
            }
        });
        FdWatch { most, stop, task }
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.most.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_seeds_more_shards_than_its_file_budget_within_it() {
    const BUDGET: usize = 8;
    const HELD: usize = 40;
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<TestShard> = (0..HELD).map(|i| shard(40_000, 700 + i as u64)).collect();
    let store = held_on_disk(dir.path(), &shards, "test");
    let mut config = node_config(dir.path(), gw.addr(), 1 << 30);
    config.limits.open_files = BUDGET;
    let watch = FdWatch::start(&store.shards_dir());

    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    let held = sorted(conn.held().await);
    assert!(
        held == sorted(shards.iter().map(|s| s.ih).collect()),
        "{} of {HELD} shards reported",
        held.len()
    );
    let seeding = shards.iter().filter(|s| node.node().seeding(&s.ih)).count();
    assert_eq!(seeding, HELD, "shards in the session and complete");

    // A peer downloads every shard from the node at once: all of them are read through the budget.
    let client_dir = tempfile::tempdir().unwrap();
    let (client, _) = swarm::session(client_dir.path(), Ipv4Addr::new(127, 0, 0, 6)).await;
    let fetches: Vec<_> = shards
        .iter()
        .map(|s| {
            let (client, torrent, peer) = (client.clone(), s.torrent.clone(), node.listen_addr());
            tokio::spawn(async move { swarm::fetch(&client, &torrent, &[peer], DEADLINE).await })
        })
        .collect();
    for fetch in fetches {
        fetch.await.unwrap();
    }
    for s in &shards {
        let got = std::fs::read(client_dir.path().join(&s.info.name)).unwrap();
        assert!(
            got == s.data,
            "shard {} downloaded from the node differs",
            s.ih
        );
    }
    let (open, budget) = node.node().shard_files();
    assert_eq!(budget, BUDGET);
    assert!(open <= BUDGET, "{open} shard files open");
    let most = watch.stop().await;
    assert!(
        (1..=BUDGET).contains(&most),
        "{most} shard files open at once, budget {BUDGET}"
    );
    client.stop().await;
    stop_node(node).await;
    assert_all_kept(&store, &shards);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_held_set_stops_the_node_and_deletes_nothing() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<TestShard> = (0..3).map(|i| shard(20_000, 900 + i)).collect();
    let store = held_on_disk(dir.path(), &shards, "test");
    let held = dir.path().join("held.json");
    let saved = std::fs::read(&held).unwrap();
    std::fs::remove_file(&held).unwrap();
    let config = node_config(dir.path(), gw.addr(), 1 << 30);
    let refused = raidtorrent_peer::RunningNode::start(config.clone())
        .await
        .err()
        .expect("a node whose held set is gone must not start");
    let text = format!("{refused:#}");
    assert!(text.contains("held.json is missing"), "{text}");
    assert!(text.contains("Nothing was deleted"), "{text}");
    std::fs::write(&held, saved).unwrap();
    assert_all_kept(&store, &shards);
    // With the held set back, the node starts and serves every shard.
    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await.len(), 3);
    stop_node(node).await;
}
