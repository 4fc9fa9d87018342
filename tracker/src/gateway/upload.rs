//! An upload's body as the encoder takes it: whole segments, read without holding a thread
//! (a slow client costs a task, not one of the runtime's blocking threads), at a minimum pace
//! (no bytes for `idle` fails the upload), and no more than a limit.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::GatewayError;

/// Reads segments of an upload.
pub(super) struct Upload<R> {
    body: R,
    idle: Duration,
    /// A byte read ahead to learn whether the previous segment was the last.
    peeked: Option<u8>,
    /// Bytes handed out so far.
    read: u64,
    /// Most bytes the upload may have, and the error past it.
    limit: u64,
    over: fn(u64) -> GatewayError,
}

impl<R: AsyncRead + Unpin> Upload<R> {
    pub(super) fn new(body: R, idle: Duration, limit: u64, over: fn(u64) -> GatewayError) -> Self {
        Upload {
            body,
            idle,
            peeked: None,
            read: 0,
            limit,
            over,
        }
    }

    /// Fills `buf` with the next segment (short only at the end); returns its length and
    /// whether it is the last.
    pub(super) async fn segment(&mut self, buf: &mut [u8]) -> Result<(usize, bool), GatewayError> {
        let mut n = 0;
        if let Some(b) = self.peeked.take() {
            buf[0] = b;
            n = 1;
        }
        while n < buf.len() {
            match self.read_some(&mut buf[n..]).await? {
                0 => break,
                r => n += r,
            }
        }
        let last = n < buf.len() || {
            let mut b = [0u8];
            let more = self.read_some(&mut b).await? == 1;
            self.peeked = more.then_some(b[0]);
            !more
        };
        self.read += n as u64;
        if self.read + u64::from(self.peeked.is_some()) > self.limit {
            return Err((self.over)(self.limit));
        }
        Ok((n, last))
    }

    /// Reads up to `max` bytes, fewer only at the end of the body: what tells a small object
    /// from a large one. Grows as bytes arrive, so a short body costs no more than itself.
    pub(super) async fn head(&mut self, max: usize) -> Result<Vec<u8>, GatewayError> {
        let mut head = Vec::new();
        while head.len() < max {
            let have = head.len();
            head.resize(have + (max - have).min(64 << 10), 0);
            let n = self.read_some(&mut head[have..]).await?;
            head.truncate(have + n);
            if n == 0 {
                break;
            }
        }
        Ok(head)
    }

    /// The body, for a caller that read only its head.
    pub(super) fn into_body(self) -> R {
        self.body
    }

    async fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, GatewayError> {
        match tokio::time::timeout(self.idle, self.body.read(buf)).await {
            Ok(r) => r.map_err(GatewayError::Upload),
            Err(_) => Err(GatewayError::Upload(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no bytes of the upload arrived for {:?}", self.idle),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_big(limit: u64) -> GatewayError {
        GatewayError::TooLarge {
            size: limit + 1,
            max: limit,
        }
    }

    async fn segments(body: &[u8], seg: usize, limit: u64) -> Result<Vec<(usize, bool)>, u16> {
        let mut up = Upload::new(body, Duration::from_secs(1), limit, too_big);
        let mut buf = vec![0u8; seg];
        let mut out = Vec::new();
        loop {
            let (n, last) = up.segment(&mut buf).await.map_err(|e| e.http_status())?;
            out.push((n, last));
            if last {
                return Ok(out);
            }
        }
    }

    #[tokio::test]
    async fn whole_segments_and_the_last_is_known() {
        let body = vec![7u8; 10];
        assert_eq!(
            segments(&body, 5, 10).await,
            Ok(vec![(5, false), (5, true)])
        );
        assert_eq!(
            segments(&body, 4, 10).await,
            Ok(vec![(4, false), (4, false), (2, true)])
        );
        assert_eq!(segments(&[], 4, 10).await, Ok(vec![(0, true)]));
        assert_eq!(segments(&body, 4, 9).await, Err(413));
        assert_eq!(segments(&body, 5, 9).await, Err(413));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_fails_the_upload() {
        let (client, server) = tokio::io::duplex(64);
        let mut up = Upload::new(server, Duration::from_secs(30), 100, too_big);
        let mut buf = [0u8; 8];
        let e = up.segment(&mut buf).await.unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains("no bytes"), "{e}");
        drop(client);
    }
}
