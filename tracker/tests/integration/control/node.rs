//! The harness of the control tests: a control listener on 127.0.0.1:0, and a node written from
//! the wire crate alone.

use raidtorrent_proto::auth::{self, SessionKeys};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{
    frame, ByeCode, Envelope, Frame, GatewayHello, Handshake, Message, NodeFacts, NodeHello,
    Parsed, Welcome,
};
use raidtorrent_tracker::control::{ControlConfig, ControlHub};
use raidtorrent_tracker::registry::records::{recorder, RecorderHandle};
use raidtorrent_tracker::registry::{Registration, Registry};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(10);

/// A control listener on 127.0.0.1:0 with an in-memory registry and a running recorder.
pub struct Gateway {
    pub hub: ControlHub,
    pub addr: SocketAddr,
    pub registry: Registry,
    pub recorder: RecorderHandle,
    pub stop: oneshot::Sender<()>,
    pub server: JoinHandle<()>,
    pub stop_recorder: watch::Sender<bool>,
    pub recorder_task: JoinHandle<()>,
}

impl Gateway {
    pub async fn start(config: ControlConfig) -> Gateway {
        config.validate().unwrap();
        let registry = Registry::open_in_memory().await.unwrap();
        let (rec, recorder) = recorder(registry.clone(), 1024, Duration::from_millis(50))
            .await
            .unwrap();
        let (stop_recorder, mut rec_rx) = watch::channel(false);
        let recorder_task = tokio::spawn(rec.run(async move {
            let _ = rec_rx.wait_for(|s| *s).await;
        }));
        let hub = ControlHub::new(registry.clone(), recorder.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let hub = hub.clone();
            async move {
                hub.serve(listener, None, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        Gateway {
            hub,
            addr,
            registry,
            recorder,
            stop,
            server,
            stop_recorder,
            recorder_task,
        }
    }

    /// Stops the listener and checks that it returns (its connection tasks included) in time.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        let _ = self.stop_recorder.send(true);
        self.recorder_task.await.unwrap();
    }

    /// A registered node with no zone or capacity limit assigned: (id, passkey).
    pub async fn node(&self, name: &str) -> (i64, String) {
        self.node_with(name, Registration::default()).await
    }

    /// A registered node with the facts its operator assigned: (id, passkey).
    pub async fn node_with(&self, name: &str, facts: Registration) -> (i64, String) {
        let n = self.registry.register_node(name, &facts).await.unwrap();
        (n.node.id, n.passkey)
    }
}

/// Fast keep-alives so silence is detected within seconds.
pub fn quick() -> ControlConfig {
    ControlConfig {
        handshake_timeout_ms: 2_000,
        keepalive_interval_secs: 1,
        ..ControlConfig::default()
    }
}

/// How a connection attempt ended before `welcome`.
#[derive(Debug, PartialEq)]
pub enum Refused {
    Bye(ByeCode),
    Closed,
}

/// A node that speaks the control protocol from the wire crate, nothing else.
pub struct RawNode {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    /// The extended id the gateway receives placement messages on.
    pub gateway_ext: u8,
    pub seq: u64,
    pub welcome: Option<Welcome>,
    /// The zone its extended handshake claims.
    pub zone: String,
    /// Frame authentication once the handshake is done.
    pub auth: Option<FrameAuth>,
    /// Every byte it wrote, in order (to replay them elsewhere).
    pub sent: Vec<u8>,
}

/// The extended id the test node receives on.
pub const NODE_EXT: u8 = 7;

impl RawNode {
    pub async fn dial(addr: SocketAddr) -> RawNode {
        RawNode {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
            gateway_ext: 0,
            seq: 0,
            welcome: None,
            zone: "eu/paris".into(),
            auth: None,
            sent: Vec::new(),
        }
    }

    /// Connects and authenticates as `node` with `passkey`, checking the gateway's handshake,
    /// extended handshake and `welcome` proof.
    pub async fn connect(addr: SocketAddr, node: i64, passkey: &str) -> RawNode {
        let mut n = Self::dial(addr).await;
        n.authenticate(node, passkey, passkey).await.unwrap();
        n
    }

    /// Runs the handshake, signing with `signing_key`; `passkey` checks the gateway's proof.
    pub async fn authenticate(
        &mut self,
        node: i64,
        passkey: &str,
        signing_key: &str,
    ) -> Result<(), Refused> {
        let ours = Handshake::control(*b"-RT0100-test-node-01");
        self.write(&ours.to_bytes()).await;
        let theirs = self.handshake().await.ok_or(Refused::Closed)?;
        assert_eq!(theirs.check_control(), Ok(()));
        let (hello, gateway_payload) = match self.frame().await.ok_or(Refused::Closed)? {
            Frame::Extended { id: 0, payload } => (GatewayHello::parse(&payload).unwrap(), payload),
            other => panic!("expected the gateway's extended handshake, got {other:?}"),
        };
        assert_eq!(hello.ver, 2);
        self.gateway_ext = hello.ext_id;
        let mut mine = NodeHello {
            ext_id: NODE_EXT,
            client: Some("test-node 0.1.0".into()),
            data_port: Some(6881),
            facts: NodeFacts {
                ver: 2,
                node: node as u64,
                nonce: auth::fresh_nonce(),
                proof: [0; 32],
                zone: self.zone.clone(),
                capacity: 10 << 30,
                free: 9 << 30,
            },
        };
        let transcript = mine.sign(signing_key, &hello.nonce, &gateway_payload);
        self.write(&frame::extended(0, &mine.to_payload())).await;
        self.auth = Some(FrameAuth::new(
            &SessionKeys::derive(passkey, &transcript),
            Role::Node,
        ));
        match self.message().await.ok_or(Refused::Closed)?.body {
            Message::Welcome(w) => {
                assert!(auth::verify_gateway_proof(passkey, &transcript, &w.proof));
                assert_eq!(w.ver, 2);
                self.welcome = Some(w);
                Ok(())
            }
            Message::Bye { code, .. } => {
                self.expect_closed().await;
                Err(Refused::Bye(code))
            }
            other => panic!("expected welcome or bye, got {other:?}"),
        }
    }

    pub async fn write(&mut self, b: &[u8]) {
        self.sent.extend_from_slice(b);
        self.stream.write_all(b).await.unwrap();
    }

    /// A tagged extended message on `id`, as the gateway expects it after the handshake.
    pub async fn write_tagged(&mut self, id: u8, payload: &[u8]) {
        let bytes = self.seal(id, payload);
        self.write(&bytes).await;
    }

    /// The frame bytes of a tagged extended message (the tag counter moves on).
    pub fn seal(&mut self, id: u8, payload: &[u8]) -> Vec<u8> {
        self.auth.as_mut().expect("authenticated").seal(id, payload)
    }

    /// Reads more bytes; false at end of stream (or reset).
    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Err(_) => panic!("the gateway sent nothing for {WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub async fn handshake(&mut self) -> Option<Handshake> {
        loop {
            if let Parsed::Done(h, used) = Handshake::parse(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(h);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next frame, or `None` once the gateway closed.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Parsed::Done(f, used) = frame::decode(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(f);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The payload of a message from the gateway: tagged once the keys are known, except the
    /// untagged `bye` that refuses a handshake.
    fn opened(&mut self, id: u8, payload: &[u8]) -> Vec<u8> {
        if let Some(Ok(body)) = self.auth.as_mut().map(|a| a.open(id, payload)) {
            return body.to_vec();
        }
        let env = Envelope::parse(payload).expect("untagged frames are refusals");
        assert!(
            self.welcome.is_none() && matches!(env.body, Message::Bye { .. }),
            "an untagged {env:?}"
        );
        payload.to_vec()
    }

    /// The next placement message (keep-alives skipped), or `None` once the gateway closed.
    pub async fn message(&mut self) -> Option<Envelope> {
        loop {
            match self.frame().await? {
                Frame::Extended { id, payload } => {
                    assert_eq!(id, NODE_EXT, "sent on the id we advertised");
                    let body = self.opened(id, &payload);
                    return Some(Envelope::parse(&body).unwrap());
                }
                Frame::KeepAlive => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn send(&mut self, body: Message) -> u64 {
        self.seq += 1;
        let env = Envelope::new(self.seq, body);
        self.write_tagged(self.gateway_ext, &env.to_payload()).await;
        self.seq
    }

    /// Reads until the gateway closes; panics on anything but keep-alives and a `bye`.
    pub async fn expect_closed(&mut self) -> Option<ByeCode> {
        let mut bye = None;
        while let Some(f) = self.frame().await {
            match f {
                Frame::KeepAlive => {}
                Frame::Extended { id, payload } => {
                    match Envelope::parse(&self.opened(id, &payload)).unwrap().body {
                        Message::Bye { code, .. } => bye = Some(code),
                        other => panic!("expected the connection to close, got {other:?}"),
                    }
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        bye
    }

    /// A ping answered by a pong: the connection is alive and in step.
    pub async fn ping(&mut self) {
        let seq = self.send(Message::Ping).await;
        let env = self.message().await.expect("pong");
        assert_eq!(env.body, Message::Pong { re: seq });
    }
}
