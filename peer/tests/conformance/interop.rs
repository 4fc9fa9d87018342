//! A stock client (python3-libtorrent) and the node move a shard both ways: the node fetches a shard
//! only libtorrent seeds, then a second libtorrent downloads it from the node alone. Peers are dialled
//! directly (the hold's `peers`, libtorrent's `connect_peer`); no tracker runs here.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;
use raidtorrent_proto::Message;

const PYTHON: &str = "/usr/bin/python3";
const LT_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/lt_peer.py");

/// A libtorrent process, killed when dropped; its stdout lines arrive on `lines`.
struct LtPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
    iface: String,
}

impl LtPeer {
    fn start(
        torrent: &Path,
        save: &Path,
        iface: &str,
        peers: &[std::net::SocketAddr],
    ) -> (Self, std::net::SocketAddr) {
        let port = free_port(iface);
        let mut cmd = Command::new(PYTHON);
        cmd.arg(LT_PEER)
            .arg("--torrent")
            .arg(torrent)
            .arg("--save")
            .arg(save)
            .args(["--iface", iface, "--port", &port.to_string()])
            .stdout(Stdio::piped());
        for p in peers {
            cmd.args(["--peer", &p.to_string()]);
        }
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (
            LtPeer {
                child,
                lines,
                iface: iface.to_owned(),
            },
            (iface.parse::<std::net::IpAddr>().unwrap(), port).into(),
        )
    }

    /// Waits (off the runtime's threads) until libtorrent prints `want`.
    async fn wait_for(&self, want: &str) {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            match self.lines.try_recv() {
                Ok(line) if line == want => return,
                Ok(_) => continue,
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("libtorrent on {} exited before {want}", self.iface)
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for libtorrent on {} to say {want}",
                self.iface
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LtPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_and_libtorrent_swap_a_shard_both_ways() {
    if python_libtorrent().is_none() {
        return;
    }
    let s = shard(500_000, 9);
    let work = tempfile::tempdir().unwrap();
    let torrent = work.path().join("shard.torrent");
    std::fs::write(&torrent, &s.torrent).unwrap();
    let seed_dir = work.path().join("seed");
    std::fs::create_dir(&seed_dir).unwrap();
    std::fs::write(seed_dir.join(&s.info.name), &s.data).unwrap();
    let (seeder, seeder_addr) = LtPeer::start(&torrent, &seed_dir, "127.0.0.5", &[]);
    seeder.wait_for("SEEDING").await;

    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    let seq = conn.send(hold(&s, vec![seeder_addr])).await;
    assert_eq!(conn.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    assert!(std::fs::read(dir.path().join("shards").join(&s.info.name)).unwrap() == s.data);
    drop(seeder);

    // Only the node has the shard now.
    let leech_dir = work.path().join("leech");
    std::fs::create_dir(&leech_dir).unwrap();
    let (leecher, _) = LtPeer::start(&torrent, &leech_dir, "127.0.0.6", &[node.listen_addr()]);
    leecher.wait_for("SEEDING").await;
    assert!(std::fs::read(leech_dir.join(&s.info.name)).unwrap() == s.data);
    let report = wait_for(DEADLINE, "the node to count its upload", || {
        let transfers = conn_transfers(&node, &s);
        async move { transfers }
    })
    .await;
    assert!(report >= 500_000, "uploaded {report}");
    stop_node(node).await;
}

/// Bytes the node uploaded for a shard, from the same statistics its reports carry.
fn conn_transfers(node: &raidtorrent_peer::RunningNode, s: &TestShard) -> Option<u64> {
    let up: u64 = node.node().transfers(&s.ih).iter().map(|t| t.up).sum();
    (up >= s.data.len() as u64).then_some(up)
}
