//! The object API's routes for clients that code their objects themselves (RT-0004):
//!
//! | request | answer |
//! |---|---|
//! | `POST /_place/<bucket>/<key>` (JSON: manifest, shards, peers) | 202, the `PlacementStatus` once the first nodes are asked |
//! | `GET /_place/<placement>?wait=<seconds>` | 200, the `PlacementStatus`, when it changed or after `wait` |
//! | `DELETE /_place/<placement>` | 200, the `PlacementStatus` once it ended: `failed` (cancelled, nothing visible) or `stored` |
//! | `GET /_cap/<bucket>/<key>?manifest=<hex>` (no authentication) | 200, the manifest and each shard's info dict and holders; 404 for any mismatch |

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use warp::http::StatusCode;
use warp::reply::Response;

use super::caller::Caller;
use super::parse::{self, Target};
use super::respond;
use crate::gateway::{ClientShards, Gateway, GatewayError, MAX_WAIT};

/// Largest placement request body.
pub const MAX_PLACE_BODY: usize = 1 << 20;

/// A placement request as JSON carries it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    manifest: String,
    shards: Vec<String>,
    #[serde(default)]
    peers: Vec<SocketAddr>,
}

/// The routes under `/_place/`: `rest` is the path after it.
pub async fn place(
    gw: &Gateway,
    caller: &Caller,
    method: &warp::http::Method,
    rest: &str,
    query: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, GatewayError> {
    match (method.as_str(), body) {
        ("POST", Some(body)) => {
            let Ok(Target::Object(bucket, key)) = parse::target(rest) else {
                return Err(GatewayError::BadRequest(
                    "place an object with POST /_place/<bucket>/<key>".into(),
                ));
            };
            if !caller.may_use(&bucket) {
                return Err(GatewayError::AccessDenied(format!(
                    "this access key may not use bucket {bucket}"
                )));
            }
            let status = gw
                .place(&bucket, &key, client_shards(&body)?, caller.key())
                .await?;
            Ok(respond::json(StatusCode::ACCEPTED, &status))
        }
        ("GET", _) => {
            let id = rest.trim_start_matches('/');
            check_owner(gw, caller, id)?;
            let wait = Duration::from_secs(query_u64(query, "wait")?.unwrap_or(0));
            let status = gw.placement(id, wait.min(MAX_WAIT)).await?;
            Ok(respond::json(StatusCode::OK, &status))
        }
        ("DELETE", _) => {
            let id = rest.trim_start_matches('/');
            check_owner(gw, caller, id)?;
            let status = gw.cancel_placement(id).await?;
            Ok(respond::json(StatusCode::OK, &status))
        }
        _ => Err(GatewayError::BadRequest(
            "use POST /_place/<bucket>/<key>, GET /_place/<placement> or DELETE \
             /_place/<placement>"
                .into(),
        )),
    }
}

/// An access key follows and cancels only its own placements; the operator any.
fn check_owner(gw: &Gateway, caller: &Caller, id: &str) -> Result<(), GatewayError> {
    let Some(key) = caller.key() else {
        return Ok(());
    };
    if gw.placement_owner(id)?.as_deref() == Some(key.access_key.as_str()) {
        return Ok(());
    }
    Err(GatewayError::AccessDenied(
        "this placement was not started with this access key".into(),
    ))
}

/// `GET /_cap/<bucket>/<key>?manifest=<hex>`: `rest` is the path after `/_cap`.
pub async fn capability(gw: &Gateway, rest: &str, query: &str) -> Result<Response, GatewayError> {
    let Ok(Target::Object(bucket, key)) = parse::target(rest) else {
        return Err(GatewayError::BadRequest(
            "read with GET /_cap/<bucket>/<key>?manifest=<hex>".into(),
        ));
    };
    let hash = query_param(query, "manifest")?
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| GatewayError::BadRequest("manifest=<64 hex digits> is required".into()))?;
    let read = gw.capability_read(&bucket, &key, &hash).await?;
    let shards: Vec<_> = read
        .shards
        .iter()
        .map(|(info, nodes)| {
            let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            serde_json::json!({ "info": STANDARD.encode(info), "nodes": nodes })
        })
        .collect();
    let answer = serde_json::json!({
        "manifest": STANDARD.encode(&read.manifest),
        "shards": shards,
        "at_risk": read.at_risk,
    });
    Ok(respond::json(StatusCode::OK, &answer))
}

/// A placement request's body (`{manifest, shards, peers}` JSON, base64 fields) as the gateway
/// checks it.
pub fn client_shards(body: &[u8]) -> Result<ClientShards, GatewayError> {
    let bad = |why: String| GatewayError::BadRequest(why);
    let body: PlaceBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be {{manifest, shards, peers}} JSON: {e}"
        ))
    })?;
    let b64 = |what: &str, s: &str| {
        STANDARD
            .decode(s)
            .map_err(|e| bad(format!("{what} is not base64: {e}")))
    };
    Ok(ClientShards {
        manifest: b64("manifest", &body.manifest)?,
        infos: body
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| b64(&format!("shard {i}"), s))
            .collect::<Result<_, _>>()?,
        peers: body.peers,
    })
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Result<Option<String>, GatewayError> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return parse::percent_decode(v, true)
                .map(Some)
                .map_err(GatewayError::BadRequest);
        }
    }
    Ok(None)
}

fn query_u64(query: &str, name: &str) -> Result<Option<u64>, GatewayError> {
    query_param(query, name)?
        .map(|v| {
            v.parse()
                .map_err(|_| GatewayError::BadRequest(format!("{name} must be a whole number")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_bodies_are_checked_before_the_gateway_sees_them() {
        let ok = br#"{"manifest":"AAEC","shards":["AQ==","Ag=="],"peers":["127.0.0.1:7"]}"#;
        let shards = client_shards(ok).unwrap();
        assert_eq!(shards.manifest, vec![0, 1, 2]);
        assert_eq!(shards.infos, vec![vec![1], vec![2]]);
        assert_eq!(shards.peers.len(), 1);
        let e = client_shards(br#"{"manifest":"!!","shards":[]}"#).unwrap_err();
        assert!(e.to_string().contains("manifest is not base64"), "{e}");
        let e = client_shards(br#"{"manifest":"","shards":[],"key":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(client_shards(b"[]").is_err());
    }

    #[test]
    fn query_values() {
        assert_eq!(query_u64("a=1&wait=30", "wait").unwrap(), Some(30));
        assert_eq!(query_u64("a=1", "wait").unwrap(), None);
        assert!(query_u64("wait=x", "wait").is_err());
        assert_eq!(
            query_param("manifest=ab%63", "manifest")
                .unwrap()
                .as_deref(),
            Some("abc")
        );
    }
}
