//! The control connection to one gateway (RT-0002 sections 2-6): dial, BEP 3 handshake on the control
//! info-hash, extended handshakes with mutual proof of the passkey over the whole handshake, then
//! directives in and answers, reports and pings out, every extended message tagged with the
//! session keys both ways; on any failure (a frame that fails its tag included), reconnect after an
//! exponential delay with full jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use raidtorrent_proto::auth::{self, SessionKeys, Transcript};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{
    frame, ByeCode, Envelope, Frame, GatewayHello, Handshake, Message, NodeFacts, NodeHello,
    Parsed, RefuseCode, Welcome, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::backoff::{random_u64, Backoff};
use crate::config::GatewayConfig;
use crate::node::{lock, Node};
use crate::reported::Reported;
use crate::tls::Pin;

/// The connection to a gateway: plain TCP, or TLS to a pinned gateway.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The extended id this node receives placement messages on.
pub const NODE_EXT_ID: u8 = 1;
/// A connection that lasted this long after `welcome` resets the reconnect delay.
const HEALTHY: Duration = Duration::from_secs(60);
/// After `bye` with code `auth`, wait at least this long.
const AUTH_PAUSE: Duration = Duration::from_secs(600);

/// How a connection ended without an I/O error.
enum End {
    Shutdown,
    Bye(ByeCode, String),
}

