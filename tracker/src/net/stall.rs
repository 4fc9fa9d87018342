//! A socket that fails when it makes no progress: a client that stops reading what it is sent
//! (or, where asked, stops sending) is cut off instead of holding its connection forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Wraps a socket; a read (if `read` is set) or a write that stays pending for its limit fails
/// with `TimedOut`. Any progress restarts the clock.
pub(super) struct Stall<T> {
    io: T,
    read: Option<Duration>,
    write: Option<Duration>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Stall<T> {
    pub(super) fn new(io: T, read: Option<Duration>, write: Option<Duration>) -> Self {
        Stall {
            io,
            read,
            write,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// Turns a pending poll into an error once `limit` has passed without progress.
fn pending<R>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Option<Duration>,
    cx: &mut Context<'_>,
    what: &str,
) -> Poll<io::Result<R>> {
    let Some(limit) = limit else {
        return Poll::Pending;
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client made no progress {what} for {limit:?}"),
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stall<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => pending(&mut this.read_timer, this.read, cx, "sending"),
            done => {
                this.read_timer = None;
                done
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stall<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => pending(&mut this.write_timer, this.write, cx, "reading"),
            done => {
                this.write_timer = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => pending(&mut this.write_timer, this.write, cx, "reading"),
            done => {
                this.write_timer = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_write() {
        let (near, _far) = tokio::io::duplex(64);
        let mut s = Stall::new(near, None, Some(Duration::from_secs(5)));
        let err = s.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_clock_and_reads_wait_unless_asked() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut s = Stall::new(near, None, Some(Duration::from_secs(5)));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 4096 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                got += far.read(&mut buf).await.unwrap();
            }
            far
        });
        s.write_all(&[0u8; 4096]).await.unwrap();
        let mut far = reader.await.unwrap();
        far.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        let (quiet, _open) = tokio::io::duplex(8);
        let mut idle = Stall::new(quiet, Some(Duration::from_secs(3)), None);
        let err = idle.read(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
