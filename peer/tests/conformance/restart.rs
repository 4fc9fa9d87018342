//! A restarted node re-seeds what it held from disk, without a download, and reports it.

use crate::common::*;
use raidtorrent_peer::config::Config;
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
    let node = start_node(config.clone()).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![shards[1].ih]);
    stop_node(node).await;
    // It is fetched again, and its record stays on disk meanwhile: a node stopped (or crashed)
    // before the fetch ends keeps the shard and what it had of it, not deletes it as a stray.
    assert!(
        raidtorrent_testkit::held_set(dir.path()).contains_key(&damaged.ih.to_hex()),
        "a shard being fetched again stays in the held set"
    );
    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![shards[1].ih]);
    assert!(path.exists(), "its data is not deleted as a stray");
    stop_node(node).await;
}

/// A node with two gateways: the test one at `first` and one named "second" at `second`.
fn two_gateways(dir: &std::path::Path, first: &TestGateway, second: &TestGateway) -> Config {
    let mut config = node_config(dir, first.addr(), 1 << 20);
    let mut other = config.gateways[0].clone();
    other.name = Some("second".into());
    other.control = second.addr().to_string();
    config.gateways.push(other);
    config
}

/// A second gateway's hold of a shard the node holds for the first is acked only once the held
/// set on disk names both owners: after a restart the node still reports it to both, and one
/// gateway's drop leaves it held for the other, across the next restart too (one that finds
/// the journal's last append cut short).
#[tokio::test(flavor = "multi_thread")]
async fn every_owner_of_a_shard_outlives_restarts() {
    let (first, second) = (TestGateway::bind().await, TestGateway::bind().await);
    let seeder = Seeder::start().await;
    let s = shard(50_000, 8);
    seeder.seed(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let config = two_gateways(dir.path(), &first, &second);
    let node = start_node(config.clone()).await;
    let (mut one, _) = first.accept_welcomed().await;
    let (mut two, _) = second.accept_welcomed().await;
    let seq = one.send(hold(&s, vec![seeder.addr])).await;
    assert_eq!(one.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    let seq = two.send(hold(&s, vec![])).await;
    assert_eq!(two.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    stop_node(node).await;
    seeder.stop().await;

    let node = start_node(config.clone()).await;
    let (mut one, _) = first.accept_welcomed().await;
    let (mut two, _) = second.accept_welcomed().await;
    assert_eq!(one.held().await, vec![s.ih]);
    assert_eq!(two.held().await, vec![s.ih], "the second owner was kept");
    let seq = one.send(Message::Drop { ih: s.ih }).await;
    assert_eq!(one.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    stop_node(node).await;
    // A power loss in the middle of an append leaves part of a line: ignored at start.
    let journal = dir.path().join("held.log");
    let mut torn = std::fs::read(&journal).unwrap();
    assert!(!torn.is_empty(), "the drop was journaled");
    torn.extend_from_slice(br#"{"forget": "#);
    std::fs::write(&journal, torn).unwrap();

    let node = start_node(config).await;
    let (mut one, _) = first.accept_welcomed().await;
    let (mut two, _) = second.accept_welcomed().await;
    assert_eq!(one.held().await, vec![], "the first owner's drop was kept");
    assert_eq!(two.held().await, vec![s.ih]);
    assert!(dir.path().join("shards").join(&s.info.name).exists());
    stop_node(node).await;
}
