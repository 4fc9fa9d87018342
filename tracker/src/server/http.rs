//! HTTP front: announce and scrape (bencoded, always `200 OK`, errors as `failure reason`) and
//! the admin API, `Authorization: Bearer <admin token>`: the node reports (`GET /admin/nodes`,
//! `GET /admin/nodes/<id>`, JSON; they name every volunteer's addresses and held shards, so
//! nothing of them is public), `POST /admin/nodes`, `POST /admin/nodes/<id>/revoke`,
//! `POST /admin/nodes/<id>/requalify`; and the gateway's S3 access keys: `GET /admin/s3-keys`
//! (never the secrets; each key's `quota_bytes` and the `used_bytes` of its objects),
//! `POST /admin/s3-keys` (`{"owner", "buckets", "quota_bytes"?}`: the key and its secret, shown
//! this once), `POST /admin/s3-keys/<id>/revoke`, `POST /admin/s3-keys/<id>/quota`
//! (`{"quota_bytes": n}`, or `null` for no limit). Node reports carry each node's score, tier
//! and reasons, computed with the tracker's scoring configuration.
//!
//! Routing is done by hand on the path so announce (the hot path) costs one match and no
//! allocation beyond the answer buffer.

use crate::gateway::GatewayError;
use crate::metrics::{metrics, Metrics};
use crate::net::PeerAddr;
use crate::protocol::bencode_out::{write_failure, write_scrape, AnnounceResponse};
use crate::protocol::http::{parse_scrape, AnnounceRequest};
use crate::protocol::udp::passkey_from_path;
use crate::registry::{unix_now, NodeId, RegistryError};
use crate::swarm::Family;
use crate::tracker::{AnnounceInput, Tracker};
use base64::Engine;
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
                    if path.starts_with("/admin/") || path == "/metrics" {
                        if let Some(refused) = admin_refusal(token.as_deref(), auth) {
                            return refused;
                        }
                        if let Some(reply) = operator_view(&t, false, path, &query).await {
                            return reply;
                        }
                        return reports(&t, path).await;
                    }
                    get_route(&t, path, query.as_bytes(), remote)
                }
            },
        );
    let post = warp::post()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("x-requested-with"))
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .then(
            move |path: warp::path::FullPath,
                  query: String,
                  auth: Option<String>,
                  scripted: Option<String>,
                  body: Bytes| {
                let t = tracker.clone();
                let token = admin_token.clone();
                async move {
                    // A browser holding the Basic credential would send it with any page's form
                    // too: a POST on it must come from a script (a header no form can set).
                    let auth = match scripted {
                        Some(_) => auth,
                        None => auth.filter(|a| !a.starts_with("Basic ")),
                    };
                    let request = AdminRequest {
                        path: path.as_str(),
                        query: &query,
                        auth,
                        body: &body,
                    };
                    admin_route(&t, token.as_deref(), request).await
                }
            },
        );
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

/// The operator view's answer (dashboard, its JSON, metrics, shard export), when the gateway
/// serves one and `path` is one of its routes.
async fn operator_view(t: &Tracker, post: bool, path: &str, query: &str) -> Option<Reply> {
    t.ops()?.handle(post, path, query).await
}

/// The answer to a request without the admin token; `None` lets it through. The token comes as
/// `Authorization: Bearer <token>`, or as the password of HTTP Basic authentication (any user
/// name), which is what a browser sends for the dashboard.
fn admin_refusal(token: Option<&str>, auth: Option<String>) -> Option<Reply> {
    let Some(token) = token else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "the admin API is disabled (no admin_token)",
        ));
    };
    if presented_token(auth.as_deref()).is_some_and(|g| same_secret(&g, token.as_bytes())) {
        return None;
    }
    let mut refused = json_error(StatusCode::UNAUTHORIZED, "missing or wrong admin token");
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"raidtorrent gateway\", charset=\"UTF-8\""),
    );
    Some(refused)
}

