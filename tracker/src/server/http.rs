//! HTTP front: announce and scrape (bencoded, always `200 OK`, errors as `failure reason`) and
//! the admin API, `Authorization: Bearer <admin token>`: the node reports (`GET /admin/nodes`,
//! `GET /admin/nodes/<id>`, JSON; they name every volunteer's addresses and held shards, so
//! nothing of them is public), `POST /admin/nodes`, `POST /admin/nodes/<id>/revoke`,
//! `POST /admin/nodes/<id>/requalify`; and the gateway's S3 access keys: `GET /admin/s3-keys`
//! (never the secrets), `POST /admin/s3-keys` (`{"owner", "buckets"}`: the key and its secret,
//! shown this once), `POST /admin/s3-keys/<id>/revoke`. Node reports carry each node's score, tier and reasons,
//! computed with the tracker's scoring configuration.
//!
//! Routing is done by hand on the path so announce (the hot path) costs one match and no
//! allocation beyond the answer buffer.

use crate::gateway::GatewayError;
use crate::net::PeerAddr;
use crate::protocol::bencode_out::{write_failure, write_scrape, AnnounceResponse};
use crate::protocol::http::{parse_scrape, AnnounceRequest};
use crate::protocol::udp::passkey_from_path;
use crate::registry::{unix_now, NodeId, RegistryError};
use crate::swarm::Family;
use crate::tracker::{AnnounceInput, Tracker};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use warp::http::{header, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::Filter;

type Reply = Response<Vec<u8>>;

fn bencode(body: Vec<u8>) -> Reply {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .expect("static headers")
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(v).expect("serialisable"))
        .expect("static headers")
}

fn json_error(status: StatusCode, msg: &str) -> Reply {
    json(status, &serde_json::json!({ "error": msg }))
}

fn failure(reason: &str) -> Reply {
    let mut out = Vec::with_capacity(32 + reason.len());
    write_failure(reason, &mut out);
    bencode(out)
}

/// All routes of the HTTP server.
pub fn routes(
    tracker: Arc<Tracker>,
    admin_token: Option<String>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let admin_token: Arc<Option<String>> = Arc::new(admin_token);
    let (t, token) = (tracker.clone(), admin_token.clone());
    let get = warp::get()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|p| p.0)))
        .and(warp::header::optional::<String>("authorization"))
        .then(
            move |path: warp::path::FullPath, query: String, remote, auth| {
                let (t, token) = (t.clone(), token.clone());
                async move {
                    let path = path.as_str();
                    if path.starts_with("/admin/") {
                        return match admin_refusal(token.as_deref(), auth) {
                            None => reports(&t, path).await,
                            Some(refused) => refused,
                        };
                    }
                    get_route(&t, path, query.as_bytes(), remote)
                }
            },
        );
    let post = warp::post()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .then(move |path: warp::path::FullPath, auth, body: Bytes| {
            let t = tracker.clone();
            let token = admin_token.clone();
            async move { admin_route(&t, token.as_deref(), path.as_str(), auth, &body).await }
        });
    get.or(post).unify()
}

fn get_route(t: &Tracker, path: &str, query: &[u8], remote: Option<SocketAddr>) -> Reply {
    let first = path.split('/').find(|s| !s.is_empty());
    if matches!(first, Some("announce" | "scrape")) {
        let passkey = passkey_from_path(path.as_bytes());
        if !path_is_tracker(path.as_bytes(), passkey) {
            return failure("tracker paths are /announce/<passkey> and /scrape/<passkey>");
        }
    }
    match first {
        Some("announce") => {
            let Some(remote) = remote else {
                return failure("no peer address");
            };
            announce(t, passkey_from_path(path.as_bytes()), query, remote)
        }
        Some("scrape") => scrape(t, passkey_from_path(path.as_bytes()), query),
        _ => not_found(),
    }
}

