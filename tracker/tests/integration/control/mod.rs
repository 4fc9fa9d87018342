//! Conformance of the gateway's control listener with BEP RT-0002, driven by a node written here
//! from the wire crate alone (raidtorrent-proto) over real TCP on 127.0.0.1, and by a stock
//! BitTorrent client (python3-libtorrent) dialling the control port.

pub(crate) mod node;
mod security;
mod stock;

use crate::common::*;
use node::*;
use raidtorrent_proto::{frame, ByeCode, Envelope, Frame, Handshake, Message, CONTROL_INFO_HASH};
use raidtorrent_tracker::control::{ControlError, InfoHash, Outcome, RefuseCode, Report};
use raidtorrent_tracker::registry::Registration;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Registered in the zone test nodes claim.
fn paris(capacity_limit: Option<u64>) -> Registration {
    Registration {
        zone: Some("eu/paris".into()),
        capacity_limit,
    }
}

fn report(held: &[u8], full: bool, gone: &[u8]) -> Report {
    Report {
        full,
        held: held.iter().map(|b| InfoHash([*b; 20])).collect(),
        gone: gone.iter().map(|b| InfoHash([*b; 20])).collect(),
        capacity: 10 << 30,
        used: 3 << 30,
        free: 20 << 30,
        transfers: Vec::new(),
    }
}

#[tokio::test]
async fn a_node_authenticates_reports_and_is_listed() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node_with("alpha", paris(None)).await;
    let mut reports = gw.hub.subscribe_reports();
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    let w = node.welcome.clone().unwrap();
    assert_eq!((w.keepalive_interval, w.report_interval), (1, 300));
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let listed = gw.hub.connected();
    assert_eq!(listed.len(), 1);
    let n = &listed[0];
    assert_eq!(n.node, id);
    assert_eq!(n.zone, "eu/paris");
    assert_eq!((n.capacity, n.free), (10 << 30, 9 << 30));
    assert_eq!(n.data_addr, Some("127.0.0.1:6881".parse().unwrap()));
    assert_eq!(n.peer_addr, node.stream.local_addr().unwrap());
    assert_eq!(n.client.as_deref(), Some("test-node 0.1.0"));
    assert!(n.report.is_none());

    node.send(Message::Report(report(&[1, 2], true, &[]))).await;
    let (from, r) = tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, id);
    assert_eq!(r, report(&[1, 2], true, &[]));
    // A delta report is applied to the held set the gateway keeps.
    node.send(Message::Report(report(&[3], false, &[1]))).await;
    let (_, r) = tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r,
        report(&[3], false, &[1]),
        "subscribers get the report as sent"
    );
    let n = gw.hub.node(id).unwrap();
    let held = n.held.unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.contains(&InfoHash([2; 20])) && held.contains(&InfoHash([3; 20])));
    assert_eq!(n.free, 7 << 30, "min(capacity - used, filesystem free)");
    assert!(n.last_report_at.is_some());
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_proofs_unknown_and_revoked_nodes_are_told_bye_auth() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let (other, other_key) = gw.node("beta").await;

    let mut n = RawNode::dial(gw.addr).await;
    let wrong = "0".repeat(32);
    assert_eq!(
        n.authenticate(id, &key, &wrong).await,
        Err(Refused::Bye(ByeCode::Auth))
    );
    // Another node's passkey does not open this node's connection.
    let mut n = RawNode::dial(gw.addr).await;
    assert_eq!(
        n.authenticate(id, &key, &other_key).await,
        Err(Refused::Bye(ByeCode::Auth))
    );
    let mut n = RawNode::dial(gw.addr).await;
    assert_eq!(
        n.authenticate(other + 100, &key, &key).await,
        Err(Refused::Bye(ByeCode::Auth))
    );
    gw.registry.revoke(other).await.unwrap();
    let mut n = RawNode::dial(gw.addr).await;
    assert_eq!(
        n.authenticate(other, &other_key, &other_key).await,
        Err(Refused::Bye(ByeCode::Auth))
    );
    assert!(gw.hub.connected().is_empty());
    // The right key still gets in.
    let mut good = RawNode::connect(gw.addr, id, &key).await;
    good.ping().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_revoked_node_is_disconnected_and_cannot_come_back() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move { hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await });
    assert!(matches!(
        node.message().await.unwrap().body,
        Message::Hold(_)
    ));
    // Revoking in the registry (as the admin API does) closes the live session by itself.
    gw.registry.revoke(id).await.unwrap();
    assert_eq!(node.expect_closed().await, Some(ByeCode::Auth));
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    assert_eq!(hold.await.unwrap(), Err(ControlError::Disconnected(id)));
    assert!(!gw.hub.disconnect(id), "no longer connected");
    let mut again = RawNode::dial(gw.addr).await;
    assert_eq!(
        again.authenticate(id, &key, &key).await,
        Err(Refused::Bye(ByeCode::Auth))
    );
    assert!(gw.hub.connected().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn holds_and_drops_resolve_with_the_nodes_answers() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);

    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move {
        hub.hold(id, InfoHash([5; 20]), b"d4:infod...e".to_vec(), WAIT)
            .await
    });
    let env = node.message().await.unwrap();
    let Message::Hold(h) = &env.body else {
        panic!("expected hold, got {env:?}")
    };
    assert_eq!(h.ih, InfoHash([5; 20]));
    assert_eq!(
        h.source,
        raidtorrent_proto::MetainfoSource::Torrent(b"d4:infod...e".to_vec())
    );
    assert_eq!(env.seq, 2, "welcome was 1");
    // An answer naming another info-hash does not resolve it; the right one does.
    node.send(Message::Ack {
        re: env.seq,
        ih: InfoHash([6; 20]),
    })
    .await;
    node.send(Message::Ack {
        re: env.seq,
        ih: InfoHash([5; 20]),
    })
    .await;
    assert_eq!(hold.await.unwrap(), Ok(Outcome::Acked));

    let hub = gw.hub.clone();
    let dropped = tokio::spawn(async move { hub.drop_shard(id, InfoHash([5; 20]), WAIT).await });
    let env = node.message().await.unwrap();
    assert_eq!(
        env.body,
        Message::Drop {
            ih: InfoHash([5; 20])
        }
    );
    node.send(Message::Refuse {
        re: env.seq,
        ih: Some(InfoHash([5; 20])),
        code: RefuseCode::Io,
        text: "disk full".into(),
    })
    .await;
    assert_eq!(
        dropped.await.unwrap(),
        Ok(Outcome::Refused {
            code: RefuseCode::Io,
            reason: "disk full".into()
        })
    );

    // A node that does not answer: the caller's deadline.
    let started = Instant::now();
    let r = gw
        .hub
        .hold(id, InfoHash([7; 20]), vec![1], Duration::from_millis(300))
        .await;
    assert_eq!(r, Err(ControlError::TimedOut(id)));
    assert!(started.elapsed() < WAIT);
    assert!(matches!(
        node.message().await.unwrap().body,
        Message::Hold(_)
    ));
    // A node nobody knows.
    assert_eq!(
        gw.hub.drop_shard(id + 1, InfoHash([7; 20]), WAIT).await,
        Err(ControlError::NotConnected(id + 1))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_resolves_outstanding_directives_as_disconnected() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move { hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await });
    assert!(matches!(
        node.message().await.unwrap().body,
        Message::Hold(_)
    ));
    drop(node);
    assert_eq!(hold.await.unwrap(), Err(ControlError::Disconnected(id)));
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    assert_eq!(
        gw.hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await,
        Err(ControlError::NotConnected(id))
    );
    gw.shutdown().await;
}