/// The admin token an `Authorization` header carries: a Bearer token, or a Basic password.
pub fn presented_token(auth: Option<&str>) -> Option<Vec<u8>> {
    let auth = auth?;
    if let Some(t) = auth.strip_prefix("Bearer ") {
        return Some(t.as_bytes().to_vec());
    }
    let encoded = auth.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
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
    let announces = &metrics().announces;
    let req = match AnnounceRequest::parse(query) {
        Ok(r) => r,
        Err(e) => {
            announces.count("http", "error");
            return failure(&e.to_string());
        }
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
    announces.count("http", Metrics::verdict(&answer));
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
        Err(e) => {
            metrics().scrapes.count("http", "error");
            return failure(&e.to_string());
        }
    };
    let answer = t.scrape(passkey, &hashes);
    metrics().scrapes.count("http", Metrics::verdict(&answer));
    match answer {
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

/// A POST to the admin API.
struct AdminRequest<'a> {
    path: &'a str,
    query: &'a str,
    auth: Option<String>,
    body: &'a [u8],
}

async fn admin_route(t: &Tracker, token: Option<&str>, req: AdminRequest<'_>) -> Reply {
    let (path, body) = (req.path, req.body);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first() != Some(&"admin") {
        return not_found();
    }
    if let Some(refused) = admin_refusal(token, req.auth) {
        return refused;
    }
    if let Some(reply) = operator_view(t, true, path, req.query).await {
        return reply;
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
        ["s3-keys", id, "quota"] => set_s3_key_quota(t, id, body).await,
        _ => not_found(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateS3Key {
    owner: String,
    buckets: Vec<String>,
    /// Most bytes the key's objects may take; absent or null: no limit.
    #[serde(default)]
    quota_bytes: Option<u64>,
}

/// `POST /admin/s3-keys` `{"owner": ..., "buckets": [...], "quota_bytes": n}` (the quota is
/// optional): the key and its secret, shown this once.
async fn create_s3_key(t: &Tracker, body: &[u8]) -> Reply {
    let Some(keys) = t.access_keys() else {
        return s3_off();
    };
    let req: CreateS3Key = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    match keys.create(&req.owner, &req.buckets, req.quota_bytes).await {
        Ok((key, secret)) => {
            tracing::info!(access_key = %key.access_key, owner = %key.owner, "S3 access key made");
            json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "access_key": key.access_key,
                    "secret_key": secret,
                    "owner": key.owner,
                    "buckets": key.buckets,
                    "quota_bytes": key.quota_bytes,
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
        Err(e @ GatewayError::NoSuchAccessKey(_)) => {
            json_error(StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => internal(e),
    }
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuota {
    /// Required, so that `{}` cannot lift a quota by mistake; null lifts it.
    #[serde(deserialize_with = "present")]
    quota_bytes: Option<u64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::deserialize(d)
}

/// `POST /admin/s3-keys/<id>/quota` `{"quota_bytes": n | null}`: the key's quota and the bytes
/// its objects take now.
async fn set_s3_key_quota(t: &Tracker, id: &str, body: &[u8]) -> Reply {
    let Some(keys) = t.access_keys() else {
        return s3_off();
    };
    let req: SetQuota = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    let used = match keys.set_quota(id, req.quota_bytes).await {
        Ok(()) => keys.usage(id).await,
        Err(e) => Err(e),
    };
    let quota = req.quota_bytes;
    match used {
        Ok(used) => {
            tracing::info!(access_key = %id, quota_bytes = ?quota, "S3 access key quota set");
            let set =
                serde_json::json!({ "access_key": id, "quota_bytes": quota, "used_bytes": used });
            json(StatusCode::OK, &set)
        }
        Err(e @ GatewayError::NoSuchAccessKey(_)) => {
            json_error(StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e @ GatewayError::BadRequest(_)) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
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
    fn the_admin_token_comes_as_bearer_or_basic_password() {
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(presented_token(Some("Bearer abc")).unwrap(), b"abc");
        assert_eq!(
            presented_token(Some(&basic("admin:abc:d"))).unwrap(),
            b"abc:d"
        );
        assert_eq!(presented_token(Some(&basic(":abc"))).unwrap(), b"abc");
        assert!(presented_token(Some(&basic("no-colon"))).is_none());
        assert!(presented_token(Some("Basic !!!")).is_none());
        assert!(presented_token(Some("Digest x")).is_none());
        assert!(presented_token(None).is_none());
        assert!(admin_refusal(Some("abc"), Some(basic("u:abc"))).is_none());
        let refused = admin_refusal(Some("abc"), Some(basic("u:abd"))).unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn a_quota_must_be_named_even_to_lift_it() {
        let parse = |b: &str| serde_json::from_str::<SetQuota>(b);
        assert_eq!(parse(r#"{"quota_bytes": 5}"#).unwrap().quota_bytes, Some(5));
        assert_eq!(parse(r#"{"quota_bytes": null}"#).unwrap().quota_bytes, None);
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"quota_bytes": -1}"#).is_err());
        assert!(parse(r#"{"quota_bytes": 5, "used": 1}"#).is_err());
        let made: CreateS3Key =
            serde_json::from_str(r#"{"owner": "a", "buckets": ["*"]}"#).unwrap();
        assert_eq!(made.quota_bytes, None);
    }

    #[test]
    fn tracker_paths() {
        assert!(path_is_tracker(b"/announce", None));
        assert!(path_is_tracker(b"/announce/k", Some(b"k")));
        assert!(!path_is_tracker(b"/announce/a/b", None));
    }
}
