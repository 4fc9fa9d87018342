//! The JSON the dashboard reads, and the gauges a scrape sets: each view reads a fresh snapshot
//! (the registry's scores, the control hub's connections, the health worker's latest pass).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{json, Ops, Reply};
use crate::api::parse::list_query;
use crate::control::ConnectedNode;
use crate::gateway::{GatewayError, Inspection};
use crate::metrics::{metrics, LiveCopies, NodeClass, ObjectState};
use crate::registry::report::NodeReport;
use crate::registry::{unix_now, NodeId, RegistryError};
use crate::repair::{CopyClass, Health};
use crate::scoring::NodeTier;

/// Audits listed on a node's page.
const RECENT_AUDITS: u32 = 20;

fn registry_error(e: RegistryError) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

fn tier_name(t: NodeTier) -> &'static str {
    match t {
        NodeTier::High => "high",
        NodeTier::Low => "low",
        NodeTier::Suspended => "suspended",
        NodeTier::Disqualified => "disqualified",
    }
}

fn class_name(c: CopyClass) -> &'static str {
    match c {
        CopyClass::Live => "live",
        CopyClass::Away => "away",
        CopyClass::Lost => "lost",
        CopyClass::Bad => "bad",
    }
}

/// One volunteer node as the dashboard lists it.
struct Row<'a> {
    report: &'a NodeReport,
    connected: Option<&'a ConnectedNode>,
    held: (u64, u64),
}

impl Row<'_> {
    fn zone(&self) -> String {
        let n = &self.report.node;
        n.registration
            .zone
            .clone()
            .or_else(|| self.connected.map(|c| c.zone.clone()))
            .unwrap_or_default()
    }

    fn state(&self) -> &'static str {
        if self.report.node.revoked_at.is_some() {
            "revoked"
        } else if self.connected.is_some() {
            "connected"
        } else {
            "offline"
        }
    }

    fn json(&self) -> Value {
        let (r, s) = (self.report, &self.report.score);
        json!({
            "id": r.node.id,
            "name": r.node.name,
            "zone": self.zone(),
            "connected": self.connected.is_some(),
            "address": self.connected.and_then(|c| c.data_addr).map(|a| a.to_string()),
            "capacity": self.connected.map(|c| c.capacity),
            "free": self.connected.map(|c| c.free),
            "held_shards": self.held.0,
            "held_bytes": self.held.1,
            "score": s.value,
            "tier": tier_name(s.tier),
            "vetted": s.vetted,
            "revoked": r.node.revoked_at.is_some(),
            "uptime": r.uptime_ratio,
            "hourly_availability": r.hourly_availability,
            "reasons": s.reasons,
            "audits_passed": s.audits_passed,
            "recent_failed_audits": s.recent_failed_audits,
            "recent_timed_out_audits": s.recent_timed_out_audits,
            "first_seen": r.first_seen,
            "last_seen": r.last_seen,
        })
    }
}

/// Every volunteer's report, connection and holdings, read once.
struct Fleet {
    reports: Vec<NodeReport>,
    connected: HashMap<NodeId, ConnectedNode>,
    held: HashMap<NodeId, (u64, u64)>,
}

impl Fleet {
    fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.reports.iter().map(|report| Row {
            report,
            connected: self.connected.get(&report.node.id),
            held: self.held.get(&report.node.id).copied().unwrap_or((0, 0)),
        })
    }
}

impl Ops {
    async fn read_fleet(&self) -> Result<Fleet, GatewayError> {
        let i = &self.inner;
        let own = i.gateway.own_node();
        let mut reports = i
            .registry
            .reports_scored(unix_now(), &i.scoring)
            .await
            .map_err(registry_error)?;
        reports.retain(|r| r.node.id != own);
        Ok(Fleet {
            reports,
            connected: i.hub.connected().into_iter().map(|c| (c.node, c)).collect(),
            held: i
                .gateway
                .held_by_node()
                .await?
                .into_iter()
                .map(|(n, c, b)| (n, (c, b)))
                .collect(),
        })
    }

    pub(super) async fn fleet(&self) -> Result<Value, GatewayError> {
        let fleet = self.read_fleet().await?;
        let nodes: Vec<Value> = fleet.rows().map(|r| r.json()).collect();
        Ok(json!({ "now": unix_now(), "nodes": nodes }))
    }

