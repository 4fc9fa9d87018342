//! The object API: buckets and objects over HTTP, path style as in S3, in front of a [`Gateway`].
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | `{"buckets": [Bucket...]}` |
//! | `PUT /<bucket>` (body: optional JSON bucket policy) | 200, the `Bucket`; 409 if it exists |
//! | `GET /<bucket>?prefix=&after=&limit=` | 200, a `Listing`; pass `next_after` as `after` for the next page |
//! | `HEAD /<bucket>` | 200 or 404 |
//! | `PUT /<bucket>/<key>` (body: the object, streamed) | 200, the `ObjectInfo` once the object is durable |
//! | `GET /<bucket>/<key>` (optional `Range: bytes=a-b`, `a-` or `-n`) | 200, or 206 with `Content-Range`; 416 with `Content-Range: bytes */size` |
//! | `HEAD /<bucket>/<key>` | 200 with `Content-Length`, `ETag` (SHA-256), `Last-Modified` |
//! | `DELETE /<bucket>/<key>` | 204 |
//! | `POST /_place/...`, `GET /_place/...`, `DELETE /_place/...`, `GET /_cap/...` | client placements and capability reads ([`client`], RT-0004) |
//! | `GET /_health` | 200, the health worker's `HealthStatus`: its state, what its latest plan found, repairs done, and every worker's state (`workers`) |
//!
//! A gateway whose data path is off (`objects.data_path = false`) answers an object's PUT and GET
//! with 403 `DataPathOff` before reading the body: its users store and read with
//! `raidtorrent-peer put/get`; everything else here still answers.
//!
//! Every request carries `Authorization: Bearer <key>` unless the API is open (see [`ApiAuth`]),
//! or is signed with an S3 access key (AWS Signature Version 4, service `s3`, any region): such
//! a request reaches only the key's buckets, its writes count against the key's quota, and its
//! body must match its `x-amz-content-sha256` ([`Caller`], RT-0004 section 5).
//! Errors are JSON, `{"error": code, "message": text}`, with the status the gateway gives the
//! error ([`GatewayError::http_status`]); requests the API cannot parse get 400 and say why.
//! A request for several byte ranges gets the whole object (200): multipart answers are not made.
//!
//! Objects stream both ways: a PUT hands the request body to the gateway as an `AsyncRead` (a
//! 2 GiB upload never sits in memory), and a GET sends the gateway's chunks as they come. A body
//! that breaks off mid-upload fails the PUT (400) and nothing becomes visible; a read that fails
//! mid-download cuts the response short of its `Content-Length`, never completing it.

mod caller;
mod client;
pub use caller::{Caller, MAX_SKEW_SECS};
pub use client::client_shards;
pub mod parse;
mod respond;

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio_util::io::StreamReader;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::gateway::{BucketPolicy, Gateway, GatewayError, PutAttrs};
use crate::metrics::metrics;
use parse::{RangeAnswer, Target};

/// Largest bucket policy body accepted.
const MAX_POLICY_BYTES: usize = 64 << 10;

/// Which clients may use the object API.
#[derive(Clone)]
pub struct ApiAuth {
    /// SHA-256 of each accepted key: comparing digests keeps the keys' bytes out of timing.
    keys: Arc<Vec<[u8; 32]>>,
}

impl ApiAuth {
    /// Accepts requests carrying `Authorization: Bearer <key>` for one of `keys`. An empty list
    /// means an open API, which only a local devnet should run: say so with [`ApiAuth::open`].
    pub fn keys<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys: Vec<_> = keys
            .into_iter()
            .map(|k| digest(k.as_ref().as_bytes()))
            .collect();
        if keys.is_empty() {
            tracing::warn!("object API has no keys: anyone who can reach it can read and write");
        }
        ApiAuth {
            keys: Arc::new(keys),
        }
    }

    /// No authentication at all, for a local devnet on loopback.
    pub fn open() -> Self {
        ApiAuth::keys(Vec::<String>::new())
    }

    /// True when every request is accepted.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        if self.is_open() {
            return true;
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|k| digest(k.trim().as_bytes()));
        presented.is_some_and(|d| self.keys.contains(&d))
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Every route of the object API; serve it on its own listener (bucket names would collide
/// with the tracker's paths).
pub fn routes(
    gateway: Gateway,
    auth: ApiAuth,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let api = Arc::new(Api { gateway, auth });
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method, path: FullPath, query: String, headers, body| {
                let api = api.clone();
                async move {
                    let (since, route) = (Instant::now(), route_name(&method, path.as_str()));
                    let res = api
                        .handle(method, path.as_str(), &query, headers, body)
                        .await;
                    metrics().request("native", route, res.status().as_u16(), since);
                    res
                }
            },
        )
        .recover(|r: Rejection| async move {
            // The filters above take anything; reaching here is a warp fault, not the client's.
            tracing::error!(rejection = ?r, "object API request rejected by its filters");
            Ok::<_, Infallible>(respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the request could not be routed",
            ))
        })
        .unify()
}

