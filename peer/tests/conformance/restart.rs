//! A restarted node re-seeds what it held from disk, without a download, and reports it.

use crate::common::*;
use raidtorrent_proto::Message;

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_shards_without_downloading_again() {
    let gw = TestGateway::bind().await;
    let seeder = Seeder::start().await;
    let shards = [shard(200_000, 6), shard(70_000, 7)];
    for s in &shards {
        seeder.seed(s).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path(), gw.addr(), 1 << 20);
    let node = start_node(config.clone()).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    for s in &shards {
        let seq = conn.send(hold(s, vec![seeder.addr])).await;
        assert_eq!(conn.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    }
    stop_node(node).await;
    drop(conn);
    // Nobody else has the shards now: whatever the node holds after restart comes from its disk.
    seeder.stop().await;
    // What a fetch cut short by a crash would leave behind.
    let stray = dir.path().join("shards").join("f".repeat(32));
    std::fs::write(&stray, b"half a shard").unwrap();

    let node = start_node(config.clone()).await;
    assert!(
        !stray.exists(),
        "data of a shard not held is removed at start"
    );
    let (mut conn, _) = gw.accept_welcomed().await;
    let mut held = conn.held().await;
    held.sort();
    let mut expected: Vec<_> = shards.iter().map(|s| s.ih).collect();
    expected.sort();
    assert_eq!(
        held, expected,
        "the first report after restart lists the held set"
    );
    for s in &shards {
        let bytes = std::fs::read(dir.path().join("shards").join(&s.info.name)).unwrap();
        assert!(bytes == s.data);
        // A hold after restart is acked at once.
        let seq = conn.send(hold(s, vec![])).await;
        assert_eq!(conn.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    }
    stop_node(node).await;

    // A shard whose bytes were damaged on disk is not reported as held after the next restart.
    let damaged = &shards[0];
    let path = dir.path().join("shards").join(&damaged.info.name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![shards[1].ih]);
    stop_node(node).await;
}