    pub(super) async fn node(&self, id: &str) -> Result<Reply, GatewayError> {
        let id: NodeId = id
            .parse()
            .map_err(|_| GatewayError::BadRequest(format!("{id:?} is not a node id")))?;
        let fleet = self.read_fleet().await?;
        let Some(row) = fleet.rows().find(|r| r.report.node.id == id) else {
            return Ok(json(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such node"}),
            ));
        };
        let audits = self
            .inner
            .registry
            .recent_audits(id, RECENT_AUDITS)
            .await
            .map_err(registry_error)?;
        let s = &row.report.score;
        let mut v = row.json();
        v["score_parts"] = json!({
            "uptime": s.uptime,
            "audit_reputation": s.audit_reputation,
            "audit_integrity": s.audit_integrity,
            "transfer_success": s.transfer_success,
            "speed_bps": s.speed_bps,
        });
        v["recent_audits"] = audits
            .into_iter()
            .map(|(at, outcome, info_hash, detail)| {
                json!({"at": at, "outcome": outcome, "info_hash": info_hash, "detail": detail})
            })
            .collect();
        Ok(json(StatusCode::OK, &v))
    }

    pub(super) async fn cloud(&self) -> Result<Value, GatewayError> {
        let fleet = self.read_fleet().await?;
        let status = self.inner.gateway.health_status();
        let h = &status.health;
        let mut zones: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        let mut tiers: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        for row in fleet.rows().filter(|r| r.report.node.revoked_at.is_none()) {
            let z = zones.entry(row.zone()).or_default();
            let connected = u64::from(row.connected.is_some());
            add(z, [1, connected, row.held.0, row.held.1]);
            let t = tiers.entry(tier_name(row.report.score.tier)).or_default();
            add(t, [1, row.held.0, row.held.1]);
        }
        let copies: u64 = tiers.values().map(|t| t[1]).sum();
        let high = tiers.get("high").map_or(0, |t| t[1]);
        let buckets = self.inner.gateway.buckets().await?;
        let wanted = buckets
            .iter()
            .map(|b| b.policy.high_share)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let workers = serde_json::to_value(&status.workers).unwrap_or(Value::Null);
        let m = metrics();
        Ok(json!({
            "now": unix_now(),
            "nodes": {
                "total": fleet.rows().filter(|r| r.report.node.revoked_at.is_none()).count(),
                "connected": fleet.rows().filter(|r| r.state() == "connected").count(),
                "by_tier": tiers.iter().map(|(t, v)| (t.to_string(), v[0])).collect::<BTreeMap<_, _>>(),
            },
            "objects": objects_json(h),
            "shards": {
                "total": h.shards, "under": h.shards_under, "without_copy": h.shards_without_copy,
                "surplus_copies": h.surplus_copies, "bad_copies": h.bad_copies,
                "by_live_copies": h.shards_by_live_copies,
            },
            "zones": zones.iter().map(|(zone, v)| json!({
                "zone": zone, "nodes": v[0], "connected": v[1], "shards": v[2], "bytes": v[3],
            })).collect::<Vec<_>>(),
            "tiers": tiers.iter().map(|(tier, v)| json!({
                "tier": tier, "nodes": v[0], "copies": v[1], "bytes": v[2],
            })).collect::<Vec<_>>(),
            "high_tier_share": if copies == 0 { 0.0 } else { high as f64 / copies as f64 },
            "high_tier_wanted": wanted,
            "repair": {
                "state": status.state, "last_pass_at": status.last_pass_at, "queue": status.queue,
                "planned": status.planned, "done": status.tasks_done, "failed": status.tasks_failed,
                "bytes_repaired": status.bytes_repaired, "last_error": status.last_error,
                "backing_off": status.backing_off,
            },
            "workers": workers,
            "totals": {
                "bytes_in": m.bytes_total("in"), "bytes_out": m.bytes_total("out"),
                "repairs": m.repairs_total(), "audits": m.audits_total(),
            },
        }))
    }