/// A live session is never evicted by a newcomer with the same credentials: the newcomer gets
/// `bye duplicate`. Once the old session has carried nothing authenticated for two keep-alive
/// intervals (a node whose connection died without a FIN), a new one takes over.
#[tokio::test]
async fn a_live_session_refuses_a_second_and_a_silent_one_is_replaced() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut first = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move { hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await });
    assert!(matches!(
        first.message().await.unwrap().body,
        Message::Hold(_)
    ));
    first.ping().await;
    let mut refused = RawNode::dial(gw.addr).await;
    assert_eq!(
        refused.authenticate(id, &key, &key).await,
        Err(Refused::Bye(ByeCode::Duplicate))
    );
    first.ping().await;
    assert_eq!(
        gw.hub.node(id).unwrap().peer_addr,
        first.stream.local_addr().unwrap()
    );

    // The first goes quiet; after two keep-alive intervals (2 s here) of its silence, and before
    // the three that close it, a new connection takes over.
    let started = Instant::now();
    let addr = gw.addr;
    let mut second = wait_for(WAIT, "a new connection to take over", || {
        let key = key.clone();
        async move {
            let mut n = RawNode::dial(addr).await;
            match n.authenticate(id, &key, &key).await {
                Ok(()) => Some(n),
                Err(Refused::Bye(ByeCode::Duplicate)) => None,
                Err(other) => panic!("refused: {other:?}"),
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_900), "{took:?}");
    assert_eq!(
        first.expect_closed().await,
        Some(ByeCode::Other("replaced".into()))
    );
    assert_eq!(hold.await.unwrap(), Err(ControlError::Disconnected(id)));
    let listed = gw.hub.connected();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].peer_addr, second.stream.local_addr().unwrap());
    // The new connection carries directives.
    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move { hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await });
    let env = second.message().await.unwrap();
    second
        .send(Message::Ack {
            re: env.seq,
            ih: InfoHash([5; 20]),
        })
        .await;
    assert_eq!(hold.await.unwrap(), Ok(Outcome::Acked));
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_messages_are_ignored_as_the_bep_says() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    // A type from a newer node, unknown keys, a payload that is no envelope, an extended id we
    // never advertised, a non-extended message id, an ack for nothing: all ignored.
    node.send(Message::Unknown {
        t: "audit-v9".into(),
    })
    .await;
    let ext = node.gateway_ext;
    node.write_tagged(ext, b"d5:extrai1e3:seqi9e1:t4:pinge")
        .await;
    node.write_tagged(ext, b"not bencode").await;
    node.write_tagged(ext, b"d1:t4:pinge").await;
    node.write_tagged(ext.wrapping_add(1), b"d1:t4:ping3:seqi1ee")
        .await;
    node.write(&Frame::Other { id: 2, len: 1 }.to_bytes()).await;
    node.write(&frame::keep_alive()).await;
    node.send(Message::Ack {
        re: 99,
        ih: InfoHash([1; 20]),
    })
    .await;
    // Only the ping with unknown keys was answered (`seq` 9), then ours.
    let env = node.message().await.unwrap();
    assert_eq!(env.body, Message::Pong { re: 9 });
    node.ping().await;
    // A later extended handshake moves the id the gateway sends on.
    node.write_tagged(0, b"d1:md12:rt_placementi9eee").await;
    let seq = node.send(Message::Ping).await;
    let Some(Frame::Extended { id: 9, payload }) = node.frame().await else {
        panic!("expected the pong on id 9")
    };
    let body = node.auth.as_mut().unwrap().open(9, &payload).unwrap();
    assert_eq!(
        Envelope::parse(body).unwrap().body,
        Message::Pong { re: seq }
    );
    assert!(gw.hub.node(id).is_some());
    gw.shutdown().await;
}