struct Api {
    gateway: Gateway,
    auth: ApiAuth,
}

impl Api {
    async fn handle<S, B>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        headers: HeaderMap,
        body: S,
    ) -> Response
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf + Send + 'static,
    {
        // A capability is its own credential (RT-0004): its manifest hash is the secret.
        if let Some(rest) = path.strip_prefix("/_cap/") {
            let result = match method {
                Method::GET => client::capability(&self.gateway, rest, query).await,
                _ => Err(GatewayError::BadRequest("use GET on /_cap/".into())),
            };
            return result.unwrap_or_else(|e| respond::gateway_error(&e));
        }
        let caller =
            match caller::identify(&self.auth, &self.gateway, &method, path, query, &headers).await
            {
                Ok(caller) => caller,
                Err(refusal) => return refusal,
            };
        if path == "/_health" {
            return self.health(&method, &caller);
        }
        if let Some(rest) = path.strip_prefix("/_place/") {
            return self.place(&caller, &method, rest, query, body).await;
        }
        let target = match parse::target(path) {
            Ok(t) => t,
            Err(e) => return respond::bad_request(&e),
        };
        if let Some(bucket) = target.bucket().filter(|b| !caller.may_use(b)) {
            return caller::denied(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                &format!("this access key may not use bucket {bucket}"),
            );
        }
        self.route(&caller, &method, target, query, &headers, body)
            .await
            .unwrap_or_else(|e| respond::gateway_error(&e))
    }

    async fn route<S, B>(
        &self,
        caller: &Caller,
        method: &Method,
        target: Target,
        query: &str,
        headers: &HeaderMap,
        body: S,
    ) -> Result<Response, GatewayError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf + Send + 'static,
    {
        match (method, target) {
            (&Method::GET, Target::Root) => self.buckets(caller).await,
            (&Method::PUT, Target::Bucket(b)) => self.create_bucket(caller, &b, body).await,
            (&Method::GET, Target::Bucket(b)) => self.list(&b, query).await,
            (&Method::HEAD, Target::Bucket(b)) => self
                .gateway
                .list(&b, "", None, 1)
                .await
                .map(|_| respond::empty(StatusCode::OK)),
            (&Method::PUT, Target::Object(b, k)) => self.put(caller, &b, &k, headers, body).await,
            (&Method::GET, Target::Object(b, k)) => self.get(&b, &k, headers).await,
            (&Method::HEAD, Target::Object(b, k)) => self.gateway.head(&b, &k).await.map(|info| {
                let mut res = respond::empty(StatusCode::OK);
                respond::object_headers(&mut res, &info, info.size);
                res
            }),
            (&Method::DELETE, Target::Object(b, k)) => self
                .gateway
                .delete(&b, &k)
                .await
                .map(|()| respond::empty(StatusCode::NO_CONTENT)),
            (_, target) => Ok(not_allowed(method, &target)),
        }
    }

    /// The health report, for the operator only.
    fn health(&self, method: &Method, caller: &Caller) -> Response {
        if caller.key().is_some() {
            return caller::denied(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "the health report is for the operator's API keys",
            );
        }
        if method == Method::GET {
            return respond::json(StatusCode::OK, &self.gateway.health_status());
        }
        let mut res = respond::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not supported on the health report; use GET"),
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        res
    }

    async fn place<S, B>(
        &self,
        caller: &Caller,
        method: &Method,
        rest: &str,
        query: &str,
        body: S,
    ) -> Response
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf + Send + 'static,
    {
        let body = match *method {
            Method::POST => {
                let read = read_small(body, client::MAX_PLACE_BODY, "a placement").await;
                match read.and_then(|b| caller.check_body(&b).map(|()| b)) {
                    Ok(b) => Some(b),
                    Err(e) => return respond::gateway_error(&e),
                }
            }
            _ => None,
        };
        client::place(&self.gateway, caller, method, rest, query, body)
            .await
            .unwrap_or_else(|e| respond::gateway_error(&e))
    }

    async fn buckets(&self, caller: &Caller) -> Result<Response, GatewayError> {
        let mut buckets = self.gateway.buckets().await?;
        buckets.retain(|b| caller.may_use(&b.name));
        Ok(respond::json(
            StatusCode::OK,
            &serde_json::json!({ "buckets": buckets }),
        ))
    }

    async fn create_bucket<S, B>(
        &self,
        caller: &Caller,
        name: &str,
        body: S,
    ) -> Result<Response, GatewayError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        let bytes = read_small(body, MAX_POLICY_BYTES, "a bucket policy").await?;
        caller.check_body(&bytes)?;
        let policy = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let policy: BucketPolicy = serde_json::from_slice(&bytes).map_err(|e| {
                GatewayError::BadRequest(format!(
                    "the body must be a JSON bucket policy with k, m, copies, high_share and \
                     inline_max: {e}"
                ))
            })?;
            Some(policy)
        };
        let bucket = self.gateway.create_bucket(name, policy).await?;
        Ok(respond::json(StatusCode::OK, &bucket))
    }

    async fn list(&self, bucket: &str, query: &str) -> Result<Response, GatewayError> {
        let q = parse::list_query(query).map_err(GatewayError::BadRequest)?;
        let listing = self
            .gateway
            .list(bucket, &q.prefix, q.after.as_deref(), q.limit)
            .await?;
        Ok(respond::json(StatusCode::OK, &listing))
    }

    async fn put<S, B>(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
        body: S,
    ) -> Result<Response, GatewayError>
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf + Send + 'static,
    {
        self.gateway.carries_data()?;
        // hyper has already refused a malformed Content-Length; chunked uploads have none.
        let size_hint = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let _quota = self.gateway.reserve_write(caller.key(), size_hint).await?;
        let chunks = body.map(|chunk| {
            chunk
                .map(|mut c| c.copy_to_bytes(c.remaining()))
                .map_err(io::Error::other)
        });
        let reader = StreamReader::new(Box::pin(caller.checked_stream(Box::pin(chunks))));
        let attrs = PutAttrs {
            placed_by: caller.key().map(|k| k.access_key.clone()),
            ..PutAttrs::default()
        };
        let info = self
            .gateway
            .put_with(bucket, key, reader, size_hint, attrs)
            .await?;
        let mut res = respond::json(StatusCode::OK, &info);
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
            res.headers_mut().insert(header::ETAG, etag);
        }
        Ok(res)
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response, GatewayError> {
        self.gateway.carries_data()?;
        let mut ranges = headers.get_all(header::RANGE).iter();
        let range = match (ranges.next(), ranges.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().map_err(|_| {
                GatewayError::BadRequest("the Range header is not ASCII".to_owned())
            })?),
            (Some(_), Some(_)) => {
                return Err(GatewayError::BadRequest(
                    "more than one Range header".to_owned(),
                ))
            }
        };
        let range = match range {
            None => None,
            Some(value) => {
                // The size decides what a range means, so look the object up first; the gateway
                // checks the range again against the object it actually reads.
                let size = self.gateway.head(bucket, key).await?.size;
                match parse::range(value, size).map_err(GatewayError::BadRequest)? {
                    RangeAnswer::Whole => None,
                    RangeAnswer::Part(r) => Some(r),
                    RangeAnswer::Unsatisfiable => return Ok(respond::unsatisfiable(size)),
                }
            }
        };
        let (info, body) = self.gateway.get(bucket, key, range.clone()).await?;
        Ok(respond::object(&info, range, body))
    }
}

