//! hold, drop and their refusals, with a real shard moving from a librqbit seeder to the node.

use crate::common::*;
use raidtorrent_proto::{Hold, Message, MetainfoSource, RefuseCode};

#[tokio::test(flavor = "multi_thread")]
async fn hold_fetches_seeds_and_acks_then_drop_deletes() {
    let gw = TestGateway::bind().await;
    let seeder = Seeder::start().await;
    let shard = shard(300_000, 2);
    seeder.seed(&shard).await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);

    let seq = conn.send(hold(&shard, vec![seeder.addr])).await;
    assert_eq!(
        conn.answer(seq).await,
        Message::Ack {
            re: seq,
            ih: shard.ih
        }
    );
    let file = dir.path().join("shards").join(&shard.info.name);
    assert!(
        std::fs::read(&file).unwrap() == shard.data,
        "the node holds the shard's bytes"
    );
    // The report after completion lists the shard.
    let report = conn.report_where(|r| !r.held.is_empty()).await;
    assert_eq!(report.held, vec![shard.ih]);
    assert_eq!(report.used, 300_000);

    // A repeated hold is acked at once; the same directive, idempotent.
    let seq = conn.send(hold(&shard, vec![])).await;
    assert_eq!(
        conn.answer(seq).await,
        Message::Ack {
            re: seq,
            ih: shard.ih
        }
    );

    let seq = conn.send(Message::Drop { ih: shard.ih }).await;
    assert_eq!(
        conn.answer(seq).await,
        Message::Ack {
            re: seq,
            ih: shard.ih
        }
    );
    assert!(!file.exists(), "dropped data is deleted");
    assert!(!dir
        .path()
        .join("torrents")
        .join(format!("{}.torrent", shard.ih))
        .exists());
    assert_eq!(conn.held().await, vec![]);
    // Dropping again is acked too.
    let seq = conn.send(Message::Drop { ih: shard.ih }).await;
    assert_eq!(
        conn.answer(seq).await,
        Message::Ack {
            re: seq,
            ih: shard.ih
        }
    );
    stop_node(node).await;
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn holds_beyond_the_quota_or_with_bad_metainfo_are_refused() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 100_000)).await;
    let (mut conn, _) = gw.accept_welcomed().await;

    let big = shard(150_000, 3);
    let seq = conn.send(hold(&big, vec![])).await;
    match conn.answer(seq).await {
        Message::Refuse {
            code: RefuseCode::Quota,
            ih: Some(ih),
            text,
            ..
        } => {
            assert_eq!(ih, big.ih);
            assert!(text.contains("free"), "{text}");
        }
        other => panic!("{other:?}"),
    }

    // The torrent of another shard under this info-hash.
    let other = shard(10_000, 4);
    let seq = conn
        .send(Message::Hold(Hold {
            ih: big.ih,
            source: MetainfoSource::Torrent(other.torrent.clone()),
            peers: vec![],
        }))
        .await;
    assert!(matches!(
        conn.answer(seq).await,
        Message::Refuse {
            code: RefuseCode::Mismatch,
            ..
        }
    ));

    // Not a shard torrent: a public one.
    let not_torrent =
        b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"
            .to_vec();
    let seq = conn
        .send(Message::Hold(Hold {
            ih: other.ih,
            source: MetainfoSource::Torrent(not_torrent),
            peers: vec![],
        }))
        .await;
    match conn.answer(seq).await {
        Message::Refuse {
            code: RefuseCode::Metainfo,
            text,
            ..
        } => assert!(text.contains("private"), "{text}"),
        other => panic!("{other:?}"),
    }

    // A URL that does not answer.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/shard.torrent", dead.local_addr().unwrap());
    drop(dead);
    let seq = conn
        .send(Message::Hold(Hold {
            ih: other.ih,
            source: MetainfoSource::Url(url),
            peers: vec![],
        }))
        .await;
    assert!(matches!(
        conn.answer(seq).await,
        Message::Refuse {
            code: RefuseCode::Fetch,
            ..
        }
    ));

    // Nothing was kept, and the quota is whole.
    let report = conn.last_report.clone().expect("the report after welcome");
    assert_eq!((report.used, report.held.len()), (0, 0));
    stop_node(node).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_cancels_a_pending_hold() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    // No peer has this shard, so its hold stays pending.
    let lonely = shard(50_000, 5);
    let hold_seq = conn.send(hold(&lonely, vec![])).await;
    let drop_seq = conn.send(Message::Drop { ih: lonely.ih }).await;
    let answers = conn.answers(&[hold_seq, drop_seq]).await;
    assert!(
        matches!(
            answers[0],
            Message::Refuse {
                code: RefuseCode::Superseded,
                ..
            }
        ),
        "{answers:?}"
    );
    assert_eq!(
        answers[1],
        Message::Ack {
            re: drop_seq,
            ih: lonely.ih
        }
    );
    assert!(!dir
        .path()
        .join("torrents")
        .join(format!("{}.torrent", lonely.ih))
        .exists());
    assert_eq!(
        node.tasks()
            .iter()
            .filter(|t| t.starts_with("fetch"))
            .count(),
        0
    );
    stop_node(node).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_carry_changes_and_the_peers_of_shards_still_fetching() {
    let gw = TestGateway::bind().await;
    let seeder = Seeder::start().await;
    let (a, b) = (shard(100_000, 7), shard(100_000, 8));
    seeder.seed(&a).await;
    seeder.seed(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), gw.addr(), 1 << 20);
    config.limits.fetch_stall_secs = 600;
    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);
    // A fetch that cannot progress: its only source is gone.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let source = gone.local_addr().unwrap();
    drop(gone);
    let lonely = shard(50_000, 9);
    conn.send(hold(&lonely, vec![source])).await;
    for s in [&a, &b] {
        let seq = conn.send(hold(s, vec![seeder.addr])).await;
        assert!(matches!(conn.answer(seq).await, Message::Ack { .. }));
    }
    let report = conn.report_where(|r| r.held.len() == 2).await;
    assert!(
        report
            .transfers
            .iter()
            .any(|t| t.ih == lonely.ih && t.addr == source.to_string()),
        "the shard being fetched lists its source: {:?}",
        report.transfers
    );
    assert!(
        report.transfers.iter().all(|t| t.ih == lonely.ih),
        "held shards list no peers: {:?}",
        report.transfers
    );
    // After the first, reports on a connection carry only what changed.
    let seq = conn.send(Message::Drop { ih: a.ih }).await;
    let delta = within(DEADLINE, "the drop's ack and report", async {
        let (mut acked, mut delta) = (false, None);
        while !acked || delta.is_none() {
            match conn.recv().await.body {
                Message::Ack { re, .. } if re == seq => acked = true,
                Message::Report(r) if !r.gone.is_empty() => delta = Some(r),
                _ => {}
            }
        }
        delta.unwrap()
    })
    .await;
    assert!(!delta.full, "{delta:?}");
    assert_eq!((delta.held, delta.gone), (vec![], vec![a.ih]));
    assert_eq!(conn.last_report.unwrap().held, vec![b.ih], "deltas applied");
    stop_node(node).await;
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_that_gets_no_data_for_the_stall_time_is_refused_and_leaves_nothing() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), gw.addr(), 1 << 20);
    config.limits.fetch_stall_secs = 1;
    let node = start_node(config).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    // Its only source is gone: nothing listens there any more.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let source = gone.local_addr().unwrap();
    drop(gone);
    let lonely = shard(50_000, 6);
    let seq = conn.send(hold(&lonely, vec![source])).await;
    let answer = conn.answer(seq).await;
    assert!(
        matches!(&answer, Message::Refuse { code: RefuseCode::Stalled, text, .. } if text.contains("no data")),
        "{answer:?}"
    );
    assert!(!dir
        .path()
        .join("torrents")
        .join(format!("{}.torrent", lonely.ih))
        .exists());
    // The quota it took is free again.
    let status = node.node().snapshot_status();
    assert_eq!((status.used, status.shards.len()), (0, 0), "{status:?}");
    stop_node(node).await;
}

/// Serves `body` to one HTTP GET on 127.0.0.1:0; returns the URL.
async fn serve_once(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/metainfo/shard.torrent",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&chunk[..n]);
        }
        assert!(request.starts_with(b"GET /metainfo/shard.torrent "));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-bittorrent\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_by_url_fetches_the_metainfo_over_http() {
    let gw = TestGateway::bind().await;
    let seeder = Seeder::start().await;
    let s = shard(60_000, 10);
    seeder.seed(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    let url = serve_once(s.torrent.clone()).await;
    let seq = conn
        .send(Message::Hold(Hold {
            ih: s.ih,
            source: MetainfoSource::Url(url),
            peers: vec![seeder.addr],
        }))
        .await;
    assert_eq!(conn.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    assert!(std::fs::read(dir.path().join("shards").join(&s.info.name)).unwrap() == s.data);
    stop_node(node).await;
    seeder.stop().await;
}