    /// The exposition, with the gauges set from a fresh snapshot.
    pub(super) async fn metrics(&self) -> Result<Reply, GatewayError> {
        let fleet = self.read_fleet().await?;
        let status = self.inner.gateway.health_status();
        let m = metrics();
        m.nodes.clear();
        for row in fleet.rows() {
            let class = NodeClass {
                tier: tier_name(row.report.score.tier),
                zone: label_value(&row.zone()),
                state: row.state(),
            };
            m.nodes.get_or_create(&class).inc();
        }
        m.shards_by_live_copies.clear();
        let by_copies = &status.health.shards_by_live_copies;
        for (i, n) in by_copies.iter().enumerate() {
            let copies = if i + 1 == by_copies.len() && i == crate::repair::LIVE_COPIES_SHOWN {
                format!("{i}+")
            } else {
                i.to_string()
            };
            m.shards_by_live_copies
                .get_or_create(&LiveCopies { copies })
                .set(*n as i64);
        }
        for (state, n) in objects_by_state(&status.health) {
            m.objects
                .get_or_create(&ObjectState { state })
                .set(n as i64);
        }
        m.repair_queue.set(status.queue as i64);
        Ok(warp::http::Response::builder()
            .header(
                warp::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(m.render().into_bytes())
            .expect("static headers"))
    }

    pub(super) async fn buckets(&self) -> Result<Reply, GatewayError> {
        let buckets = self.inner.gateway.buckets().await?;
        let names: Vec<Value> = buckets.iter().map(|b| json!({ "name": b.name })).collect();
        Ok(json(StatusCode::OK, &json!({ "buckets": names })))
    }

    pub(super) async fn listing(&self, bucket: &str, query: &str) -> Result<Reply, GatewayError> {
        let bucket = super::decode(bucket)?;
        let q = list_query(query).map_err(GatewayError::BadRequest)?;
        let listing = self
            .inner
            .gateway
            .list(&bucket, &q.prefix, q.after.as_deref(), q.limit)
            .await?;
        let objects: Vec<Value> = listing
            .objects
            .iter()
            .map(|o| json!({"key": o.key, "size": o.size, "modified": o.created_at}))
            .collect();
        Ok(json(
            StatusCode::OK,
            &json!({ "objects": objects, "next_after": listing.next_after }),
        ))
    }

    pub(super) async fn object(&self, bucket: &str, key: &str) -> Result<Reply, GatewayError> {
        let inspection = self.inner.gateway.inspect(bucket, key).await?;
        let names = self.node_names().await?;
        Ok(json(StatusCode::OK, &object_json(&inspection, &names)))
    }

    /// Name, zone and tier of every node, by id.
    async fn node_names(
        &self,
    ) -> Result<HashMap<NodeId, (String, String, &'static str)>, GatewayError> {
        let fleet = self.read_fleet().await?;
        Ok(fleet
            .rows()
            .map(|r| {
                let tier = tier_name(r.report.score.tier);
                (
                    r.report.node.id,
                    (r.report.node.name.clone(), r.zone(), tier),
                )
            })
            .collect())
    }
}

/// A zone as a label value: the exposition writes label values as they are, so a quote, a
/// backslash or a line break would break the whole scrape.
fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '"' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn add<const N: usize>(into: &mut [u64; N], v: [u64; N]) {
    for (a, b) in into.iter_mut().zip(v) {
        *a += b;
    }
}

/// Objects by redundancy state; the planner's at-risk count includes the unreadable.
fn objects_by_state(h: &Health) -> [(&'static str, usize); 4] {
    let at_risk = h.objects_at_risk.saturating_sub(h.objects_unreadable);
    let healthy = h
        .objects
        .saturating_sub(h.objects_at_risk)
        .saturating_sub(h.objects_degraded);
    [
        ("healthy", healthy),
        ("degraded", h.objects_degraded),
        ("at_risk", at_risk),
        ("unreadable", h.objects_unreadable),
    ]
}

fn objects_json(h: &Health) -> Value {
    let mut v = json!({ "total": h.objects });
    for (state, n) in objects_by_state(h) {
        v[state] = json!(n);
    }
    v
}

fn object_json(o: &Inspection, names: &HashMap<NodeId, (String, String, &'static str)>) -> Value {
    let (bucket, key) = (&o.info.bucket, &o.info.key);
    let enc = super::encode;
    let parts: Vec<Value> = o
        .parts
        .iter()
        .map(|p| {
            let shards: Vec<Value> = p
                .shards
                .iter()
                .map(|s| {
                    let copies: Vec<Value> = s
                        .copies
                        .iter()
                        .map(|(node, class)| {
                            let (name, zone, tier) =
                                names.get(node).cloned().unwrap_or_default();
                            let state = if o.assessed { class_name(*class) } else { "unknown" };
                            json!({"node": node, "name": name, "zone": zone, "tier": tier,
                                   "state": state})
                        })
                        .collect();
                    let ih = s.info_hash.to_hex();
                    json!({
                        "index": s.index, "info_hash": ih, "length": s.length,
                        "role": if s.data { "data" } else { "parity" },
                        "magnet": super::export::magnet(&ih, &s.name, None),
                        // POST: each download issues a credential for the shard.
                        "torrent": format!("/admin/objects/{}/{}/torrents/{ih}.torrent", enc(bucket), enc(key)),
                        "copies": copies,
                    })
                })
                .collect();
            json!({ "object": p.name, "shards": shards })
        })
        .collect();
    json!({
        "bucket": bucket, "key": key, "size": o.info.size, "modified": o.info.created_at,
        "sha256": o.info.sha256, "stored": o.info.storage,
        "state": match (o.redundancy, o.assessed, o.parts.is_empty()) {
            (Some(r), _, _) => r.as_str(),
            (None, _, true) => "not_in_swarm",
            (None, false, false) => "not_assessed",
            (None, true, false) => "unknown",
        },
        "policy": o.policy.as_ref().map(|p| json!({"k": p.k, "m": p.m, "copies": p.copies})),
        "parts": parts,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn zones_become_label_values_the_exposition_can_carry() {
        assert_eq!(super::label_value("eu-west/paris"), "eu-west/paris");
        assert_eq!(super::label_value("eu \"west\"\\\n"), "eu _west___");
    }
}
