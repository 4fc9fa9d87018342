//! What an attacker who can watch, record and rewrite a control connection tries, and what the
//! gateway does (RT-0002 section 4 and "Security considerations"): recorded handshakes do not
//! authenticate again, a frame that was forged, altered, replayed or sent untagged ends the
//! session, a node's hello cannot be rewritten, and no credential of one node opens another's.

use super::node::*;
use raidtorrent_proto::auth::{self, SessionKeys};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{
    frame, ByeCode, Envelope, Frame, GatewayHello, Handshake, Message, NodeFacts, NodeHello,
};
use raidtorrent_tracker::registry::Registration;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A node authenticates; an eavesdropper who recorded every byte it sent (BEP 3 handshake,
/// extended handshake with the proof, tagged frames) replays them on a new connection: the
/// gateway's fresh nonce makes the proof worthless, and the live session is untouched.
#[tokio::test]
async fn a_replayed_control_handshake_is_refused() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    node.ping().await;
    let recorded = node.sent.clone();

    let mut replay = RawNode::dial(gw.addr).await;
    replay.write(&recorded).await;
    assert!(replay.handshake().await.is_some());
    assert!(matches!(
        replay.frame().await,
        Some(Frame::Extended { id: 0, .. })
    ));
    assert_eq!(replay.expect_closed().await, Some(ByeCode::Auth));
    node.ping().await;
    assert_eq!(
        gw.hub.node(id).unwrap().peer_addr,
        node.stream.local_addr().unwrap()
    );
    gw.shutdown().await;
}

/// After the handshake, each of these ends the session with `bye malformed`, and the node is out
/// of the map: a flipped payload bit, a flipped tag bit, a frame replayed on its own connection,
/// a frame with no tag.
#[tokio::test]
async fn a_forged_or_replayed_frame_closes_the_session() {
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("alpha").await;
    let ping = |seq: u64| Envelope::new(seq, Message::Ping).to_payload();
    type Forge = fn(&mut RawNode, Vec<u8>) -> Vec<u8>;
    let cases: [(&str, Forge); 4] = [
        ("altered payload", |_, mut f| {
            f[8] ^= 1;
            f
        }),
        ("altered tag", |_, mut f| {
            let last = f.len() - 1;
            f[last] ^= 0x80;
            f
        }),
        ("no tag", |n, _| {
            frame::extended(n.gateway_ext, &Envelope::new(9, Message::Ping).to_payload())
        }),
        ("replayed", |_, f| {
            // Sent once as it should be, then again.
            [f.clone(), f].concat()
        }),
    ];
    for (what, forge) in cases {
        let mut node = RawNode::connect(gw.addr, id, &key).await;
        node.ping().await;
        let ext = node.gateway_ext;
        let good = node.seal(ext, &ping(2));
        let bytes = forge(&mut node, good);
        node.write(&bytes).await;
        let mut bye = None;
        while let Some(f) = node.frame().await {
            if let Frame::Extended { id, payload } = f {
                let body = node.auth.as_mut().unwrap().open(id, &payload).unwrap();
                match Envelope::parse(body).unwrap().body {
                    Message::Bye { code, .. } => bye = Some(code),
                    Message::Pong { .. } if what == "replayed" => {}
                    other => panic!("{what}: got {other:?}"),
                }
            }
        }
        assert_eq!(bye, Some(ByeCode::Malformed), "{what}");
        assert!(gw.hub.wait_disconnected(id, WAIT).await, "{what}");
    }
    // A node that plays by the rules still gets in.
    RawNode::connect(gw.addr, id, &key).await.ping().await;
    gw.shutdown().await;
}

/// Node A's passkey with node B's id, A's announce token in place of its passkey, and A's hello
/// rewritten in flight (another zone, a bigger capacity) are all refused with `bye auth`.
#[tokio::test]
async fn no_credential_of_one_node_opens_another_and_hellos_cannot_be_rewritten() {
    let gw = Gateway::start(quick()).await;
    let (a, key_a) = gw.node("alpha").await;
    let (b, _) = gw.node("beta").await;
    let token_a = auth::announce_token(&key_a);
    for (what, claimed, signing) in [
        ("A's passkey, B's id", b, key_a.as_str()),
        ("A's announce token as its passkey", a, token_a.as_str()),
    ] {
        let mut n = RawNode::dial(gw.addr).await;
        assert_eq!(
            n.authenticate(claimed, &key_a, signing).await,
            Err(Refused::Bye(ByeCode::Auth)),
            "{what}"
        );
    }
    for rewrite in [
        (|f: &mut NodeFacts| f.zone = "elsewhere".into()) as fn(&mut NodeFacts),
        |f| f.capacity *= 10,
        |f| f.free += 1,
    ] {
        assert_eq!(
            rewritten_hello(&gw, a, &key_a, rewrite).await,
            Some(ByeCode::Auth)
        );
    }
    assert!(gw.hub.connected().is_empty());
    gw.shutdown().await;
}

