//! A raw peer-wire gateway written against RT-0002 with `raidtorrent-proto`, a librqbit seeder for
//! shards made with `raidtorrent-codec`, and a node under test. Everything binds port 0 on its own
//! loopback address; every wait has a deadline ([`DEADLINE`], with `raidtorrent-testkit`'s waits).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use librqbit::Session;
use raidtorrent_codec::ShardInfo;
use raidtorrent_peer::config::{Config, GatewayConfig, Limits};
use raidtorrent_peer::size::ByteSize;
use raidtorrent_peer::RunningNode;
use raidtorrent_proto::auth::{self, SessionKeys, Transcript};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{
    frame, Envelope, Frame, GatewayHello, Handshake, InfoHash, Message, NodeHello, Parsed, Welcome,
};
pub use raidtorrent_testkit::{
    free_port, python_libtorrent, random_bytes, swarm, wait_for, within,
};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PASSKEY: &str = "0123456789abcdef0123456789abcdef";
pub const NODE_ID: u64 = 7;
/// The extended id the test gateway receives placement messages on.
pub const GATEWAY_EXT_ID: u8 = 3;
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestGateway {
    pub listener: TcpListener,
}

impl TestGateway {
    pub async fn bind() -> Self {
        TestGateway {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    pub async fn accept(&self) -> GatewayConn {
        let (stream, _) = within(DEADLINE, "the node to dial", self.listener.accept())
            .await
            .unwrap();
        GatewayConn {
            stream,
            buf: Vec::new(),
            seq: 0,
            nonce: auth::fresh_nonce(),
            hello: Vec::new(),
            transcript: None,
            auth: None,
            last_report: None,
            held: HashSet::new(),
        }
    }

    /// Accepts a node and authenticates it; returns the connection after `welcome`.
    pub async fn accept_welcomed(&self) -> (GatewayConn, NodeHello) {
        let mut conn = self.accept().await;
        let hello = conn.authenticate().await;
        (conn, hello)
    }
}

pub struct GatewayConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    seq: u64,
    pub nonce: auth::Nonce,
    /// Our extended handshake as sent.
    hello: Vec<u8>,
    /// The handshake transcript, once the node's extended handshake is in.
    pub transcript: Option<Transcript>,
    /// Frame authentication, from our `welcome` on.
    auth: Option<FrameAuth>,
    /// The newest report seen so far, with `held` the node's whole held set as the reports so
    /// far built it up (RT-0002: a full report, then deltas).
    pub last_report: Option<raidtorrent_proto::Report>,
    held: HashSet<InfoHash>,
}

impl GatewayConn {
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads the node's handshake and answers with ours and our extended handshake.
    pub async fn handshakes(&mut self) -> Handshake {
        let h = within(DEADLINE, "the node's handshake", async {
            loop {
                if let Parsed::Done(h, used) = Handshake::parse(&self.buf).unwrap() {
                    self.buf.drain(..used);
                    return h;
                }
                assert!(self.fill().await, "closed before the handshake");
            }
        })
        .await;
        h.check_control().unwrap();
        self.stream
            .write_all(&Handshake::control(*b"-RTGW01-testgateway0").to_bytes())
            .await
            .unwrap();
        let hello = GatewayHello {
            ext_id: GATEWAY_EXT_ID,
            client: Some("test gateway".into()),
            ver: 2,
            nonce: self.nonce,
        };
        self.hello = hello.to_payload();
        self.write(&frame::extended(0, &self.hello.clone())).await;
        h
    }