/// Reads a body of at most `limit` bytes; `what` names it in the error.
async fn read_small<S, B>(body: S, limit: usize, what: &str) -> Result<Vec<u8>, GatewayError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| GatewayError::Upload(io::Error::other(e)))?;
        if out.len() + chunk.remaining() > limit {
            return Err(GatewayError::BadRequest(format!(
                "{what} is at most {limit} bytes"
            )));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// The route a request takes, as the metrics name it.
fn route_name(method: &Method, path: &str) -> &'static str {
    if path == "/_health" {
        return "health";
    }
    if path.starts_with("/_cap/") {
        return "capability_read";
    }
    if path.starts_with("/_place/") {
        return match *method {
            Method::POST => "place",
            Method::DELETE => "cancel_placement",
            _ => "placement_status",
        };
    }
    match (method, parse::target(path)) {
        (&Method::GET, Ok(Target::Root)) => "list_buckets",
        (&Method::PUT, Ok(Target::Bucket(_))) => "create_bucket",
        (&Method::GET, Ok(Target::Bucket(_))) => "list_objects",
        (&Method::HEAD, Ok(Target::Bucket(_))) => "head_bucket",
        (&Method::PUT, Ok(Target::Object(..))) => "put_object",
        (&Method::GET, Ok(Target::Object(..))) => "get_object",
        (&Method::HEAD, Ok(Target::Object(..))) => "head_object",
        (&Method::DELETE, Ok(Target::Object(..))) => "delete_object",
        _ => "other",
    }
}

fn not_allowed(method: &Method, target: &Target) -> Response {
    let (allow, what) = match target {
        Target::Root => ("GET", "the bucket list"),
        Target::Bucket(_) => ("GET, HEAD, PUT", "a bucket"),
        Target::Object(..) => ("GET, HEAD, PUT, DELETE", "an object"),
    };
    let mut res = respond::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("{method} is not supported on {what}; use {allow}"),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}
