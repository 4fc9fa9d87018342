//! What the health worker plans over: every stored object with its shards and their copies.

use sqlx::Row;

use super::{info_hash_col, policy_col, Meta};
use crate::gateway::GatewayError;
use crate::repair::{CopyState, ObjectState, ShardState};

impl Meta {
    /// Every stored (not inline) object with its shards and their confirmed copies, for planning.
    pub async fn health_snapshot(&self) -> Result<Vec<ObjectState>, GatewayError> {
        let rows = sqlx::query(&snapshot_sql(""))
            .fetch_all(self.reader())
            .await?;
        fold(rows)
    }

    /// One stored object with its shards and copies, as [`Meta::health_snapshot`] has it;
    /// `None` for an object without shards of its own (inline, waiting, packed, grouped).
    pub async fn object_state(&self, object: i64) -> Result<Option<ObjectState>, GatewayError> {
        let rows = sqlx::query(&snapshot_sql("WHERE o.id = ?"))
            .bind(object)
            .fetch_all(self.reader())
            .await?;
        Ok(fold(rows)?.pop())
    }
}

fn snapshot_sql(filter: &str) -> String {
    format!(
        "SELECT o.id AS object_id, o.read_hours AS read_hours, b.policy AS policy, s.idx AS idx,
                s.info_hash AS info_hash,
                s.length AS length, h.node_id AS node_id, h.failed_at AS failed_at
         FROM objects o
         JOIN buckets b ON b.name = o.bucket
         JOIN shards s ON s.object_id = o.id AND s.state = 'live'
         LEFT JOIN holdings h ON h.info_hash = s.info_hash
         {filter}
         ORDER BY o.id, s.idx, h.node_id"
    )
}

/// Rows ordered by object, shard and node, folded into objects.
fn fold(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<ObjectState>, GatewayError> {
    let mut out: Vec<ObjectState> = Vec::new();
    for r in rows {
        let object: i64 = r.get("object_id");
        if out.last().map_or(true, |o| o.id != object) {
            out.push(ObjectState {
                id: object,
                policy: policy_col(&r)?.placement(),
                shards: Vec::new(),
                read_hours: r.get::<i64, _>("read_hours") as u32,
            });
        }
        let o = out.last_mut().expect("pushed above");
        let idx = r.get::<i64, _>("idx") as u32;
        if o.shards.last().map_or(true, |s| s.idx != idx) {
            o.shards.push(ShardState {
                idx,
                info_hash: info_hash_col(&r, "info_hash")?,
                length: r.get::<i64, _>("length") as u64,
                copies: Vec::new(),
            });
        }
        if let Some(node) = r.get::<Option<i64>, _>("node_id") {
            let copy = CopyState {
                node,
                failed_audit: r.get::<Option<i64>, _>("failed_at").is_some(),
            };
            o.shards.last_mut().expect("pushed above").copies.push(copy);
        }
    }
    Ok(out)
}

impl Meta {
    /// Copies of stored objects' shards, and their bytes, per node (copies that failed an audit
    /// and shards being written or orphaned are not counted).
    pub async fn held_by_node(&self) -> Result<Vec<(i64, u64, u64)>, GatewayError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT h.node_id, COUNT(*), COALESCE(SUM(s.length), 0)
             FROM holdings h JOIN shards s ON s.info_hash = h.info_hash
             WHERE s.state = 'live' AND h.failed_at IS NULL
             GROUP BY h.node_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(n, c, b)| (n, c as u64, b as u64))
            .collect())
    }
}