    /// The next frame, or `None` when the node closed the connection.
    pub async fn frame(&mut self) -> Option<Frame> {
        within(DEADLINE, "a frame from the node", async {
            loop {
                if let Parsed::Done(f, used) = frame::decode(&self.buf).unwrap() {
                    self.buf.drain(..used);
                    return Some(f);
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
    }

    /// True once the node has closed the connection (anything it still sends is skipped).
    pub async fn closed_by_node(&mut self) -> bool {
        while self.frame().await.is_some() {}
        true
    }

    /// The node's extended handshake; its transcript is kept.
    pub async fn node_hello(&mut self) -> NodeHello {
        loop {
            if let Some(Frame::Extended { id: 0, payload }) = self.frame().await {
                let hello = NodeHello::parse(&payload).unwrap();
                let unsigned = NodeHello::unsigned_payload(&payload).unwrap();
                self.transcript = Some(Transcript::new(
                    &self.nonce,
                    &hello.facts.nonce,
                    &self.hello,
                    &unsigned,
                ));
                return hello;
            }
        }
    }

    /// Handshakes, checks the node's proof, and welcomes it.
    pub async fn authenticate(&mut self) -> NodeHello {
        self.handshakes().await;
        let hello = self.node_hello().await;
        let t = self.transcript.unwrap();
        assert!(
            auth::verify_node_proof(PASSKEY, &t, &hello.facts.proof),
            "the node's proof does not verify"
        );
        self.welcome(auth::gateway_proof(PASSKEY, &t)).await;
        hello
    }

    /// Sends `welcome` with `proof`, tagged with the keys of the node's passkey: from here on
    /// every extended message is tagged both ways.
    pub async fn welcome(&mut self, proof: auth::Proof) {
        let keys = SessionKeys::derive(PASSKEY, &self.transcript.expect("the node's hello"));
        self.auth = Some(FrameAuth::new(&keys, Role::Gateway));
        self.send(Message::Welcome(Welcome {
            proof,
            ver: 2,
            report_interval: 3600,
            keepalive_interval: 30,
        }))
        .await;
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a placement message on the node's id; returns its seq.
    pub async fn send(&mut self, body: Message) -> u64 {
        self.seq += 1;
        let payload = Envelope::new(self.seq, body).to_payload();
        self.send_raw(&payload).await;
        self.seq
    }

    /// Sends a raw payload as a placement message (tagged once `welcome` is out).
    pub async fn send_raw(&mut self, payload: &[u8]) {
        self.send_on(raidtorrent_peer::NODE_EXT_ID, payload).await;
    }

    /// The tagged frame of a placement message on the node's id, not sent.
    pub fn sealed(&mut self, env: &Envelope) -> Vec<u8> {
        let auth = self.auth.as_mut().expect("welcomed");
        auth.seal(raidtorrent_peer::NODE_EXT_ID, &env.to_payload())
    }

    /// Sends a raw payload on extended id `id` (tagged once `welcome` is out).
    pub async fn send_on(&mut self, id: u8, payload: &[u8]) {
        let bytes = match self.auth.as_mut() {
            Some(auth) => auth.seal(id, payload),
            None => frame::extended(id, payload),
        };
        self.write(&bytes).await;
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next placement message from the node (pings answered, other frames skipped).
    pub async fn recv(&mut self) -> Envelope {
        loop {
            match self.frame().await.expect("the node closed the connection") {
                Frame::Extended {
                    id: GATEWAY_EXT_ID,
                    payload,
                } => {
                    let auth = self.auth.as_mut().expect("welcomed");
                    let env =
                        Envelope::parse(auth.open(GATEWAY_EXT_ID, &payload).unwrap()).unwrap();
                    if let Message::Report(r) = &env.body {
                        self.last_report = Some(self.apply(r));
                    }
                    if env.body == Message::Ping {
                        self.send(Message::Pong { re: env.seq }).await;
                        continue;
                    }
                    return env;
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Applies a report to the held set, as a gateway does; returns it made full.
    fn apply(&mut self, r: &raidtorrent_proto::Report) -> raidtorrent_proto::Report {
        r.apply(&mut self.held);
        let mut held: Vec<InfoHash> = self.held.iter().copied().collect();
        held.sort();
        raidtorrent_proto::Report {
            full: true,
            held,
            gone: Vec::new(),
            ..r.clone()
        }
    }

    /// Skips messages until `pick` accepts one (the node's pings alone do not keep this waiting).
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&Message) -> Option<T>) -> T {
        within(DEADLINE, "an expected message", async {
            loop {
                let env = self.recv().await;
                if let Some(v) = pick(&env.body) {
                    return v;
                }
            }
        })
        .await
    }

    /// The answers to several directives, which may come in any order.
    pub async fn answers(&mut self, seqs: &[u64]) -> Vec<Message> {
        let mut got = std::collections::BTreeMap::new();
        while got.len() < seqs.len() {
            let (re, m) = self
                .recv_until(|m| match m {
                    Message::Ack { re, .. } | Message::Refuse { re, .. } if seqs.contains(re) => {
                        Some((*re, m.clone()))
                    }
                    _ => None,
                })
                .await;
            got.insert(re, m);
        }
        seqs.iter().map(|s| got[s].clone()).collect()
    }

    /// The newest report once it satisfies `pred` (reports are full, so a newer one supersedes).
    pub async fn report_where(
        &mut self,
        pred: impl Fn(&raidtorrent_proto::Report) -> bool,
    ) -> raidtorrent_proto::Report {
        if let Some(r) = self.last_report.clone().filter(|r| pred(r)) {
            return r;
        }
        loop {
            let r = self.next_report().await;
            if pred(&r) {
                return r;
            }
        }
    }

    /// The next report, made full (`held` the whole held set).
    pub async fn next_report(&mut self) -> raidtorrent_proto::Report {
        self.recv_until(|m| matches!(m, Message::Report(_)).then_some(()))
            .await;
        self.last_report
            .clone()
            .expect("a report was just received")
    }

    /// The answer (ack or refuse) to directive `seq`.
    pub async fn answer(&mut self, seq: u64) -> Message {
        self.recv_until(|m| match m {
            Message::Ack { re, .. } | Message::Refuse { re, .. } if *re == seq => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// The node's held set after its next report.
    pub async fn held(&mut self) -> Vec<InfoHash> {
        self.next_report().await.held
    }
}

/// A shard: random bytes and its private shard torrent.
pub struct TestShard {
    pub data: Vec<u8>,
    pub info: ShardInfo,
    pub torrent: Vec<u8>,
    pub ih: InfoHash,
}

pub fn shard(len: usize, seed: u64) -> TestShard {
    let data = random_bytes(len, seed);
    let piece_length = 16 * 1024;
    let info = ShardInfo {
        name: ShardInfo::random_name(),
        length: len as u64,
        piece_length,
        pieces: data
            .chunks(piece_length as usize)
            .map(|c| Sha1::digest(c).into())
            .collect(),
    };
    // No tracker runs in these tests: peers come from the hold's `peers`.
    let torrent = info.to_torrent(&[vec![format!("http://127.0.0.1:1/announce/{PASSKEY}")]]);
    let ih = info.info_hash();
    TestShard {
        data,
        info,
        torrent,
        ih,
    }
}

/// A librqbit session on 127.0.0.2 seeding shards from its own directory.
pub struct Seeder {
    pub session: Arc<Session>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Seeder {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (session, addr) = swarm::session(dir.path(), Ipv4Addr::new(127, 0, 0, 2)).await;
        Seeder { session, addr, dir }
    }

    pub async fn seed(&self, shard: &TestShard) {
        std::fs::write(self.dir.path().join(&shard.info.name), &shard.data).unwrap();
        swarm::seed(&self.session, &shard.torrent, DEADLINE).await;
    }

    pub async fn stop(self) {
        self.session.stop().await;
    }
}

pub fn node_config(dir: &Path, gateway: SocketAddr, quota: u64) -> Config {
    Config {
        data_dir: dir.to_owned(),
        quota: ByteSize(quota),
        zone: "test/loopback".into(),
        listen: "127.0.0.3:0".parse().unwrap(),
        gateways: vec![GatewayConfig {
            name: Some("test".into()),
            control: gateway.to_string(),
            cloud: None,
            node_id: NODE_ID,
            passkey: PASSKEY.into(),
            tls_cert: None,
        }],
        limits: Limits {
            reconnect_base_ms: 50,
            reconnect_max_secs: 1,
            status_interval_secs: 1,
            ..Limits::default()
        },
        announce_held: false,
    }
}

pub async fn start_node(config: Config) -> RunningNode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    within(DEADLINE, "the node to start", RunningNode::start(config))
        .await
        .unwrap()
}

/// Stops a node and checks that every task it spawned has ended.
pub async fn stop_node(node: RunningNode) {
    let left = within(DEADLINE, "the node to stop", node.shutdown()).await;
    assert!(left.is_empty(), "tasks still running: {left:?}");
}

/// A hold carrying the torrent and the seeder as a peer.
pub fn hold(shard: &TestShard, peers: Vec<SocketAddr>) -> Message {
    Message::Hold(raidtorrent_proto::Hold {
        ih: shard.ih,
        source: raidtorrent_proto::MetainfoSource::Torrent(shard.torrent.clone()),
        peers,
    })
}
