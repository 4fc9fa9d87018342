//! Reliability reports for `GET /admin/nodes` and `GET /admin/nodes/<id>`, read from the
//! records, with each node's score, tier and reasons (`crate::scoring`).

use super::{Node, NodeId, Registry, RegistryError};
use crate::scoring::hours::hour_exposure;
use crate::scoring::{Score, ScoringConfig};
use serde::Serialize;

/// Most torrents listed in one node report.
pub const MAX_LISTED_TORRENTS: i64 = 1000;

/// What the records say about one node.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeReport {
    #[serde(flatten)]
    pub node: Node,
    /// Score, tier, vetting, the component figures and the reasons, flattened into the report
    /// (`score`, `tier`, `vetted`, `uptime_window`, `audit_reputation`, `reasons`, ...).
    #[serde(flatten)]
    pub score: Score,
    /// Unix seconds of the first and latest announce; `None` if never seen.
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub announces: i64,
    /// Seconds counted as online (see the records module for the rule).
    pub online_secs: i64,
    /// `online_secs / (now - first_seen)`, between 0 and 1.
    pub uptime_ratio: f64,
    /// Mean observed gap between two announces of one torrent, and the mean asked for.
    pub mean_announce_interval_secs: Option<f64>,
    pub expected_announce_interval_secs: Option<f64>,
    /// Re-announces that came more than 1.5x the asked interval late.
    pub late_announces: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub completions: i64,
    pub address_changes: i64,
    pub last_addr: Option<String>,
    /// Share of each UTC hour of day (0-23) the node was online since first seen.
    pub hourly_availability: Vec<f64>,
    pub torrents_seeding: i64,
    pub torrents_leeching: i64,
    /// Present in single-node reports: up to [`MAX_LISTED_TORRENTS`] most recent torrents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torrents: Option<Vec<TorrentRecord>>,
    /// Present in single-node reports: addresses the node announced from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<AddressRecord>>,
}

/// A torrent a node seeds or leeches.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TorrentRecord {
    pub info_hash: String,
    pub seeding: bool,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// An address a node announced from.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AddressRecord {
    pub addr: String,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A node's row of `node_stats`: running totals the records module keeps.
#[derive(sqlx::FromRow)]
struct NodeStats {
    first_seen: i64,
    last_seen: i64,
    announces: i64,
    online_secs: i64,
    interval_samples: i64,
    interval_observed_secs: i64,
    interval_expected_secs: i64,
    late_announces: i64,
    bytes_up: i64,
    bytes_down: i64,
    completions: i64,
    address_changes: i64,
    last_addr: Option<String>,
}

impl Registry {
    /// The report for one node, with its torrents and addresses, scored with the default
    /// scoring configuration.
    pub async fn report(&self, id: NodeId, now: i64) -> Result<NodeReport, RegistryError> {
        self.report_scored(id, now, &ScoringConfig::default()).await
    }

    /// Reports for all nodes, scored with the default scoring configuration.
    pub async fn reports(&self, now: i64) -> Result<Vec<NodeReport>, RegistryError> {
        self.reports_scored(now, &ScoringConfig::default()).await
    }