/// The node reports, `/admin/nodes` and `/admin/nodes/<id>`: addresses, presence and held
/// shards of every volunteer, so only for the holder of the admin token.
async fn reports(t: &Tracker, path: &str) -> Reply {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments[1..] {
        ["nodes"] => match t.registry().reports_scored(unix_now(), t.scoring()).await {
            Ok(r) => json(StatusCode::OK, &r),
            Err(e) => internal(e),
        },
        ["s3-keys"] => match t.access_keys() {
            None => s3_off(),
            Some(keys) => match keys.list().await {
                Ok(l) => json(StatusCode::OK, &l),
                Err(e) => internal(e),
            },
        },
        ["nodes", id] => match id.parse::<NodeId>() {
            Ok(id) => match t
                .registry()
                .report_scored(id, unix_now(), t.scoring())
                .await
            {
                Ok(r) => json(StatusCode::OK, &r),
                Err(e @ RegistryError::NoSuchNode(_)) => {
                    json_error(StatusCode::NOT_FOUND, &e.to_string())
                }
                Err(e) => internal(e),
            },
            Err(_) => json_error(StatusCode::BAD_REQUEST, "node id must be an integer"),
        },
        _ => not_found(),
    }
}

/// The answer to a request without `Authorization: Bearer <admin token>`; `None` lets it through.
fn admin_refusal(token: Option<&str>, auth: Option<String>) -> Option<Reply> {
    let Some(token) = token else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "the admin API is disabled (no admin_token)",
        ));
    };
    let given = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    if given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token",
        ))
    }
}

fn not_found() -> Reply {
    json_error(StatusCode::NOT_FOUND, "no such resource")
}

fn internal(e: impl std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "registry query failed");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// A path that looked like `/announce/<passkey>` but with extra segments is refused rather than
/// served as passkey-less.
fn path_is_tracker(path: &[u8], passkey: Option<&[u8]>) -> bool {
    passkey.is_some() || path == b"/announce" || path == b"/scrape"
}

fn announce(t: &Tracker, passkey: Option<&[u8]>, query: &[u8], remote: SocketAddr) -> Reply {
    let req = match AnnounceRequest::parse(query) {
        Ok(r) => r,
        Err(e) => return failure(&e.to_string()),
    };
    let ip = remote.ip().to_canonical();
    let mut peers = Vec::with_capacity(req.numwant.unwrap_or(50).min(200) as usize);
    let answer = t.announce(
        &AnnounceInput {
            passkey,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            addr: SocketAddr::new(ip, req.port),
            uploaded: req.uploaded,
            downloaded: req.downloaded,
            left: req.left,
            event: req.event,
            numwant: req.numwant,
            family: Family::Any,
        },
        &mut peers,
    );
    match answer {
        Ok(a) => {
            let mut out = Vec::with_capacity(96 + peers.len() * 6);
            AnnounceResponse {
                interval: a.interval,
                min_interval: a.min_interval,
                counts: a.counts,
                peers: &peers,
                dict_peers: !req.compact,
                no_peer_id: req.no_peer_id,
            }
            .write(&mut out);
            bencode(out)
        }
        Err(e) => failure(&e.to_string()),
    }
}

