//! Shards for stock BitTorrent clients: each shard's torrent with an announce URL that carries a
//! read-only inspector credential, and magnet links. A client given them fetches the shard from
//! the nodes through the tracker and checks every piece against the torrent's hashes.

use base64::Engine;
use serde_json::{json, Value};
use warp::http::{header, Response, StatusCode};

use super::{json, Ops, Reply};
use crate::gateway::{GatewayError, InspectedShard};
use crate::ids::InfoHash;
use crate::registry::inspectors::Inspector;

/// How long an inspector credential lives unless the request says otherwise: a day.
pub const DEFAULT_TTL_SECS: u64 = 24 * 3600;

/// A magnet link (BEP 9) for a shard, with its tracker when given.
pub(super) fn magnet(info_hash_hex: &str, name: &str, tracker: Option<&str>) -> String {
    let mut m = format!(
        "magnet:?xt=urn:btih:{info_hash_hex}&dn={}",
        super::encode(name)
    );
    if let Some(t) = tracker {
        m.push_str("&tr=");
        m.push_str(&super::encode(t));
    }
    m
}

fn ttl(query: &str) -> Result<u64, GatewayError> {
    let value = query
        .split('&')
        .find_map(|p| p.strip_prefix("ttl="))
        .map(str::parse::<u64>);
    match value {
        None => Ok(DEFAULT_TTL_SECS),
        Some(Ok(secs)) if secs > 0 => Ok(secs),
        Some(_) => Err(GatewayError::BadRequest(
            "ttl is a positive number of seconds".into(),
        )),
    }
}

impl Ops {
    async fn issue(
        &self,
        bucket: &str,
        key: &str,
        ttl: u64,
        shards: &[InfoHash],
    ) -> Result<Inspector, GatewayError> {
        self.inner
            .registry
            .issue_inspector(&format!("{bucket}/{key}"), ttl, shards)
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))
    }

    /// `POST .../torrents/<info-hash>.torrent`: one shard's torrent, with a fresh credential
    /// for that shard inside (a POST: it writes the credential).
    pub(super) async fn torrent(
        &self,
        bucket: &str,
        key: &str,
        file: &str,
    ) -> Result<Reply, GatewayError> {
        let ih = file
            .strip_suffix(".torrent")
            .and_then(InfoHash::from_hex)
            .ok_or_else(|| {
                GatewayError::BadRequest("name a shard as <info-hash>.torrent".into())
            })?;
        let inspection = self.inner.gateway.inspect(bucket, key).await?;
        let shard = inspection
            .parts
            .iter()
            .flat_map(|p| &p.shards)
            .find(|s| s.info_hash == ih)
            .ok_or_else(|| GatewayError::NoSuchKey(format!("{key}: shard {ih}")))?;
        let inspector = self.issue(bucket, key, DEFAULT_TTL_SECS, &[ih]).await?;
        let torrent = self
            .inner
            .gateway
            .torrent_for(shard, &inspector.token)
            .await?;
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/x-bittorrent")
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.torrent\"", ih.to_hex()),
            )
            .body(torrent)
            .expect("static headers"))
    }

    /// `POST .../export?ttl=<secs>`: every shard's torrent and magnet link under one credential
    /// that covers those shards only.
    pub(super) async fn export(
        &self,
        bucket: &str,
        key: &str,
        query: &str,
    ) -> Result<Reply, GatewayError> {
        let ttl = ttl(query)?;
        let gw = &self.inner.gateway;
        let inspection = gw.inspect(bucket, key).await?;
        let shards: Vec<(usize, &InspectedShard)> = inspection
            .parts
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.shards.iter().map(move |s| (i, s)))
            .collect();
        if shards.is_empty() {
            return Err(GatewayError::BadRequest(format!(
                "{key} has no shards in the swarm to export (it is kept in the gateway's metadata \
                 store, or lost)"
            )));
        }
        let hashes: Vec<InfoHash> = shards.iter().map(|(_, s)| s.info_hash).collect();
        let inspector = self.issue(bucket, key, ttl, &hashes).await?;
        let announce = gw.announce_url(&inspector.token);
        let mut out: Vec<Value> = Vec::with_capacity(shards.len());
        for (part, s) in shards {
            let torrent = gw.torrent_for(s, &inspector.token).await?;
            let ih = s.info_hash.to_hex();
            out.push(json!({
                "part": part, "index": s.index, "info_hash": ih, "name": s.name,
                "length": s.length,
                "magnet": magnet(&ih, &s.name, Some(&announce)),
                "torrent_base64": base64::engine::general_purpose::STANDARD.encode(torrent),
            }));
        }
        Ok(json(
            StatusCode::OK,
            &json!({ "inspector": inspector, "announce": announce, "shards": out }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_default_to_a_day_and_must_be_positive_numbers() {
        assert_eq!(ttl("").unwrap(), DEFAULT_TTL_SECS);
        assert_eq!(ttl("ttl=60").unwrap(), 60);
        assert!(ttl("ttl=0").is_err());
        assert!(ttl("ttl=-5").is_err());
        assert!(ttl("ttl=soon").is_err());
    }

    #[test]
    fn magnets_carry_the_hash_name_and_tracker() {
        let m = magnet(
            "ab".repeat(20).as_str(),
            "shard 0",
            Some("http://t/announce/x"),
        );
        assert!(m.starts_with(&format!("magnet:?xt=urn:btih:{}", "ab".repeat(20))));
        assert!(m.contains("&dn=shard%200"));
        assert!(m.contains("&tr=http%3A%2F%2Ft%2Fannounce%2Fx"));
    }
}
