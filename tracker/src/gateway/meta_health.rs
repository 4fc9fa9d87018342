//! What the health and audit workers read and write in the metadata store: every stored object
//! with its copies, audit marks on copies, and the shards' info dicts.

use sqlx::Row;

use super::api_types::{BucketPolicy, GatewayError};
use super::meta::{Meta, ShardRow};
use crate::placement::Policy;
use crate::registry::NodeId;
use crate::repair::{CopyState, ObjectState, ShardState};

/// A copy the audit worker may pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCandidate {
    pub node: NodeId,
    pub info_hash: String,
    pub audited_at: Option<i64>,
}

impl Meta {
    /// Every stored (not inline) object with its shards and their confirmed copies, for planning.
    pub async fn health_snapshot(&self) -> Result<Vec<ObjectState>, GatewayError> {
        let rows = sqlx::query(
            "SELECT o.id AS object_id, o.read_hours AS read_hours, b.policy AS policy, s.idx AS idx,
                    s.info_hash AS info_hash,
                    s.length AS length, h.node_id AS node_id, h.failed_at AS failed_at
             FROM objects o
             JOIN buckets b ON b.name = o.bucket
             JOIN shards s ON s.object_id = o.id AND s.state = 'live'
             LEFT JOIN holdings h ON h.info_hash = s.info_hash
             ORDER BY o.id, s.idx, h.node_id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<ObjectState> = Vec::new();
        for r in rows {
            let object: i64 = r.get("object_id");
            if out.last().map_or(true, |o| o.id != object) {
                let policy: BucketPolicy = serde_json::from_str(r.get("policy"))
                    .map_err(|e| GatewayError::Internal(format!("stored policy: {e}")))?;
                out.push(ObjectState {
                    id: object,
                    policy: placement_policy(&policy),
                    shards: Vec::new(),
                    read_hours: r.get::<i64, _>("read_hours") as u32,
                });
            }
            let o = out.last_mut().expect("pushed above");
            let idx = r.get::<i64, _>("idx") as u32;
            if o.shards.last().map_or(true, |s| s.idx != idx) {
                o.shards.push(ShardState {
                    idx,
                    info_hash: r.get("info_hash"),
                    length: r.get::<i64, _>("length") as u64,
                    copies: Vec::new(),
                });
            }
            if let Some(node) = r.get::<Option<i64>, _>("node_id") {
                o.shards
                    .last_mut()
                    .expect("pushed above")
                    .copies
                    .push(CopyState {
                        node,
                        failed_audit: r.get::<Option<i64>, _>("failed_at").is_some(),
                    });
            }
        }
        Ok(out)
    }

    /// Notes that an object was read at UTC hour `hour` (0-23).
    pub async fn note_read(&self, object: i64, hour: u32) -> Result<(), GatewayError> {
        sqlx::query("UPDATE objects SET read_hours = read_hours | ? WHERE id = ?")
            .bind(i64::from(1u32 << (hour % 24)))
            .bind(object)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Copies of live shards, with when each was last audited.
    pub async fn audit_candidates(&self) -> Result<Vec<AuditCandidate>, GatewayError> {
        let rows = sqlx::query(
            "SELECT h.node_id, h.info_hash, h.audited_at FROM holdings h
             JOIN shards s ON s.info_hash = h.info_hash AND s.state = 'live'
             WHERE h.failed_at IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditCandidate {
                node: r.get("node_id"),
                info_hash: r.get("info_hash"),
                audited_at: r.get("audited_at"),
            })
            .collect())
    }

    /// Records an audit of a copy; `failed` marks it bad for good (until it is dropped). Returns
    /// false when the copy is no longer recorded (dropped while it was being audited).
    pub async fn mark_audited(
        &self,
        info_hash: &str,
        node: NodeId,
        failed: bool,
        at: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "UPDATE holdings SET audited_at = ?,
                    failed_at = CASE WHEN ? THEN ? ELSE failed_at END
             WHERE info_hash = ? AND node_id = ?
               AND info_hash IN (SELECT info_hash FROM shards WHERE state = 'live')",
        )
        .bind(at)
        .bind(failed)
        .bind(at)
        .bind(info_hash)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets a copy if it was confirmed before `before`; returns whether it did.
    pub async fn forget_copy_confirmed_before(
        &self,
        info_hash: &str,
        node: NodeId,
        before: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "DELETE FROM holdings WHERE info_hash = ? AND node_id = ? AND confirmed_at < ?",
        )
        .bind(info_hash)
        .bind(node)
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether `node` holds a confirmed copy of a live shard.
    pub async fn holds_live(&self, info_hash: &str, node: NodeId) -> Result<bool, GatewayError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM holdings h JOIN shards s ON s.info_hash = h.info_hash
             WHERE h.info_hash = ? AND h.node_id = ? AND s.state = 'live'",
        )
        .bind(info_hash)
        .bind(node)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// Copies that failed an audit, so reads skip them.
    pub async fn failed_copies(&self, info_hash: &str) -> Result<Vec<NodeId>, GatewayError> {
        let rows = sqlx::query(
            "SELECT node_id FROM holdings WHERE info_hash = ? AND failed_at IS NOT NULL",
        )
        .bind(info_hash)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.get("node_id")).collect())
    }

    /// An object row by id.
    pub async fn object_by_id(&self, id: i64) -> Result<super::meta::ObjectRow, GatewayError> {
        let bucket: Option<(String, String)> =
            sqlx::query_as("SELECT bucket, key FROM objects WHERE id = ?")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        let (bucket, key) =
            bucket.ok_or_else(|| GatewayError::NoSuchKey(format!("object {id}")))?;
        self.object(&bucket, &key).await
    }

    /// Copies its bucket's policy wants of a live shard (0 for a shard no object refers to).
    pub async fn copies_wanted(&self, info_hash: &str) -> Result<usize, GatewayError> {
        let policy: Option<String> = sqlx::query_scalar(
            "SELECT b.policy FROM shards s JOIN objects o ON o.id = s.object_id
             JOIN buckets b ON b.name = o.bucket WHERE s.info_hash = ?",
        )
        .bind(info_hash)
        .fetch_optional(self.pool())
        .await?;
        match policy {
            None => Ok(0),
            Some(p) => {
                let p: BucketPolicy = serde_json::from_str(&p)
                    .map_err(|e| GatewayError::Internal(format!("stored policy: {e}")))?;
                Ok(usize::from(p.copies))
            }
        }
    }

    /// One shard's row, if an object still refers to it.
    pub async fn live_shard(&self, info_hash: &str) -> Result<Option<ShardRow>, GatewayError> {
        let row = sqlx::query(
            "SELECT info_hash, idx, length, info FROM shards WHERE info_hash = ? AND state = 'live'",
        )
        .bind(info_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(shard_row))
    }

    /// One shard's row, by info-hash.
    pub async fn shard(&self, info_hash: &str) -> Result<Option<ShardRow>, GatewayError> {
        let row =
            sqlx::query("SELECT info_hash, idx, length, info FROM shards WHERE info_hash = ?")
                .bind(info_hash)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.as_ref().map(shard_row))
    }
}

fn shard_row(r: &sqlx::sqlite::SqliteRow) -> ShardRow {
    ShardRow {
        info_hash: r.get("info_hash"),
        idx: r.get::<i64, _>("idx") as u32,
        length: r.get::<i64, _>("length") as u64,
        info: r.get("info"),
    }
}

/// The placement policy of a bucket policy.
pub fn placement_policy(p: &BucketPolicy) -> Policy {
    Policy {
        k: usize::from(p.k),
        m: usize::from(p.m),
        copies: usize::from(p.copies),
        high_share: p.high_share,
    }
}
