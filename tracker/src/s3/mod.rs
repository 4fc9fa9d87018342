//! The S3 front end: the same buckets and objects as the native API, spoken as S3 (path style
//! and virtual-host style, AWS Signature Version 4 in headers, presigned URLs and
//! `aws-chunked` bodies with or without trailers, XML bodies and errors).
//!
//! The protocol layer is `s3s`: it verifies signatures (with the secret [`auth::Keys`] gives
//! for an access key), decodes chunked bodies and their checksums, parses requests into typed
//! inputs and writes the XML. This module maps each operation onto the [`Gateway`]: `service`
//! holds the operations, `objects` the object ones' pieces, `list` the listings (of objects and
//! of multipart uploads), `checksum` the `x-amz-checksum-*` check of bodies, `sums` which sums
//! requests send and ask for, `composite` the sum of a multipart object (`crc` joins the parts'
//! CRCs for a full-object one), `errors` the error codes, `auth` the access keys and their
//! bucket scopes.

mod auth;
mod checksum;
mod composite;
mod crc;
mod errors;
mod list;
mod objects;
mod service;
mod sums;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use std::sync::Arc;

use crate::gateway::Gateway;
use crate::metrics::metrics;

pub use list::{common_prefix, KeyEncoding, Lister, Page};
// The small parsers of request fields, public for the fuzz targets.
pub use auth::{percent_decoded, presigned_v2};
pub use checksum::{expected as announced_checksum, Algorithm as ChecksumAlgorithm};
pub use objects::content_md5;
pub use service::{copy_range, decode_token, encode_token};

/// The S3 service over `gateway`, every request signed by one of the gateway's access keys;
/// `domain` (such as `s3.example.com`) also accepts virtual-host style requests under it.
pub fn service(gateway: Gateway, domain: Option<String>) -> S3Http {
    let mut builder = S3ServiceBuilder::new(service::Front {
        gateway: gateway.clone(),
    });
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(limits()))));
    builder.set_auth(auth::Keys {
        gateway: gateway.clone(),
    });
    builder.set_access(auth::Keys { gateway });
    if let Some(domain) = domain {
        if let Ok(host) = s3s::host::SingleDomain::new(&domain) {
            builder.set_host(host);
        }
    }
    S3Http(builder.build())
}

/// s3s's limits: XML bodies up to what a completion of 10,000 parts or a batch delete of 1,000
/// keys needs; browser form uploads (refused before s3s sees them) get nothing.
fn limits() -> S3Config {
    let mut c = S3Config::default();
    c.xml_max_body_size = 4 << 20;
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 1 << 10;
    c.form_max_fields_size = 4 << 10;
    c.form_max_parts = 4;
    c
}

/// A browser form upload (PostObject): s3s would read the whole file into memory before any
/// check, for anyone, so it is refused before s3s sees it.
fn is_form_upload(req: &Request<Incoming>) -> bool {
    req.method() == hyper::Method::POST
        && req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

fn refusal(status: hyper::StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut res = Response::new(s3s::Body::from(xml));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    res
}

/// The S3 service as the gateway's HTTP listeners serve it: a failure inside `s3s` (never a
/// client's error, which is an XML answer) becomes a 500.
#[derive(Clone)]
pub struct S3Http(S3Service);

/// The S3 operation a path-style request names, as the metrics name it.
fn route_name<B>(req: &Request<B>) -> &'static str {
    use hyper::Method;
    let path = req.uri().path().trim_start_matches('/');
    let query = req.uri().query().unwrap_or("");
    let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
    let object = path.trim_end_matches('/').contains('/');
    let copy = req.headers().contains_key("x-amz-copy-source");
    match (req.method(), path.is_empty(), object) {
        (&Method::GET, true, _) => "list_buckets",
        (&Method::GET, false, false) if has("uploads") => "list_uploads",
        (&Method::GET, false, false) => "list_objects",
        (&Method::PUT, false, false) => "create_bucket",
        (&Method::DELETE, false, false) => "delete_bucket",
        (&Method::HEAD, false, false) => "head_bucket",
        (&Method::POST, false, false) if has("delete") => "delete_objects",
        (&Method::PUT, false, true) if has("uploadId") && copy => "upload_part_copy",
        (&Method::PUT, false, true) if has("uploadId") => "upload_part",
        (&Method::PUT, false, true) if copy => "copy_object",
        (&Method::PUT, false, true) => "put_object",
        (&Method::GET, false, true) if has("uploadId") => "list_parts",
        (&Method::GET, false, true) => "get_object",
        (&Method::HEAD, false, true) => "head_object",
        (&Method::DELETE, false, true) if has("uploadId") => "abort_upload",
        (&Method::DELETE, false, true) => "delete_object",
        (&Method::POST, false, true) if has("uploads") => "create_upload",
        (&Method::POST, false, true) if has("uploadId") => "complete_upload",
        _ => "other",
    }
}

impl tower_service::Service<Request<Incoming>> for S3Http {
    type Response = Response<s3s::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let (since, route) = (Instant::now(), route_name(&req));
        let has_body = !hyper::body::Body::is_end_stream(req.body());
        let form = is_form_upload(&req);
        let served = (!form).then(|| hyper::service::Service::call(&self.0, req));
        Box::pin(async move {
            let answer = match served {
                Some(served) => served.await,
                None => Ok(refusal(
                    hyper::StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "browser form uploads (POST Object) are not served; use PUT or a presigned URL",
                )),
            };
            let mut res = answer.unwrap_or_else(|e| {
                tracing::error!(error = ?e, "S3 request failed");
                refusal(
                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the request failed inside the gateway",
                )
            });
            // A refusal may leave some of the request's body unread: close the connection
            // rather than read what is left as the next request.
            if has_body && !res.status().is_success() {
                res.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            metrics().request("s3", route, res.status().as_u16(), since);
            Ok(res)
        })
    }
}