pub(crate) async fn run(node: Arc<Node>, gw: GatewayConfig) {
    let token = node.tasks.token().clone();
    let limits = &node.config.limits;
    let mut backoff = Backoff::new(
        Duration::from_millis(limits.reconnect_base_ms),
        Duration::from_secs(limits.reconnect_max_secs),
    );
    loop {
        node.set_gateway_state(gw.name(), "connecting", None);
        let mut welcomed = None;
        let outcome = session(&node, &gw, &mut welcomed).await;
        if welcomed.is_some_and(|at: Instant| at.elapsed() >= HEALTHY) {
            backoff.reset();
        }
        let mut delay = backoff.next_delay(random_u64());
        let error = match outcome {
            Ok(End::Shutdown) => return,
            Ok(End::Bye(code, text)) => {
                if code == ByeCode::Auth {
                    tracing::error!(
                        gateway = gw.name(),
                        "the gateway refused our node id or passkey: {text}"
                    );
                    delay = delay.max(AUTH_PAUSE);
                }
                format!("gateway said bye ({code}): {text}")
            }
            Err(e) => format!("{e:#}"),
        };
        tracing::info!(
            gateway = gw.name(),
            ?delay,
            "control connection ended: {error}"
        );
        node.set_gateway_state(gw.name(), "waiting", Some(error));
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Reads bytes and cuts them into handshake and frames.
struct Reader {
    rd: ReadHalf<Box<dyn Io>>,
    buf: Vec<u8>,
}

impl Reader {
    /// Reads more bytes; an error when the gateway closed the connection. Cancel-safe.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.rd.read(&mut chunk).await?;
        if n == 0 {
            bail!("the gateway closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        match frame::decode(&self.buf)? {
            Parsed::Incomplete(_) => Ok(None),
            Parsed::Done(f, used) => {
                self.buf.drain(..used);
                Ok(Some(f))
            }
        }
    }

    async fn handshake(&mut self) -> anyhow::Result<Handshake> {
        loop {
            if let Parsed::Done(h, used) = Handshake::parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(h);
            }
            self.fill().await?;
        }
    }

    /// The next extended message on `id`, ignoring everything else (RT-0002 section 4).
    async fn extended(&mut self, id: u8) -> anyhow::Result<Vec<u8>> {
        loop {
            while let Some(f) = self.next_frame()? {
                if let Frame::Extended { id: got, payload } = f {
                    if got == id {
                        return Ok(payload);
                    }
                }
            }
            self.fill().await?;
        }
    }
}

/// The sending half, with the connection's frame authentication (both directions' counters).
struct Writer {
    wr: WriteHalf<Box<dyn Io>>,
    gateway_ext_id: u8,
    seq: u64,
    auth: FrameAuth,
}

impl Writer {
    async fn send(&mut self, body: Message) -> anyhow::Result<()> {
        self.seq += 1;
        tracing::debug!(seq = self.seq, t = body.type_name(), "sending");
        let payload = Envelope::new(self.seq, body).to_payload();
        let bytes = self.auth.seal(self.gateway_ext_id, &payload);
        tokio::time::timeout(Duration::from_secs(30), self.wr.write_all(&bytes))
            .await
            .context("the gateway does not read")??;
        Ok(())
    }
}

fn peer_id() -> [u8; 20] {
    let mut id = *b"-RT0100-000000000000";
    let random = auth::fresh_nonce();
    id[8..].copy_from_slice(&random[..12]);
    id
}

async fn session(
    node: &Arc<Node>,
    gw: &GatewayConfig,
    welcomed: &mut Option<Instant>,
) -> anyhow::Result<End> {
    let token = node.tasks.token().clone();
    let timeout = Duration::from_secs(node.config.limits.connect_timeout_secs);
    let opened = tokio::select! {
        _ = token.cancelled() => return Ok(End::Shutdown),
        r = tokio::time::timeout(timeout, open(node, gw)) => r.context("connect, handshake and welcome took too long")??,
    };
    let (welcome, mut reader, mut writer) = match opened {
        Opened::Welcome(welcomed) => *welcomed,
        Opened::Bye(end) => return Ok(end),
    };
    *welcomed = Some(Instant::now());
    node.set_gateway_state(gw.name(), "connected", None);
    tracing::info!(gateway = gw.name(), "connected");
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = node.new_connection(tx);
    let result = established(node, gw, &welcome, &mut reader, &mut writer, conn, rx).await;
    node.close_connection(conn);
    if let Ok(End::Shutdown) = result {
        let bye = Message::Bye {
            code: ByeCode::Shutdown,
            text: "the node is stopping".into(),
        };
        let _ = writer.send(bye).await;
        let _ = writer.wr.shutdown().await;
    }
    result
}

enum Opened {
    Welcome(Box<(Welcome, Reader, Writer)>),
    Bye(End),
}

/// Connects and authenticates: the welcome, or the gateway's bye instead.
async fn open(node: &Node, gw: &GatewayConfig) -> anyhow::Result<Opened> {
    let (rd, mut wr) = tokio::io::split(dial(gw).await?);
    wr.write_all(&Handshake::control(peer_id()).to_bytes())
        .await?;
    let mut reader = Reader {
        rd,
        buf: Vec::new(),
    };
    reader.handshake().await?.check_control()?;
    let gateway_payload = reader.extended(0).await?;
    let hello = GatewayHello::parse(&gateway_payload)?;
    let mut ours = our_hello(node, gw);
    let transcript = ours.sign(&gw.passkey, &hello.nonce, &gateway_payload);
    wr.write_all(&frame::extended(0, &ours.to_payload()))
        .await?;
    let keys = SessionKeys::derive(&gw.passkey, &transcript);
    let mut writer = Writer {
        wr,
        gateway_ext_id: hello.ext_id,
        seq: 0,
        auth: FrameAuth::new(&keys, Role::Node),
    };
    loop {
        let payload = reader.extended(NODE_EXT_ID).await?;
        // `welcome` is the gateway's first tagged frame; a refusal comes untagged, as the gateway
        // may not know our passkey.
        let tagged = writer.auth.open(NODE_EXT_ID, &payload).map(<[u8]>::to_vec);
        match (tagged, Envelope::parse(&payload).map(|e| e.body)) {
            (Ok(body), _) => {
                if let Ok(Message::Welcome(w)) = Envelope::parse(&body).map(|e| e.body) {
                    check_welcome(gw, &transcript, &w)?;
                    return Ok(Opened::Welcome(Box::new((w, reader, writer))));
                }
            }
            (Err(_), Ok(Message::Bye { code, text })) => {
                return Ok(Opened::Bye(End::Bye(code, text)))
            }
            // Nothing else counts before welcome.
            (Err(_), _) => continue,
        }
    }
}

/// The connection to `gw`, inside TLS when it is pinned.
async fn dial(gw: &GatewayConfig) -> anyhow::Result<Box<dyn Io>> {
    let stream = TcpStream::connect(&gw.control)
        .await
        .with_context(|| format!("connecting to {}", gw.control))?;
    stream.set_nodelay(true)?;
    let Some(cert) = &gw.tls_cert else {
        return Ok(Box::new(stream));
    };
    let host = gw.control.rsplit_once(':').map_or("", |(h, _)| h);
    let tls = Pin::load(cert)?
        .connect(stream, host)
        .await
        .with_context(|| format!("TLS to {} (pinned to {})", gw.control, cert.display()))?;
    Ok(Box::new(tls))
}

/// Our extended handshake, its proof still to be signed.
fn our_hello(node: &Node, gw: &GatewayConfig) -> NodeHello {
    let (capacity, free) = {
        let ledger = lock(&node.ledger);
        (ledger.capacity(), ledger.free())
    };
    NodeHello {
        ext_id: NODE_EXT_ID,
        client: Some(format!("raidtorrent-peer {}", env!("CARGO_PKG_VERSION"))),
        data_port: Some(node.engine.listen_addr().port()),
        facts: NodeFacts {
            ver: PROTOCOL_VERSION,
            node: gw.node_id,
            nonce: auth::fresh_nonce(),
            proof: [0; auth::PROOF_LEN],
            zone: node.config.zone.clone(),
            capacity,
            free,
        },
    }
}

fn check_welcome(gw: &GatewayConfig, t: &Transcript, w: &Welcome) -> anyhow::Result<()> {
    if !auth::verify_gateway_proof(&gw.passkey, t, &w.proof) {
        bail!("the gateway's proof does not match our passkey: not our gateway");
    }
    if w.ver < PROTOCOL_VERSION {
        bail!(
            "the gateway agreed on version {}, we speak {PROTOCOL_VERSION}",
            w.ver
        );
    }
    Ok(())
}

async fn established(
    node: &Arc<Node>,
    gw: &GatewayConfig,
    welcome: &Welcome,
    reader: &mut Reader,
    writer: &mut Writer,
    conn: u64,
    mut answers: mpsc::UnboundedReceiver<Message>,
) -> anyhow::Result<End> {
    let token = node.tasks.token().clone();
    // Subscribed before the first report is built, so a change made meanwhile is reported next.
    let mut changed = node.changed.subscribe();
    let mut reported = Reported::default();
    writer
        .send(Message::Report(node.report(gw.owner(), &mut reported)))
        .await?;
    let keepalive = Duration::from_secs(welcome.keepalive_interval.max(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let report_every = Duration::from_secs(welcome.report_interval.max(1));
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + report_every, report_every);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(End::Shutdown),
            r = reader.fill() => {
                r?;
                while let Some(f) = reader.next_frame()? {
                    // Keep-alives and other ids carry no tag: they prove nothing and mean nothing.
                    let Frame::Extended { id, payload } = f else { continue };
                    let body = writer
                        .auth
                        .open(id, &payload)
                        .context("a frame from the gateway failed authentication")?
                        .to_vec();
                    last_heard = Instant::now();
                    if let Some(end) = on_message(node, gw, conn, writer, id, body).await? {
                        return Ok(end);
                    }
                }
            }
            Some(answer) = answers.recv() => writer.send(answer).await?,
            _ = ping.tick() => {
                if last_heard.elapsed() > 3 * keepalive {
                    bail!("the gateway has been silent for {:?}", last_heard.elapsed());
                }
                writer.send(Message::Ping).await?;
            }
            _ = report.tick() => {
                writer.send(Message::Report(node.report(gw.owner(), &mut reported))).await?;
            }
            r = changed.changed() => {
                r?;
                writer.send(Message::Report(node.report(gw.owner(), &mut reported))).await?;
            }
        }
    }
}

