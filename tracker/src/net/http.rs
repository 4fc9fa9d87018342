//! The HTTP/1.1 server behind every HTTP listener of the gateway (tracker and object API).
//!
//! Each accepted connection must first pass the listener's [`Gate`]; then hyper serves it with a
//! timer, so a client has `header_timeout` to send each request's head (which is also how long
//! an idle keep-alive connection stays open), and a response that the client stops reading
//! fails after `send_timeout`. Where every request is small (the tracker), a client that stops
//! sending a request body is cut off after `header_timeout` too. The client's address reaches
//! handlers as a [`PeerAddr`] request extension. With [`Tls`], a connection is served once its
//! TLS handshake finished, which must happen within `header_timeout` too.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower_service::Service;

use super::gate::{ConnCaps, Gate};
use super::stall::Stall;
use super::tls::{secure, Tls};

/// How long shutdown waits for open connections to finish the requests in hand.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an accept error (out of file descriptors, mostly) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Limits of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub caps: ConnCaps,
    /// Time to send a request's head; also how long an idle connection is kept.
    pub header_timeout: Duration,
    /// How long a response may wait on a client that does not read it.
    pub send_timeout: Duration,
    /// True where bodies are small: a request body that stalls for `header_timeout` fails.
    pub small_bodies: bool,
}

/// The client's address, in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `service` on `listener` (inside TLS when `tls` is given) until `stop` resolves, then
/// lets open requests finish (up to a few seconds) and returns. The service sees each request
/// with a [`PeerAddr`].
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: HttpLimits,
    gate: Gate,
    tls: Option<Tls>,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, addr) = tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let permit = match gate.admit(addr.ip()) {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(%addr, %why, "connection refused");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let read_stall = limits.small_bodies.then_some(limits.header_timeout);
        let stalling = Stall::new(tcp, read_stall, Some(limits.send_timeout));
        let svc = service.clone();
        let handler = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(addr));
            svc.clone().call(req)
        });
        let (builder, tls) = (builder.clone(), tls.clone());
        let watcher = graceful.watcher();
        conns.spawn(async move {
            let io = match secure(tls.as_ref(), stalling, limits.header_timeout).await {
                Ok(io) => TokioIo::new(io),
                Err(e) => return tracing::debug!(%addr, error = %e, "TLS handshake failed"),
            };
            let conn = watcher.watch(builder.serve_connection(io, handler));
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "HTTP connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain timeout; closing them");
    }
    conns.shutdown().await;
}

/// Out of file descriptors (or a similar fault): say so, and pause instead of spinning.
async fn accept_failed(e: &io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
