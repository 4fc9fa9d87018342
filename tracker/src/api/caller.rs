//! Who sent an object API request (RT-0004 section 5): the operator, with a bearer API key (or
//! anyone, on an open API), or the holder of an S3 access key who signed the request with AWS
//! Signature Version 4 exactly as for S3. A key reaches only its own buckets, its writes are
//! recorded as its own and count against its quota, and its secret never crosses the wire.
//!
//! A signed request declares its body's SHA-256 in `x-amz-content-sha256` (or
//! `UNSIGNED-PAYLOAD`); a body that does not match fails its request before anything of it
//! becomes visible.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use raidtorrent_proto::sigv4::{self, Authorization, Request, SigV4Error};
use ring::digest;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::{respond, ApiAuth};
use crate::gateway::{ActiveKey, Gateway, GatewayError};
use crate::registry::unix_now;

/// Largest difference between a signature's date and the gateway's clock: S3's.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The sender of a request.
#[derive(Clone)]
pub enum Caller {
    /// An API key holder: every bucket, every route.
    Operator,
    /// An S3 access key holder: its buckets only; the body must match `payload`.
    Key { key: ActiveKey, payload: Payload },
}

/// What a signed request says of its body.
#[derive(Clone, Copy)]
pub enum Payload {
    Unsigned,
    Sha256([u8; 32]),
}

impl Caller {
    /// May this caller use `bucket`?
    pub fn may_use(&self, bucket: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Key { key, .. } => key.allows(bucket),
        }
    }

    /// The access key a write is recorded under (None for the operator).
    pub fn key(&self) -> Option<&ActiveKey> {
        match self {
            Caller::Operator => None,
            Caller::Key { key, .. } => Some(key),
        }
    }

    /// Refuses a buffered body that is not the one the signature declared.
    pub fn check_body(&self, body: &[u8]) -> Result<(), GatewayError> {
        match self {
            Caller::Key {
                payload: Payload::Sha256(want),
                ..
            } if digest::digest(&digest::SHA256, body).as_ref() != want => Err(body_mismatch()),
            _ => Ok(()),
        }
    }

    /// A streamed body that fails at its end if it is not the one the signature declared.
    pub fn checked_stream<S>(&self, body: S) -> impl Stream<Item = io::Result<Bytes>>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let want = match self {
            Caller::Key {
                payload: Payload::Sha256(want),
                ..
            } => Some(*want),
            _ => None,
        };
        let state = (body, digest::Context::new(&digest::SHA256), want, false);
        futures_util::stream::unfold(state, |(mut body, mut ctx, want, done)| async move {
            if done {
                return None;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    ctx.update(&chunk);
                    Some((Ok(chunk), (body, ctx, want, false)))
                }
                Some(Err(e)) => Some((Err(e), (body, ctx, want, true))),
                None => match want {
                    Some(w) if ctx.finish().as_ref() != w => {
                        let e = io::Error::new(io::ErrorKind::InvalidData, body_mismatch());
                        Some((
                            Err(e),
                            (body, digest::Context::new(&digest::SHA256), want, true),
                        ))
                    }
                    _ => None,
                },
            }
        })
    }
}

fn body_mismatch() -> GatewayError {
    GatewayError::BadRequest(
        "XAmzContentSHA256Mismatch: the body does not match x-amz-content-sha256".into(),
    )
}