async fn on_message(
    node: &Arc<Node>,
    gw: &GatewayConfig,
    conn: u64,
    writer: &mut Writer,
    id: u8,
    payload: Vec<u8>,
) -> anyhow::Result<Option<End>> {
    match id {
        0 => {
            // A renewed extended handshake may move the gateway's id; nothing else in it counts now.
            if let Ok(h) = GatewayHello::parse(&payload) {
                writer.gateway_ext_id = h.ext_id;
            }
            return Ok(None);
        }
        NODE_EXT_ID => {}
        _ => return Ok(None),
    }
    let env = match Envelope::parse(&payload) {
        Ok(env) => env,
        Err(e) => {
            tracing::debug!(gateway = gw.name(), "ignoring placement message: {e}");
            if let Some((re, ih)) = e.refusal() {
                let text = e.to_string();
                writer
                    .send(Message::Refuse {
                        re,
                        ih,
                        code: RefuseCode::Malformed,
                        text,
                    })
                    .await?;
            }
            return Ok(None);
        }
    };
    tracing::debug!(seq = env.seq, t = env.body.type_name(), "received");
    match env.body {
        Message::Hold(hold) => {
            if let Some(answer) = node.hold(gw.owner(), conn, env.seq, hold).await {
                writer.send(answer).await?;
            }
        }
        Message::Drop { ih } => {
            let answer = node.drop_shard(gw.owner(), env.seq, ih).await;
            writer.send(answer).await?;
        }
        Message::Ping => writer.send(Message::Pong { re: env.seq }).await?,
        Message::Bye { code, text } => return Ok(Some(End::Bye(code, text))),
        Message::Unknown { t } => {
            tracing::debug!(gateway = gw.name(), "ignoring unknown message type {t:?}")
        }
        // Node-bound traffic only; anything else from a gateway means nothing here.
        _ => {}
    }
    Ok(None)
}
