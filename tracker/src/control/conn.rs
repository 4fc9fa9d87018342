//! One control connection, from the BEP 3 handshake to the close.
//!
//! States: *handshake* (BEP 3, then our handshake and extended handshake, then the node's
//! extended handshake and proof, all within `handshake_timeout_ms`; `handshake.rs`) →
//! *authenticated* (in the hub's map: directives out, answers and reports in, every extended
//! message tagged both ways) → *closing* (out of the map, outstanding directives dropped so their
//! callers see `Disconnected`, FIN sent). Any state may go straight to closing; nothing a peer
//! sends makes the task panic.

use super::wire::{self, Reader, WireError, WriteHalf};
use super::{Command, ControlHub, Evict, Joined, Outcome, PRE_AUTH_MAX_FRAME};
use crate::net::{secure, Permit, Tls};
use crate::registry::records::Observation;
use crate::registry::{unix_now, NodeId};
use raidtorrent_proto::session::FrameAuth;
use raidtorrent_proto::{
    frame, ByeCode, Envelope, Frame, InfoHash, Message, MessageError, CONTROL_INFO_HASH,
    EXTENSION_NAME,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Serves one accepted connection (inside TLS when `tls` is given) until it closes or `stop`
/// turns true. The TLS handshake and authentication share `handshake_timeout_ms`.
pub(super) async fn run(
    hub: ControlHub,
    (stream, tls): (TcpStream, Option<Tls>),
    peer: SocketAddr,
    handshake: Permit,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let limit = Duration::from_millis(hub.inner.config.handshake_timeout_ms);
    let deadline = Instant::now() + limit;
    let stream = tokio::select! {
        s = secure(tls.as_ref(), stream, limit) => match s {
            Ok(s) => s,
            Err(e) => return tracing::debug!(error = %e, "TLS handshake failed"),
        },
        _ = stopped(&mut stop) => return,
    };
    let (read, write) = tokio::io::split(stream);
    // Watched from the start, so a revocation while this node authenticates is not missed.
    let revocations = hub.inner.registry.revocations();
    let mut conn = Conn {
        hub,
        peer,
        reader: Reader::new(read, PRE_AUTH_MAX_FRAME),
        writer: write,
        seq: 0,
        node_ext: 0,
        auth: None,
    };
    let authenticated = tokio::select! {
        r = tokio::time::timeout_at(deadline, conn.authenticate()) => match r {
            Ok(Ok(authenticated)) => Some(authenticated),
            Ok(Err(why)) => { tracing::debug!(%why, "control connection refused"); None }
            Err(_) => { tracing::debug!("no authentication in time"); None }
        },
        _ = stopped(&mut stop) => None,
    };
    // Authenticated or not, this connection no longer counts against the handshake caps.
    drop(handshake);
    if let Some((session, registration)) = authenticated {
        conn.serve(session, registration, revocations, stop).await;
    }
    wire::close(conn.reader, conn.writer).await;
}

/// Resolves once the listener is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The authenticated facts of a connection.
pub(super) struct Session {
    pub(super) node: NodeId,
    pub(super) data_addr: SocketAddr,
}

pub(super) struct Conn {
    pub(super) hub: ControlHub,
    pub(super) peer: SocketAddr,
    pub(super) reader: Reader,
    writer: WriteHalf,
    /// Our last placement sequence number on this connection.
    seq: u64,
    /// The extended id the node receives placement messages on.
    pub(super) node_ext: u8,
    /// Frame authentication, from our `welcome` on.
    pub(super) auth: Option<FrameAuth>,
}

/// Why the authenticated life of a connection ended, for the log.
type Why = String;

impl Conn {
    /// The authenticated life of the connection.
    async fn serve(
        &mut self,
        session: Session,
        registration: Joined,
        mut revocations: watch::Receiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Joined {
            conn,
            heard,
            mut commands,
            mut evicted,
        } = registration;
        let node = session.node;
        let keepalive = self.hub.inner.config.keepalive();
        let silence = keepalive * 3;
        let mut state = Authenticated {
            session,
            conn,
            outstanding: HashMap::new(),
            last_observed: None,
        };
        state.observe(&self.hub);
        let mut deadline = Instant::now() + silence;
        let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        // A revocation between the lookup and now counts too.
        revocations.mark_changed();
        let why: Why = loop {
            tokio::select! {
                _ = stopped(&mut stop) => {
                    let _ = self.bye(ByeCode::Shutdown, "the gateway is stopping").await;
                    break "gateway stopping".to_owned();
                }
                evicted = &mut evicted => {
                    let (code, text) = match evicted {
                        Ok(Evict::Revoked) => (ByeCode::Auth, "this node's passkey was revoked"),
                        Err(_) => (ByeCode::Other("replaced".into()), "a newer connection of this node took over"),
                    };
                    let _ = self.bye(code, text).await;
                    break text.to_owned();
                }
                Ok(()) = revocations.changed() => {
                    if self.hub.inner.registry.announce_token(node).is_none() {
                        let _ = self.bye(ByeCode::Auth, "this node's passkey was revoked").await;
                        break "revoked".to_owned();
                    }
                }
                f = self.reader.frame() => match self.on_frame(&mut state, f, &heard).await {
                    Ok(true) => deadline = Instant::now() + silence,
                    Ok(false) => {}
                    Err(why) => break why,
                },
                Some(cmd) = commands.recv() => {
                    if let Err(why) = self.on_command(&mut state, cmd).await {
                        break why;
                    }
                }
                _ = ticks.tick() => {
                    if let Err(why) = self.write(&frame::keep_alive()).await {
                        break why;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break format!("silent for {} s", silence.as_secs()),
            }
        };
        tracing::info!(node, %why, outstanding = state.outstanding.len(), "node disconnected");
        self.hub.deregister(node, conn);
        // Dropping the answer senders resolves their callers with `Disconnected`.
        state.outstanding.clear();
        state.last_observed = None;
        state.observe(&self.hub);
    }

    /// One frame read (or the reason reading failed): true if it was an authenticated message,
    /// which counts as hearing from the node.
    async fn on_frame(
        &mut self,
        state: &mut Authenticated,
        f: Result<Frame, WireError>,
        heard: &AtomicU64,
    ) -> Result<bool, Why> {
        match f {
            Ok(Frame::Extended { id, payload }) => {
                let opened = match self.open(id, &payload) {
                    Ok(opened) => opened,
                    Err(why) => {
                        let _ = self.bye(ByeCode::Malformed, &why).await;
                        return Err(why);
                    }
                };
                heard.store(self.hub.now_ms(), Ordering::Relaxed);
                state.heard(&self.hub, self.hub.inner.config.keepalive());
                self.on_message(state, id, opened).await?;
                Ok(true)
            }
            // Keep-alives and other ids carry no tag, so they prove nothing and mean nothing.
            Ok(_) => Ok(false),
            Err(WireError::Frame(e)) => {
                let _ = self.bye(ByeCode::Malformed, &e.to_string()).await;
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Checks a received extended message's tag; the payload without it.
    fn open(&mut self, id: u8, payload: &[u8]) -> Result<Vec<u8>, Why> {
        let auth = self.auth.as_mut().ok_or("no session keys")?;
        auth.open(id, payload)
            .map(<[u8]>::to_vec)
            .map_err(|e| format!("frame authentication failed: {e}"))
    }

    async fn on_command(&mut self, state: &mut Authenticated, cmd: Command) -> Result<(), String> {
        if cmd.answer.is_closed() {
            return Ok(()); // the caller gave up before we sent it
        }
        let seq = self.send(cmd.body).await?;
        // Forget directives whose callers gave up (timed out) so the map stays small.
        state.outstanding.retain(|_, (_, tx)| !tx.is_closed());
        state.outstanding.insert(seq, (cmd.ih, cmd.answer));
        Ok(())
    }

    async fn on_message(
        &mut self,
        state: &mut Authenticated,
        id: u8,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        if id == 0 {
            // A later extended handshake: only `m` is taken from it (BEP 10).
            return match placement_id(&payload) {
                Some(0) => Err("the node disabled rt_placement".into()),
                Some(id) => {
                    self.node_ext = id;
                    Ok(())
                }
                None => Ok(()),
            };
        }
        if id != self.hub.inner.config.ext_id {
            return Ok(());
        }
        let env = match Envelope::parse(&payload) {
            Ok(env) => env,
            // Reports after the first are deltas on all before them: one not applied would
            // leave the node's held set wrong for the rest of the connection. The next one
            // starts again from a full report.
            Err(e) if matches!(&e, MessageError::Malformed { t, .. } if t == "report") => {
                let text = e.to_string();
                self.bye(ByeCode::Malformed, &text).await?;
                return Err(format!("closed: {text}"));
            }
            Err(e) => {
                tracing::debug!(error = %e, "placement message ignored");
                return Ok(());
            }
        };
        match env.body {
            Message::Ack { re, ih } => state.answer(re, Some(ih), Outcome::Acked),
            Message::Refuse { re, ih, code, text } => {
                state.answer(re, ih, Outcome::Refused { code, reason: text })
            }
            Message::Report(r) => self.hub.reported(state.session.node, state.conn, r),
            Message::Ping => {
                self.send(Message::Pong { re: env.seq }).await?;
            }
            Message::Bye { code, text } => return Err(format!("node said bye ({code}: {text})")),
            // Gateway-to-node messages, pongs to pings we never send, and types from newer nodes.
            Message::Welcome(_)
            | Message::Hold(_)
            | Message::Drop { .. }
            | Message::Pong { .. }
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Sends a placement message with our next sequence number, tagged once the session keys
    /// are known (from `welcome` on); returns it.
    pub(super) async fn send(&mut self, body: Message) -> Result<u64, String> {
        self.seq += 1;
        let payload = Envelope::new(self.seq, body).to_payload();
        let bytes = match self.auth.as_mut() {
            Some(auth) => auth.seal(self.node_ext, &payload),
            None => frame::extended(self.node_ext, &payload),
        };
        self.write(&bytes).await?;
        Ok(self.seq)
    }

    pub(super) async fn bye(&mut self, code: ByeCode, text: &str) -> Result<(), String> {
        let text = text.to_owned();
        self.send(Message::Bye { code, text }).await.map(|_| ())
    }

    /// Writes, giving up when the peer stops reading for as long as it may stay silent.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let limit = self.hub.inner.config.keepalive() * 3;
        match tokio::time::timeout(limit, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err("the node stopped reading".into()),
        }
    }
}

/// What an authenticated connection keeps.
struct Authenticated {
    session: Session,
    conn: u64,
    /// Directives sent and not answered, by our `seq`.
    outstanding: HashMap<u64, (InfoHash, oneshot::Sender<Outcome>)>,
    last_observed: Option<Instant>,
}

impl Authenticated {
    fn answer(&mut self, re: u64, ih: Option<InfoHash>, outcome: Outcome) {
        match self.outstanding.get(&re) {
            Some((want, _)) if ih.map_or(true, |ih| ih == *want) => {
                if let Some((_, tx)) = self.outstanding.remove(&re) {
                    let _ = tx.send(outcome);
                }
            }
            Some((want, _)) => {
                tracing::warn!(re, ?ih, ?want, "answer names another info-hash; ignored");
            }
            None => tracing::debug!(re, "answer to no outstanding directive"),
        }
    }

    /// A frame arrived: record liveness at most once per keep-alive interval.
    fn heard(&mut self, hub: &ControlHub, every: Duration) {
        if self.last_observed.map_or(true, |t| t.elapsed() >= every) {
            self.observe(hub);
        }
    }

    fn observe(&mut self, hub: &ControlHub) {
        self.last_observed = Some(Instant::now());
        if !hub.inner.records_liveness.load(Ordering::Relaxed) {
            return;
        }
        let ka = hub.inner.config.keepalive_interval_secs;
        hub.inner.recorder.observe(Observation {
            node: self.session.node,
            info_hash: InfoHash(CONTROL_INFO_HASH),
            addr: self.session.data_addr,
            at: unix_now(),
            seeding: true,
            bytes_up: 0,
            bytes_down: 0,
            gap: None,
            expected_interval: u32::try_from(ka).unwrap_or(u32::MAX),
            allowance: u32::try_from(ka * 3).unwrap_or(u32::MAX),
            completed: false,
        });
    }
}

/// `m.rt_placement` of a later extended handshake, if it carries one.
pub(super) fn placement_id(payload: &[u8]) -> Option<u8> {
    use raidtorrent_codec::bencode::{decode, Value};
    let Ok(Value::Dict(d)) = decode(payload) else {
        return None;
    };
    let Some(Value::Dict(m)) = d.get("m") else {
        return None;
    };
    match m.get(EXTENSION_NAME) {
        Some(Value::Int(id)) => u8::try_from(*id).ok(),
        _ => None,
    }
}
