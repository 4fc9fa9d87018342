//! A node process whose open-file limit is too low for the shards it holds keeps every copy: the
//! shards past its budget stay on disk and in its held set, unserved, a new hold is refused with a
//! clear answer, and once the limit is raised every shard is served again.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use raidtorrent_peer::fds::torrent_budget;
use raidtorrent_peer::store::{Store, StoredShard};
use raidtorrent_proto::{Message, RefuseCode};

const BIN: &str = env!("CARGO_BIN_EXE_raidtorrent-peer");

/// Shards held, and the open-file limit (soft and hard) of the first run: 300 do not fit in 256.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_node_over_its_open_file_limit_forgets_and_deletes_no_copy() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<TestShard> = (0..SHARDS).map(|i| shard(20_000, 500 + i as u64)).collect();
    // The gateway is named by its control address when joined with --gateway.
    let store = held_on_disk(dir.path(), &shards, &gw.addr().to_string());

    let mut node = spawn_node(dir.path(), gw.addr(), Some(LIMIT));
    let (mut conn, _) = gw.accept_welcomed().await;
    let held = conn.held().await;
    assert!(
        !held.is_empty() && held.len() <= torrent_budget(LIMIT),
        "{} shards served under a limit of {LIMIT}",
        held.len()
    );
    let extra = shard(20_000, 99);
    let seq = conn.send(hold(&extra, vec![])).await;
    match conn.answer(seq).await {
        Message::Refuse {
            code: RefuseCode::Quota,
            text,
            ..
        } => assert!(text.contains("open-file limit"), "{text}"),
        other => panic!("a hold past the budget must be refused: {other:?}"),
    }
    assert!(node.try_wait().unwrap().is_none(), "the node keeps running");
    assert_all_kept(&store, &shards);
    node.kill().unwrap();
    node.wait().unwrap();
    drop(conn);

    // With the limit raised, every shard is served again, from disk.
    let mut node = spawn_node(dir.path(), gw.addr(), None);
    let (mut conn, _) = gw.accept_welcomed().await;
    let mut held = conn.held().await;
    held.sort();
    let mut all: Vec<_> = shards.iter().map(|s| s.ih).collect();
    all.sort();
    assert!(held == all, "{} of {SHARDS} shards served", held.len());
    assert_all_kept(&store, &shards);
    node.kill().unwrap();
    node.wait().unwrap();
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