/// Bytes a stray client might send, each answered by a clean close and nothing else.
#[tokio::test]
async fn garbage_and_wrong_handshakes_are_closed_cleanly() {
    let gw = Gateway::start(quick()).await;
    let mut wrong_hash = Handshake::control([1; 20]);
    wrong_hash.info_hash = [0xab; 20];
    let mut no_ext = Handshake::control([1; 20]);
    no_ext.reserved = [0; 8];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "http",
            b"GET /announce HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("random", random_bytes(4096, 3)),
        ("bad protocol", b"\x13BitTorrent protocoX........".to_vec()),
        ("wrong info-hash", wrong_hash.to_bytes().to_vec()),
        ("no extension bit", no_ext.to_bytes().to_vec()),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await;
        let read = read.unwrap_or_else(|_| panic!("{what}: not closed"));
        assert!(read.is_ok(), "{what}: closed with a reset: {read:?}");
        assert!(got.is_empty(), "{what}: answered {got:?}");
    }
    // A valid handshake followed by an oversized frame before authentication: we get the
    // gateway's handshake and hello, then the close.
    let mut n = RawNode::dial(gw.addr).await;
    n.write(&Handshake::control([2; 20]).to_bytes()).await;
    assert!(n.handshake().await.is_some());
    assert!(matches!(
        n.frame().await,
        Some(Frame::Extended { id: 0, .. })
    ));
    n.write(&[0xff, 0xff, 0xff, 0xff]).await;
    assert_eq!(n.frame().await, None);
    // An extended handshake without rt_placement (a stock client's) is closed without a word.
    let mut n = RawNode::dial(gw.addr).await;
    n.write(&Handshake::control([2; 20]).to_bytes()).await;
    assert!(n.handshake().await.is_some());
    assert!(matches!(
        n.frame().await,
        Some(Frame::Extended { id: 0, .. })
    ));
    n.write(&frame::extended(0, b"d1:md11:ut_metadatai2eee"))
        .await;
    assert_eq!(n.frame().await, None);
    // An authenticated node that sends a frame above the limit is told `bye malformed`.
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    let too_big = (raidtorrent_proto::MAX_FRAME as u32 + 1).to_be_bytes();
    node.write(&too_big).await;
    assert_eq!(node.expect_closed().await, Some(ByeCode::Malformed));
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    // The listener is unharmed.
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    node.ping().await;
    // A report it cannot parse is not skipped: later deltas would build on a wrong held set.
    let ext = node.gateway_ext;
    node.write_tagged(ext, b"d4:fulli0e4:held3:abc3:seqi9e1:t6:reporte")
        .await;
    assert_eq!(node.expect_closed().await, Some(ByeCode::Malformed));
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn silent_peers_are_closed_and_live_ones_get_keep_alives() {
    let gw = Gateway::start(quick()).await;
    // Says nothing at all: closed after the handshake deadline (2 s).
    let mut mute = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, mute.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1_900));
    // Authenticated, then silent: keep-alives arrive every second, the close after three.
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    let started = Instant::now();
    assert_eq!(node.frame().await, Some(Frame::KeepAlive));
    assert_eq!(node.expect_closed().await, None);
    let silent = started.elapsed();
    assert!(silent >= Duration::from_millis(2_500), "{silent:?}");
    assert!(!gw
        .hub
        .node(id)
        .is_some_and(|n| n.peer_addr == node.stream.local_addr().unwrap()));
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_says_bye_and_resolves_outstanding_directives() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let hub = gw.hub.clone();
    let hold = tokio::spawn(async move { hub.hold(id, InfoHash([5; 20]), vec![1], WAIT).await });
    assert!(matches!(
        node.message().await.unwrap().body,
        Message::Hold(_)
    ));
    let hub = gw.hub.clone();
    gw.shutdown().await;
    assert_eq!(node.expect_closed().await, Some(ByeCode::Shutdown));
    assert_eq!(hold.await.unwrap(), Err(ControlError::Disconnected(id)));
    assert!(hub.connected().is_empty());
}

