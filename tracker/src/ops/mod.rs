//! The operator view: the dashboard (its page and script embedded in the binary), the JSON it
//! reads, the Prometheus exposition, and the export of an object's shards for stock BitTorrent
//! clients. Served by the tracker's HTTP listener behind the admin credential (the server checks
//! it before a request reaches [`Ops::handle`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /admin/dashboard`, `/admin/assets/{app.js,style.css}` | the page |
//! | `GET /metrics` | Prometheus text (OpenMetrics) |
//! | `GET /admin/cloud` | cloud health: objects by state, shards by live copies, zones, tiers, repair, workers |
//! | `GET /admin/history` | samples of the cloud's counters every [`history::INTERVAL`] |
//! | `GET /admin/fleet`, `/admin/fleet/<id>` | nodes as the dashboard lists them; one node with its audits |
//! | `GET /admin/buckets`, `/admin/objects/<bucket>?prefix=&after=&limit=` | what is stored |
//! | `GET /admin/objects/<bucket>/<key>` | one object: shards, copies, health |
//! | `POST /admin/objects/<bucket>/<key>/torrents/<info-hash>.torrent` | a shard's torrent with a fresh inspector credential for it |
//! | `POST /admin/objects/<bucket>/<key>/export?ttl=<secs>` | every shard's torrent and magnet link, one inspector credential |
//!
//! Keys travel percent-encoded as one path segment (`encodeURIComponent`).

mod export;
mod history;
mod views;

use std::sync::Arc;

use warp::http::{header, Response, StatusCode};

use crate::control::ControlHub;
use crate::gateway::{Gateway, GatewayError};
use crate::registry::Registry;
use crate::scoring::ScoringConfig;
pub use history::History;

/// An answer of the operator view.
pub type Reply = Response<Vec<u8>>;

/// What the operator view reads; cheap to clone.
#[derive(Clone)]
pub struct Ops {
    inner: Arc<Inner>,
}

struct Inner {
    gateway: Gateway,
    hub: ControlHub,
    registry: Registry,
    scoring: ScoringConfig,
    history: History,
}

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

impl Ops {
    pub fn new(
        gateway: Gateway,
        hub: ControlHub,
        registry: Registry,
        scoring: ScoringConfig,
    ) -> Self {
        Ops {
            inner: Arc::new(Inner {
                gateway,
                hub,
                registry,
                scoring,
                history: History::default(),
            }),
        }
    }

    /// The control hub it reads connections from.
    pub fn hub(&self) -> &ControlHub {
        &self.inner.hub
    }

    /// The registry it reads nodes and scores from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The history the sampler fills (see [`History::run`]).
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// Answers an operator-view request; `None` when `path` is none of its routes.
    pub async fn handle(&self, post: bool, path: &str, query: &str) -> Option<Reply> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let reply = match (post, segments.as_slice()) {
            (false, ["metrics"]) => self.metrics().await,
            (false, ["admin", "dashboard"]) => Ok(asset("text/html; charset=utf-8", INDEX)),
            (false, ["admin", "assets", "app.js"]) => {
                Ok(asset("text/javascript; charset=utf-8", APP))
            }
            (false, ["admin", "assets", "style.css"]) => {
                Ok(asset("text/css; charset=utf-8", STYLE))
            }
            (false, ["admin", "cloud"]) => self.cloud().await.map(|v| json(StatusCode::OK, &v)),
            (false, ["admin", "history"]) => Ok(json(StatusCode::OK, &self.inner.history.json())),
            (false, ["admin", "fleet"]) => self.fleet().await.map(|v| json(StatusCode::OK, &v)),
            (false, ["admin", "fleet", id]) => self.node(id).await,
            (false, ["admin", "buckets"]) => self.buckets().await,
            (false, ["admin", "objects", bucket]) => self.listing(bucket, query).await,
            (post, ["admin", "objects", bucket, rest @ ..]) => {
                self.object_route(post, bucket, rest, query).await
            }
            _ => return None,
        };
        Some(reply.unwrap_or_else(|e| error_reply(&e)))
    }

    async fn object_route(
        &self,
        post: bool,
        bucket: &str,
        rest: &[&str],
        query: &str,
    ) -> Result<Reply, GatewayError> {
        let bucket = decode(bucket)?;
        match (post, rest) {
            (false, [key]) => self.object(&bucket, &decode(key)?).await,
            (false, [key, "torrents", file]) => self.torrent(&bucket, &decode(key)?, file).await,
            (true, [key, "export"]) => self.export(&bucket, &decode(key)?, query).await,
            _ => Err(GatewayError::BadRequest(
                "objects are addressed as /admin/objects/<bucket>/<percent-encoded key>".into(),
            )),
        }
    }
}

fn decode(segment: &str) -> Result<String, GatewayError> {
    crate::api::parse::percent_decode(segment, false).map_err(GatewayError::BadRequest)
}

/// `s` as one path segment.
fn encode(s: &str) -> String {
    crate::api::parse::percent_encode(s, b"-._~")
}

fn asset(content_type: &'static str, body: &'static str) -> Reply {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        // Only the gateway's own script and style, never inside another site's frame.
        .header(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        .body(body.as_bytes().to_vec())
        .expect("static headers")
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(serde_json::to_vec(v).expect("serialisable"))
        .expect("static headers")
}

fn error_reply(e: &GatewayError) -> Reply {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &serde_json::json!({ "error": e.to_string() }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_travels_as_one_segment_and_comes_back_whole() {
        for key in ["a/b c", "100%/x+y", "ünï/\\?#&=", ""] {
            let enc = super::encode(key);
            assert!(!enc.contains('/'));
            assert_eq!(super::decode(&enc).unwrap(), key);
        }
    }
}