fn scrape(t: &Tracker, passkey: Option<&[u8]>, query: &[u8]) -> Reply {
    let hashes = match parse_scrape(query) {
        Ok(h) => h,
        Err(e) => return failure(&e.to_string()),
    };
    match t.scrape(passkey, &hashes) {
        Ok(counts) => {
            let files: Vec<_> = hashes.into_iter().zip(counts).collect();
            let mut out = Vec::with_capacity(16 + files.len() * 80);
            write_scrape(&files, &mut out);
            bencode(out)
        }
        Err(e) => failure(&e.to_string()),
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateNode {
    name: String,
    /// The node's zone and capacity limit (optional).
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    capacity_limit: Option<u64>,
}

async fn admin_route(
    t: &Tracker,
    token: Option<&str>,
    path: &str,
    auth: Option<String>,
    body: &[u8],
) -> Reply {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first() != Some(&"admin") {
        return not_found();
    }
    if let Some(refused) = admin_refusal(token, auth) {
        return refused;
    }
    match segments[1..] {
        ["nodes"] => {
            let req: CreateNode = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"))
                }
            };
            let facts = crate::registry::Registration {
                zone: req.zone,
                capacity_limit: req.capacity_limit,
            };
            match t.registry().register_node(&req.name, &facts).await {
                Ok(n) => {
                    tracing::info!(node = n.node.id, name = %n.node.name, "node registered");
                    json(StatusCode::CREATED, &n)
                }
                Err(e @ (RegistryError::BadName | RegistryError::BadRegistration(_))) => {
                    json_error(StatusCode::BAD_REQUEST, &e.to_string())
                }
                Err(e) => internal(e),
            }
        }
        ["nodes", id, "revoke"] => {
            let Ok(id) = id.parse::<NodeId>() else {
                return json_error(StatusCode::BAD_REQUEST, "node id must be an integer");
            };
            match t.registry().revoke(id).await {
                Ok(n) => {
                    tracing::info!(node = id, "node revoked");
                    json(StatusCode::OK, &n)
                }
                Err(e @ RegistryError::NoSuchNode(_)) => {
                    json_error(StatusCode::NOT_FOUND, &e.to_string())
                }
                Err(e) => internal(e),
            }
        }
        ["nodes", id, "requalify"] => {
            let Ok(id) = id.parse::<NodeId>() else {
                return json_error(StatusCode::BAD_REQUEST, "node id must be an integer");
            };
            let now = unix_now();
            match t.registry().requalify(id, now).await {
                Ok(was) => {
                    tracing::info!(node = id, was_disqualified = was, "node requalified");
                    match t.registry().report_scored(id, now, t.scoring()).await {
                        Ok(r) => json(StatusCode::OK, &r),
                        Err(e) => internal(e),
                    }
                }
                Err(e @ RegistryError::NoSuchNode(_)) => {
                    json_error(StatusCode::NOT_FOUND, &e.to_string())
                }
                Err(e) => internal(e),
            }
        }
        ["s3-keys"] => create_s3_key(t, body).await,
        ["s3-keys", id, "revoke"] => revoke_s3_key(t, id).await,
        _ => not_found(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateS3Key {
    owner: String,
    buckets: Vec<String>,
}

/// `POST /admin/s3-keys` `{"owner": ..., "buckets": [...]}`: the key and its secret, shown
/// this once.
async fn create_s3_key(t: &Tracker, body: &[u8]) -> Reply {
    let Some(keys) = t.access_keys() else {
        return s3_off();
    };
    let req: CreateS3Key = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    match keys.create(&req.owner, &req.buckets).await {
        Ok((key, secret)) => {
            tracing::info!(access_key = %key.access_key, owner = %key.owner, "S3 access key made");
            json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "access_key": key.access_key,
                    "secret_key": secret,
                    "owner": key.owner,
                    "buckets": key.buckets,
                }),
            )
        }
        Err(e @ (GatewayError::BadRequest(_) | GatewayError::InvalidBucketName(_))) => {
            json_error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => internal(e),
    }
}

/// `POST /admin/s3-keys/<id>/revoke`.
async fn revoke_s3_key(t: &Tracker, id: &str) -> Reply {
    let Some(keys) = t.access_keys() else {
        return s3_off();
    };
    match keys.revoke(id).await {
        Ok(()) => {
            tracing::info!(access_key = %id, "S3 access key revoked");
            json(StatusCode::OK, &serde_json::json!({ "revoked": id }))
        }
        Err(GatewayError::BadRequest(m)) => json_error(StatusCode::NOT_FOUND, &m),
        Err(e) => internal(e),
    }
}

fn s3_off() -> Reply {
    json_error(
        StatusCode::NOT_FOUND,
        "this gateway serves no objects, so no S3 keys",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcdef", b"abcdef"));
        assert!(!same_secret(b"abcdef", b"abcdeg"));
        assert!(!same_secret(b"abc", b"abcdef"));
    }

    #[test]
    fn tracker_paths() {
        assert!(path_is_tracker(b"/announce", None));
        assert!(path_is_tracker(b"/announce/k", Some(b"k")));
        assert!(!path_is_tracker(b"/announce/a/b", None));
    }
}
