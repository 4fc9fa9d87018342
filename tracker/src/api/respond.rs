//! Responses of the object API: JSON bodies, errors as `{"error": code, "message": ...}`, and
//! object bytes streamed from a gateway [`Body`].

use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::gateway::{Body, GatewayError, ObjectInfo};

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("API types serialise");
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// An error answer with a stable code for programs and a sentence for people.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message }),
    )
}

/// A client fault the gateway never saw (a malformed request line or header).
pub fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The answer to a failed gateway operation: the status the gateway chose, and the error's
/// own text. Server faults are logged with their cause; the client gets only the summary.
pub fn gateway_error(e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(error = %e, code = e.code(), "object API request failed");
    }
    let mut res = error(status, e.code(), &e.to_string());
    match e {
        GatewayError::InvalidRange { size } => {
            set(&mut res, header::CONTENT_RANGE, format!("bytes */{size}"))
        }
        GatewayError::Busy(_) => set(&mut res, header::RETRY_AFTER, "1".to_owned()),
        _ => {}
    }
    res
}

/// 416 for a range outside an object of `size` bytes.
pub fn unsatisfiable(size: u64) -> Response {
    gateway_error(&GatewayError::InvalidRange { size })
}

fn set(res: &mut Response, name: header::HeaderName, value: String) {
    let value = HeaderValue::from_str(&value).expect("generated header values are visible ASCII");
    res.headers_mut().insert(name, value);
}

/// The headers every object answer carries: size, ETag (the content's SHA-256, quoted),
/// Last-Modified and Accept-Ranges.
pub fn object_headers(res: &mut Response, info: &ObjectInfo, length: u64) {
    set(res, header::CONTENT_LENGTH, length.to_string());
    set(res, header::ETAG, format!("\"{}\"", info.sha256));
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(info.created_at.max(0) as u64);
    set(
        res,
        header::LAST_MODIFIED,
        httpdate::fmt_http_date(modified),
    );
    res.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
}

/// Bytes `range` of the object (`None`: all of it), streamed from `body` as it arrives.
///
/// The response promises `Content-Length` up front. If the gateway's read fails part-way (an
/// `Err` item) the stream yields that error, and hyper then closes the connection without
/// completing the body, so a client can never take a truncated object for a whole one.
pub fn object(info: &ObjectInfo, range: Option<Range<u64>>, body: Body) -> Response {
    let length = range.as_ref().map_or(info.size, |r| r.end - r.start);
    let chunks = stream::unfold(body, |mut body| async move {
        let item = body.recv().await?;
        if let Err(e) = &item {
            tracing::warn!(error = %e, "object read failed mid-response; aborting it");
        }
        Some((item, body))
    });
    let mut res = warp::reply::stream(chunks).into_response();
    object_headers(&mut res, info, length);
    if let Some(r) = range {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let last = r.end - 1;
        set(
            &mut res,
            header::CONTENT_RANGE,
            format!("bytes {}-{last}/{}", r.start, info.size),
        );
    }
    res
}

/// A finished response with no body, for HEAD and DELETE.
pub fn empty(status: StatusCode) -> Response {
    let mut res = Response::new(Bytes::new().into());
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tokio::sync::mpsc;
    use warp::Filter;

    fn info(size: u64) -> ObjectInfo {
        ObjectInfo {
            bucket: "bkt".into(),
            key: "k".into(),
            size,
            sha256: "00".repeat(32),
            created_at: 1_790_000_000,
            inline: false,
            storage: crate::gateway::model::Storage::Swarm,
            attrs: Default::default(),
        }
    }

    /// Serves one streamed object response built from `items` on 127.0.0.1:0 and fetches it
    /// with a real client; returns the client's view of the body.
    async fn fetch(size: u64, items: Vec<io::Result<Bytes>>) -> reqwest::Result<Bytes> {
        let items = std::sync::Arc::new(std::sync::Mutex::new(Some(items)));
        let route = warp::any().map(move || {
            let (tx, rx) = mpsc::channel(8);
            let items = items.lock().unwrap().take().expect("one request");
            tokio::spawn(async move {
                for item in items {
                    // A pause between chunks so headers and early bytes leave first.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            });
            object(&info(size), None, rx)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async {
                    let _ = rx.await;
                })
                .run(),
        );
        let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.content_length(), Some(size));
        let body = res.bytes().await;
        let _ = stop.send(());
        let _ = server.await;
        body
    }

    #[tokio::test]
    async fn a_whole_stream_completes() {
        let chunks = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        assert_eq!(fetch(11, chunks).await.unwrap(), "hello world");
    }

    #[tokio::test]
    async fn a_read_error_aborts_the_response() {
        let chunks = vec![
            Ok(Bytes::from(vec![1; 1000])),
            Err(io::Error::other("shard fetch failed")),
            Ok(Bytes::from(vec![2; 1000])),
        ];
        assert!(fetch(2000, chunks).await.is_err());
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_is_not_complete() {
        assert!(fetch(2000, vec![Ok(Bytes::from(vec![1; 1000]))])
            .await
            .is_err());
    }
}