    /// The report for one node, with its torrents and addresses.
    pub async fn report_scored(
        &self,
        id: NodeId,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<NodeReport, RegistryError> {
        let node = self.node(id).await?;
        let score = self.score(id, now, cfg).await?;
        let mut r = self.report_for(node, score, now).await?;
        let torrents: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT info_hash, seeding, first_seen, last_seen FROM node_torrents
             WHERE node_id = $1 ORDER BY last_seen DESC, info_hash LIMIT $2",
        )
        .bind(id)
        .bind(MAX_LISTED_TORRENTS)
        .fetch_all(self.reader())
        .await?;
        r.torrents = Some(
            torrents
                .into_iter()
                .map(
                    |(info_hash, seeding, first_seen, last_seen)| TorrentRecord {
                        info_hash,
                        seeding: seeding != 0,
                        first_seen,
                        last_seen,
                    },
                )
                .collect(),
        );
        let addresses: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT addr, first_seen, last_seen FROM node_addresses
             WHERE node_id = $1 ORDER BY last_seen DESC, addr LIMIT 100",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        r.addresses = Some(
            addresses
                .into_iter()
                .map(|(addr, first_seen, last_seen)| AddressRecord {
                    addr,
                    first_seen,
                    last_seen,
                })
                .collect(),
        );
        Ok(r)
    }

    /// Reports for all nodes (revoked included), without torrent and address lists.
    pub async fn reports_scored(
        &self,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<Vec<NodeReport>, RegistryError> {
        let mut scores = self.compute_scores(None, now, cfg).await?;
        let mut out = Vec::new();
        for node in self.nodes().await? {
            let Some(score) = scores.remove(&node.id) else {
                continue; // registered after the scores were read
            };
            out.push(self.report_for(node, score, now).await?);
        }
        Ok(out)
    }

    async fn report_for(
        &self,
        node: Node,
        score: Score,
        now: i64,
    ) -> Result<NodeReport, RegistryError> {
        let id = node.id;
        let stats: Option<NodeStats> = sqlx::query_as(
            "SELECT first_seen, last_seen, announces, online_secs, interval_samples,
                    interval_observed_secs, interval_expected_secs, late_announces, bytes_up,
                    bytes_down, completions, address_changes, last_addr
             FROM node_stats WHERE node_id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let hours: Vec<(i64, i64)> =
            sqlx::query_as("SELECT hour, online_secs FROM node_hours WHERE node_id = $1")
                .bind(id)
                .fetch_all(self.reader())
                .await?;
        let (seeding, leeching): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(seeding), 0), coalesce(sum(1 - seeding), 0)
             FROM node_torrents WHERE node_id = $1",
        )
        .bind(id)
        .fetch_one(self.reader())
        .await?;
        let mut report = match stats {
            Some(s) => NodeReport::from_stats(node, score, &s, &hours, now),
            None => NodeReport::unseen(node, score),
        };
        report.torrents_seeding = seeding;
        report.torrents_leeching = leeching;
        Ok(report)
    }
}

impl NodeReport {
    /// A node that never announced.
    fn unseen(node: Node, score: Score) -> Self {
        NodeReport {
            node,
            score,
            first_seen: None,
            last_seen: None,
            announces: 0,
            online_secs: 0,
            uptime_ratio: 0.0,
            mean_announce_interval_secs: None,
            expected_announce_interval_secs: None,
            late_announces: 0,
            bytes_up: 0,
            bytes_down: 0,
            completions: 0,
            address_changes: 0,
            last_addr: None,
            hourly_availability: vec![0.0; 24],
            torrents_seeding: 0,
            torrents_leeching: 0,
            torrents: None,
            addresses: None,
        }
    }

    /// A node's report from its running totals and its online seconds per hour of day.
    fn from_stats(node: Node, score: Score, s: &NodeStats, hours: &[(i64, i64)], now: i64) -> Self {
        let span = (now.max(s.last_seen) - s.first_seen).max(1);
        let mut hourly = vec![0.0; 24];
        for &(h, secs) in hours {
            let h = h as usize % 24;
            let exposure = hour_exposure(s.first_seen, now.max(s.last_seen), h).max(1);
            hourly[h] = (secs as f64 / exposure as f64).min(1.0);
        }
        let mean =
            |sum: i64| (s.interval_samples > 0).then(|| sum as f64 / s.interval_samples as f64);
        NodeReport {
            first_seen: Some(s.first_seen),
            last_seen: Some(s.last_seen),
            announces: s.announces,
            online_secs: s.online_secs,
            uptime_ratio: (s.online_secs as f64 / span as f64).min(1.0),
            mean_announce_interval_secs: mean(s.interval_observed_secs),
            expected_announce_interval_secs: mean(s.interval_expected_secs),
            late_announces: s.late_announces,
            bytes_up: s.bytes_up,
            bytes_down: s.bytes_down,
            completions: s.completions,
            address_changes: s.address_changes,
            last_addr: s.last_addr.clone(),
            hourly_availability: hourly,
            ..NodeReport::unseen(node, score)
        }
    }
}