#[tokio::test]
async fn control_liveness_reaches_the_reliability_record() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    node.ping().await;
    drop(node);
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    gw.recorder.flush().await.unwrap();
    let r = gw
        .registry
        .report(id, raidtorrent_tracker::registry::unix_now())
        .await
        .unwrap();
    assert!(r.first_seen.is_some() && r.last_seen.is_some());
    assert!(r.announces >= 2, "seen at connect and at close: {r:?}");
    assert_eq!(r.last_addr.as_deref(), Some("127.0.0.1:6881"));
    let torrents = r.torrents.unwrap();
    assert_eq!(torrents[0].info_hash, hex::encode(CONTROL_INFO_HASH));
    gw.shutdown().await;
}

/// An announce for `ih` from a stranger at 127.0.0.9:7000, as a stock client sends it.
fn stranger_announce(
    tracker: &raidtorrent_tracker::tracker::Tracker,
    ih: u8,
) -> (Vec<std::net::SocketAddr>, u32) {
    use raidtorrent_tracker::protocol::{Event, PeerId};
    use raidtorrent_tracker::tracker::AnnounceInput;
    let req = AnnounceInput {
        passkey: None,
        info_hash: InfoHash([ih; 20]),
        peer_id: PeerId(*b"-TR3000-stranger0000"),
        addr: "127.0.0.9:7000".parse().unwrap(),
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        numwant: None,
        family: raidtorrent_tracker::swarm::Family::Any,
    };
    let mut out = Vec::new();
    let answer = tracker.announce(&req, &mut out).unwrap();
    (out.iter().map(|p| p.addr).collect(), answer.counts.complete)
}

/// Nodes do not announce what they hold: the tracker names them from their reports, for as long
/// as they are connected and report the shard.
#[tokio::test]
async fn the_tracker_names_the_holders_nodes_report() {
    use raidtorrent_tracker::config::AnnounceConfig;
    use raidtorrent_tracker::tracker::Tracker;
    let gw = Gateway::start(quick()).await;
    let tracker = Tracker::new(
        gw.registry.clone(),
        gw.recorder.clone(),
        AnnounceConfig::default(),
        true,
    );
    tracker.answer_from_reports(gw.hub.clone());
    let (id, key) = gw.node_with("alpha", paris(None)).await;
    let mut reports = gw.hub.subscribe_reports();
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    assert!(gw.hub.wait_connected(id, WAIT).await);
    let data: std::net::SocketAddr = "127.0.0.1:6881".parse().unwrap();
    assert_eq!(
        stranger_announce(&tracker, 1),
        (vec![], 0),
        "nothing reported yet"
    );

    node.send(Message::Report(report(&[1, 2], true, &[]))).await;
    tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stranger_announce(&tracker, 1), (vec![data], 1));
    assert_eq!(stranger_announce(&tracker, 2), (vec![data], 1));
    assert_eq!(stranger_announce(&tracker, 3), (vec![], 0));
    let scraped = tracker.scrape(None, &[InfoHash([2; 20])]).unwrap();
    assert_eq!(scraped[0].complete, 1);

    // A delta report that loses shard 1 takes the node out of its swarm.
    node.send(Message::Report(report(&[3], false, &[1]))).await;
    tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stranger_announce(&tracker, 1), (vec![], 0));
    assert_eq!(stranger_announce(&tracker, 3), (vec![data], 1));

    // The stranger is in shard 3's swarm now and is not handed its own address.
    let (peers, _) = stranger_announce(&tracker, 3);
    assert_eq!(peers, vec![data]);

    // A node that is gone is named no more.
    drop(node);
    assert!(gw.hub.wait_disconnected(id, WAIT).await);
    assert_eq!(stranger_announce(&tracker, 2), (vec![], 0));
    gw.shutdown().await;
}