/// Signs a hello as node `id` would, changes its facts with `rewrite` as a man in the middle
/// would, and sends it; the gateway's last word.
async fn rewritten_hello(
    gw: &Gateway,
    id: i64,
    key: &str,
    rewrite: fn(&mut NodeFacts),
) -> Option<ByeCode> {
    let mut n = RawNode::dial(gw.addr).await;
    n.write(&Handshake::control([3; 20]).to_bytes()).await;
    n.handshake().await?;
    let Some(Frame::Extended { id: 0, payload }) = n.frame().await else {
        panic!("no gateway hello")
    };
    let theirs = GatewayHello::parse(&payload).unwrap();
    let mut hello = NodeHello {
        ext_id: NODE_EXT,
        client: None,
        data_port: Some(6881),
        facts: NodeFacts {
            ver: 2,
            node: id as u64,
            nonce: auth::fresh_nonce(),
            proof: [0; 32],
            zone: "eu/paris".into(),
            capacity: 10 << 30,
            free: 9 << 30,
        },
    };
    let t = hello.sign(key, &theirs.nonce, &payload);
    rewrite(&mut hello.facts);
    n.write(&frame::extended(0, &hello.to_payload())).await;
    // Had it passed, this is what the welcome would be tagged with.
    n.auth = Some(FrameAuth::new(&SessionKeys::derive(key, &t), Role::Node));
    n.expect_closed().await
}

/// The zone a node is placed by is the one its operator registered: a node claiming another is
/// refused with `bye facts`; one claiming none gets the registered zone; one with no registered
/// zone is in no zone whatever it claims. A capacity above the registered limit is cut to it, in
/// the hello and in every report.
#[tokio::test]
async fn claims_are_checked_against_the_registered_facts() {
    let gw = Gateway::start(quick()).await;
    let registered = Registration {
        zone: Some("eu/paris".into()),
        capacity_limit: Some(4 << 30),
    };
    let (id, key) = gw.node_with("alpha", registered).await;
    let mut liar = RawNode::dial(gw.addr).await;
    liar.zone = "us/east".into();
    assert_eq!(
        liar.authenticate(id, &key, &key).await,
        Err(Refused::Bye(ByeCode::Facts))
    );
    assert!(gw.hub.connected().is_empty());

    let mut quiet = RawNode::dial(gw.addr).await;
    quiet.zone = String::new();
    quiet.authenticate(id, &key, &key).await.unwrap();
    let n = gw.hub.node(id).unwrap();
    assert_eq!(n.zone, "eu/paris");
    assert_eq!(
        (n.capacity, n.free),
        (4 << 30, 4 << 30),
        "claimed 10 GiB, 9 free"
    );
    let mut reports = gw.hub.subscribe_reports();
    quiet
        .send(Message::Report(raidtorrent_proto::Report {
            full: true,
            capacity: 10 << 30,
            used: 1 << 30,
            free: 20 << 30,
            ..Default::default()
        }))
        .await;
    tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    let n = gw.hub.node(id).unwrap();
    assert_eq!((n.capacity, n.free), (4 << 30, 3 << 30));
    drop(quiet);
    assert!(gw.hub.wait_disconnected(id, WAIT).await);

    let (other, other_key) = gw.node("beta").await;
    let mut unzoned = RawNode::dial(gw.addr).await;
    unzoned.zone = "eu/lyon".into();
    unzoned
        .authenticate(other, &other_key, &other_key)
        .await
        .unwrap();
    assert_eq!(gw.hub.node(other).unwrap().zone, "");
    gw.shutdown().await;
}

/// 1,600 connections from eight addresses open the control listener and say nothing: 64 per
/// address wait for their handshake, the rest are closed at once, and an honest node still
/// authenticates at once. Every silent one is gone after the handshake timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_silent_connections_does_not_keep_a_node_out() {
    raidtorrent_tracker::net::raise_open_file_limit().unwrap();
    let gw = Gateway::start(quick()).await;
    let (id, key) = gw.node("honest").await;
    let mut silent = Vec::new();
    for i in 0..1600 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("127.0.3.{}:0", 1 + i % 8).parse().unwrap())
            .unwrap();
        silent.push(socket.connect(gw.addr).await.unwrap());
    }
    let node = raidtorrent_testkit::within(
        WAIT,
        "an honest node to authenticate beside the flood",
        RawNode::connect(gw.addr, id, &key),
    )
    .await;
    assert!(node.welcome.is_some());
    raidtorrent_testkit::within(
        Duration::from_secs(20),
        "the silent connections to be closed",
        async {
            for s in &mut silent {
                let mut buf = [0u8; 64];
                let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
                assert!(
                    matches!(n, Ok(Ok(0)) | Ok(Err(_))),
                    "a silent connection stayed"
                );
            }
        },
    )
    .await;
    gw.shutdown().await;
}