/// A refusal before the request reached the gateway.
pub fn denied(status: StatusCode, code: &str, message: &str) -> Response {
    let mut res = respond::error(status, code, message);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// Identifies the sender, or answers why it may not send anything.
pub async fn identify(
    auth: &ApiAuth,
    gw: &Gateway,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(signed) = value.filter(|v| v.starts_with(sigv4::ALGORITHM)) {
        return signed_by_key(gw, signed, method, path, query, headers).await;
    }
    if auth.allows(headers) {
        return Ok(Caller::Operator);
    }
    Err(denied(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "send a valid API key as `Authorization: Bearer <key>`, or sign the request with an \
         S3 access key (AWS Signature Version 4)",
    ))
}

async fn signed_by_key(
    gw: &Gateway,
    value: &str,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    let forbidden = |code: &str, why: &str| denied(StatusCode::FORBIDDEN, code, why);
    let auth = Authorization::parse(value).map_err(|e| {
        denied(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            &e.to_string(),
        )
    })?;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let declared = pairs
        .iter()
        .find(|(n, _)| *n == "x-amz-content-sha256")
        .map_or("", |(_, v)| *v);
    let payload =
        payload(declared).map_err(|why| denied(StatusCode::BAD_REQUEST, "InvalidRequest", why))?;
    let req = Request {
        method: method.as_str(),
        path,
        query,
        headers: &pairs,
        payload_hash: declared,
    };
    check_fresh(&req).map_err(|why| forbidden("RequestTimeTooSkewed", &why))?;
    let key = match gw.access_keys().active(&auth.access_key).await {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err(forbidden(
                "InvalidAccessKeyId",
                "the access key does not exist or was revoked",
            ))
        }
        Err(e) => return Err(respond::gateway_error(&e)),
    };
    match sigv4::verify(&req, &auth, &key.secret) {
        Ok(()) => Ok(Caller::Key { key, payload }),
        Err(e @ SigV4Error::Mismatch) => Err(forbidden("SignatureDoesNotMatch", &e.to_string())),
        Err(e) => Err(forbidden("AccessDenied", &e.to_string())),
    }
}

fn payload(declared: &str) -> Result<Payload, &'static str> {
    if declared == sigv4::UNSIGNED_PAYLOAD {
        return Ok(Payload::Unsigned);
    }
    let bytes = hex::decode(declared)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.map(Payload::Sha256).ok_or(
        "x-amz-content-sha256 must be the body's SHA-256 (64 hex digits) or UNSIGNED-PAYLOAD; \
         the object API takes no streaming signatures",
    )
}

fn check_fresh(req: &Request<'_>) -> Result<(), String> {
    let date = sigv4::header(req, "x-amz-date").unwrap_or("");
    let Some(signed_at) = sigv4::amz_date_seconds(date) else {
        return Err("sign with an x-amz-date header (YYYYMMDDTHHMMSSZ)".into());
    };
    let skew = (unix_now() - signed_at).abs();
    if skew > MAX_SKEW_SECS {
        return Err(format!(
            "the request was signed {skew} s from the gateway's time; at most {MAX_SKEW_SECS} s \
             is accepted"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_payloads() {
        assert!(matches!(payload("UNSIGNED-PAYLOAD"), Ok(Payload::Unsigned)));
        assert!(matches!(
            payload(sigv4::EMPTY_SHA256),
            Ok(Payload::Sha256(_))
        ));
        for bad in [
            "",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "abcd",
            &"g".repeat(64),
        ] {
            assert!(payload(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_streamed_body_that_is_not_the_signed_one_fails_at_its_end() {
        let caller = |body: &[u8]| Caller::Key {
            key: ActiveKey {
                access_key: "RTKEY".into(),
                secret: "s".into(),
                buckets: vec!["b".into()],
                quota_bytes: None,
            },
            payload: Payload::Sha256(
                digest::digest(&digest::SHA256, body)
                    .as_ref()
                    .try_into()
                    .unwrap(),
            ),
        };
        let chunks = || futures_util::stream::iter([Ok(Bytes::from("ab")), Ok(Bytes::from("c"))]);
        let good: Vec<_> = caller(b"abc").checked_stream(chunks()).collect().await;
        assert!(good.iter().all(Result::is_ok) && good.len() == 2);
        let bad: Vec<_> = caller(b"abd").checked_stream(chunks()).collect().await;
        assert_eq!(bad.len(), 3);
        assert!(bad[2].is_err());
        assert!(caller(b"abc").check_body(b"abc").is_ok());
        assert!(caller(b"abc").check_body(b"abd").is_err());
        assert!(Caller::Operator.check_body(b"x").is_ok());
    }
}
