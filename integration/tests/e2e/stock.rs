//! A BitTorrent client nobody here wrote, at its default settings, fetching a shard from a node.

use std::process::Command;

use raidtorrent_tracker::gateway::BucketPolicy;

use raidtorrent_integration::*;
use raidtorrent_testkit::{free_port, python_libtorrent, random_bytes};

const LT_FETCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/lt_fetch.py");

/// libtorrent tries uTP first and, at its defaults, gives up on a peer that speaks only TCP; a
/// node listens on both, so the shard arrives and equals the node's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_libtorrent_at_its_defaults_fetches_a_shard_from_a_node() {
    let Some(python) = python_libtorrent() else {
        return;
    };
    let t = TestCloud::start(2, 1).await;
    let gw = t.cloud.gateway.clone();
    let policy = BucketPolicy {
        k: 2,
        m: 1,
        copies: 1,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("stock", Some(policy)).await.unwrap();
    let object = random_bytes(3 << 20, 5);
    gw.put("stock", "o", std::io::Cursor::new(object), None)
        .await
        .unwrap();
    let row = gw.meta().object("stock", "o").await.unwrap();
    let shard = &gw.meta().shards_of(row.id).await.unwrap()[0];
    let info = shard.shard_info().unwrap();
    let holder = gw.meta().holders(&shard.info_hash).await.unwrap()[0];
    let node = t.nodes.iter().find(|n| n.id == holder).unwrap();
    let peer = t.cloud.hub.node(holder).unwrap().data_addr.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let torrent = dir.path().join("shard.torrent");
    std::fs::write(&torrent, info.to_torrent(&[])).unwrap();
    let save = dir.path().join("save");
    std::fs::create_dir(&save).unwrap();
    let iface = "127.0.0.61";
    let mut cmd = Command::new(python);
    cmd.arg(LT_FETCH)
        .arg("--torrent")
        .arg(&torrent)
        .arg("--save")
        .arg(&save)
        .args(["--iface", iface, "--port", &free_port(iface).to_string()])
        .args(["--peer", &peer.to_string(), "--timeout", "60"]);
    let out = tokio::task::block_in_place(|| cmd.output().unwrap());
    let log = String::from_utf8_lossy(&out.stdout);
    eprintln!("{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "libtorrent did not finish: {log}");
    let fetched = std::fs::read(save.join(&info.name)).unwrap();
    let held = node
        .shard_files()
        .into_iter()
        .find(|f| f.ends_with(&info.name))
        .unwrap();
    assert!(fetched == std::fs::read(held).unwrap(), "the shard differs");
}
