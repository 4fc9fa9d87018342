//! The S3 front end: the same buckets and objects as the native API, spoken as S3 (path style
//! and virtual-host style, AWS Signature Version 4 in headers, presigned URLs and
//! `aws-chunked` bodies with or without trailers, XML bodies and errors).
//!
//! The protocol layer is `s3s`: it verifies signatures (with the secret [`auth::Keys`] gives
//! for an access key), decodes chunked bodies and their checksums, parses requests into typed
//! inputs and writes the XML. This module maps each operation onto the [`Gateway`]: `service`
//! holds the operations, `objects` the object ones' pieces, `list` the listings, `errors` the
//! error codes, `auth` the access keys and their bucket scopes.

mod auth;
mod errors;
mod list;
mod objects;
mod service;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::{Request, Response};
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::gateway::Gateway;

pub use list::{common_prefix, Lister, Page};

/// The S3 service over `gateway`, every request signed by one of the gateway's access keys;
/// `domain` (such as `s3.example.com`) also accepts virtual-host style requests under it.
pub fn service(gateway: Gateway, domain: Option<String>) -> S3Http {
    let mut builder = S3ServiceBuilder::new(service::Front {
        gateway: gateway.clone(),
    });
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

/// The S3 service as the gateway's HTTP listeners serve it: a failure inside `s3s` (never a
/// client's error, which is an XML answer) becomes a 500.
#[derive(Clone)]
pub struct S3Http(S3Service);

impl tower_service::Service<Request<Incoming>> for S3Http {
    type Response = Response<s3s::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let has_body = !hyper::body::Body::is_end_stream(req.body());
        let served = hyper::service::Service::call(&self.0, req);
        Box::pin(async move {
            let mut res = served.await.unwrap_or_else(|e| {
                tracing::error!(error = ?e, "S3 request failed");
                let mut res = Response::new(s3s::Body::from("internal error".to_owned()));
                *res.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                res
            });
            // A refusal may leave some of the request's body unread: close the connection
            // rather than read what is left as the next request.
            if has_body && !res.status().is_success() {
                res.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(res)
        })
    }
}
