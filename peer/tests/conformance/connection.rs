//! Handshake, mutual authentication, malformed input and reconnection.

use crate::common::*;
use raidtorrent_proto::{auth, frame, ByeCode, Frame, Message, RefuseCode, CONTROL_INFO_HASH};

#[tokio::test(flavor = "multi_thread")]
async fn node_handshakes_proves_its_passkey_and_reports_first() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 5 << 20)).await;
    let mut conn = gw.accept().await;
    let h = conn.handshakes().await;
    assert_eq!(h.info_hash, CONTROL_INFO_HASH);
    assert!(h.supports_extensions());
    assert_eq!(&h.peer_id[..8], b"-RT0100-");
    let hello = conn.node_hello().await;
    assert_eq!(hello.ext_id, raidtorrent_peer::NODE_EXT_ID);
    assert_eq!(hello.data_port, Some(node.listen_addr().port()));
    let f = &hello.facts;
    assert_eq!(
        (f.ver, f.node, f.zone.as_str(), f.capacity, f.free),
        (2, NODE_ID, "test/loopback", 5 << 20, 5 << 20)
    );
    let t = conn.transcript.unwrap();
    assert!(auth::verify_node_proof(PASSKEY, &t, &f.proof));
    assert!(!auth::verify_node_proof(
        "fedcba9876543210fedcba9876543210",
        &t,
        &f.proof
    ));
    // Nothing but the extended handshake before welcome.
    conn.welcome(auth::gateway_proof(PASSKEY, &t)).await;
    let first = conn.recv().await;
    assert_eq!(first.seq, 1, "the node's first placement message");
    let Message::Report(r) = first.body else {
        panic!("first message is {first:?}")
    };
    assert!(r.full && r.held.is_empty());
    assert_eq!((r.capacity, r.used), (5 << 20, 0));
    assert!(r.free > 0);
    stop_node(node).await;
    // The node says bye on shutdown.
    let bye = conn.recv().await;
    assert!(
        matches!(
            bye.body,
            Message::Bye {
                code: ByeCode::Shutdown,
                ..
            }
        ),
        "{bye:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_the_passkey_is_not_believed() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let mut conn = gw.accept().await;
    conn.handshakes().await;
    conn.node_hello().await;
    // Tagged right, but its proof is made with another passkey.
    let forged = auth::gateway_proof(
        "fedcba9876543210fedcba9876543210",
        &conn.transcript.unwrap(),
    );
    conn.welcome(forged).await;
    // A directive after a forged welcome is not obeyed: the node hangs up.
    let shard = shard(20_000, 1);
    conn.send(hold(&shard, vec![])).await;
    assert!(conn.closed_by_node().await);
    // ... and tries again later, as after any failure.
    let (_conn, _) = gw.accept_welcomed().await;
    assert!(!dir
        .path()
        .join("torrents")
        .join(format!("{}.torrent", shard.ih))
        .exists());
    stop_node(node).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_unknown_messages_are_answered_or_ignored_as_the_bep_says() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);

    // A hold with neither torrent nor url: refused as malformed, naming its seq and info-hash.
    let ih = [0x61u8; 20];
    let seq = conn.next_seq();
    let bad_hold = format!("d2:ih20:{}3:seqi{seq}e1:t4:holde", "a".repeat(20)).into_bytes();
    conn.send_raw(&bad_hold).await;
    match conn.answer(seq).await {
        Message::Refuse {
            code: RefuseCode::Malformed,
            ih: Some(got),
            text,
            ..
        } => {
            assert_eq!(got.0, ih);
            assert!(text.contains("torrent, url"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // A drop with a short info-hash: refused as malformed without one.
    let seq = conn.next_seq();
    conn.send_raw(format!("d2:ih3:abc3:seqi{seq}e1:t4:drope").as_bytes())
        .await;
    assert!(matches!(
        conn.answer(seq).await,
        Message::Refuse {
            code: RefuseCode::Malformed,
            ih: None,
            ..
        }
    ));

    // Ignored without an answer, and the connection stays: garbage, no envelope, an unknown type,
    // unknown keys, another extended id, and a BEP 3 bitfield.
    conn.send_raw(b"garbage").await;
    conn.send_raw(b"d1:t4:holde").await;
    let s = conn.next_seq();
    conn.send_raw(format!("d4:freei1e3:seqi{s}e1:t7:migratee").as_bytes())
        .await;
    conn.send_on(9, b"d3:seqi1e1:t4:pinge").await;
    conn.write(&Frame::Other { id: 5, len: 3 }.to_bytes()).await;
    // A ping with an unknown key is still a ping: the pong proves everything above was skipped.
    let s = conn.next_seq();
    conn.send_raw(format!("d5:extrai1e3:seqi{s}e1:t4:pinge").as_bytes())
        .await;
    let pong = conn.recv().await;
    assert_eq!(
        pong.body,
        Message::Pong { re: s },
        "the first answer after the ignored messages"
    );

    // A frame above the limit ends the connection; the node comes back.
    conn.write(&((raidtorrent_proto::MAX_FRAME + 1) as u32).to_be_bytes())
        .await;
    assert!(conn.closed_by_node().await);
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);
    stop_node(node).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_control_connection_comes_back() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    for _ in 0..3 {
        let (mut conn, _) = gw.accept_welcomed().await;
        assert_eq!(conn.held().await, vec![]);
        drop(conn);
    }
    // And after a bye, too.
    let (mut conn, _) = gw.accept_welcomed().await;
    conn.send(Message::Bye {
        code: ByeCode::Other("maintenance".into()),
        text: "restarting".into(),
    })
    .await;
    assert!(conn.closed_by_node().await);
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);
    let seq = conn.send(Message::Ping).await;
    assert_eq!(conn.recv().await.body, Message::Pong { re: seq });
    let status = wait_for(DEADLINE, "the status file to count connects", || {
        let path = dir.path().join("status.json");
        async move {
            let s = raidtorrent_peer::status::Status::read(&path).ok()?;
            (s.gateways[0].connects >= 5 && s.gateways[0].state == "connected").then_some(s)
        }
    })
    .await;
    assert!(
        status.gateways[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("maintenance"),
        "{status:?}"
    );
    stop_node(node).await;
}

/// A directive injected into the connection without the session key (untagged, or tagged for
/// another position in the stream) is not obeyed: the node hangs up and dials again.
#[tokio::test(flavor = "multi_thread")]
async fn an_untagged_or_replayed_directive_is_not_obeyed() {
    let gw = TestGateway::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let shard = shard(20_000, 2);
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);
    let payload = raidtorrent_proto::Envelope::new(conn.next_seq(), hold(&shard, vec![]));
    conn.write(&frame::extended(
        raidtorrent_peer::NODE_EXT_ID,
        &payload.to_payload(),
    ))
    .await;
    assert!(conn.closed_by_node().await);
    // A ping sent twice with the same bytes: the first is answered, the copy ends the session.
    let (mut conn, _) = gw.accept_welcomed().await;
    assert_eq!(conn.held().await, vec![]);
    let ping = raidtorrent_proto::Envelope::new(conn.next_seq(), Message::Ping);
    let bytes = conn.sealed(&ping);
    conn.write(&[bytes.clone(), bytes].concat()).await;
    assert!(conn.closed_by_node().await);
    assert!(!dir
        .path()
        .join("torrents")
        .join(format!("{}.torrent", shard.ih))
        .exists());
    stop_node(node).await;
}
