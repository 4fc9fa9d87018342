//! Shards and their copies: a shard's life (pending while its upload runs, live once its object
//! is visible, orphan once nothing refers to it) and the copies nodes confirmed, with their audit
//! marks.

use std::collections::HashSet;

use sqlx::Row;

use super::{info_hash_col, policy_col, Meta};
use crate::gateway::GatewayError;
use crate::registry::NodeId;
use raidtorrent_codec::{InfoHash, ShardInfo};

/// A shard as the gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub info_hash: InfoHash,
    pub idx: u32,
    pub length: u64,
    /// The bencoded info dict, as hashed.
    pub info: Vec<u8>,
}

impl ShardRow {
    /// The shard's metainfo facts, parsed from the stored info dict.
    pub fn shard_info(&self) -> Result<ShardInfo, GatewayError> {
        let torrent = [&b"d4:info"[..], &self.info, b"e"].concat();
        raidtorrent_codec::Metainfo::parse(&torrent)
            .and_then(|m| m.shard())
            .map_err(|e| GatewayError::Internal(format!("stored shard {}: {e}", self.info_hash)))
    }
}

fn shard_row(r: &sqlx::any::AnyRow) -> Result<ShardRow, GatewayError> {
    Ok(ShardRow {
        info_hash: info_hash_col(r, "info_hash")?,
        idx: r.get::<i64, _>("idx") as u32,
        length: r.get::<i64, _>("length") as u64,
        info: r.get("info"),
    })
}

/// Which shards a copy may be recorded for.
enum HoldingOf {
    /// Pending or live: the copy counts.
    CountedShard,
    /// Orphan: the copy is recorded only so the collector drops it.
    Orphan,
}

/// A copy the audit worker may pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCandidate {
    pub node: NodeId,
    pub info_hash: InfoHash,
    pub audited_at: Option<i64>,
}

impl Meta {
    /// Records the shards of an upload in flight, before any node is told to hold them.
    pub async fn begin_shards(&self, shards: &[ShardRow], now: i64) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        for s in shards {
            sqlx::query(
                "INSERT INTO shards (info_hash, object_id, idx, length, info, state, created_at,
                                     gateway)
                 VALUES ($1, NULL, $2, $3, $4, 'pending', $5, $6)",
            )
            .bind(s.info_hash.to_hex())
            .bind(i64::from(s.idx))
            .bind(s.length as i64)
            .bind(&s.info)
            .bind(now)
            .bind(self.gateway.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The upload failed: its shards become orphans.
    pub async fn abandon_shards(&self, info_hashes: &[InfoHash]) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        for ih in info_hashes {
            sqlx::query(
                "UPDATE shards SET state = 'orphan' WHERE info_hash = $1 AND state = 'pending'",
            )
            .bind(ih.to_hex())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn shards_of(&self, object_id: i64) -> Result<Vec<ShardRow>, GatewayError> {
        let rows = sqlx::query(
            "SELECT info_hash, idx, length, info FROM shards WHERE object_id = $1 ORDER BY idx",
        )
        .bind(object_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(shard_row).collect()
    }

    /// One shard's row, if an object still refers to it.
    pub async fn live_shard(&self, info_hash: &InfoHash) -> Result<Option<ShardRow>, GatewayError> {
        let row = sqlx::query(
            "SELECT info_hash, idx, length, info FROM shards WHERE info_hash = $1 AND state = 'live'",
        )
        .bind(info_hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(shard_row).transpose()
    }

    /// One shard's row, by info-hash.
    pub async fn shard(&self, info_hash: &InfoHash) -> Result<Option<ShardRow>, GatewayError> {
        let row =
            sqlx::query("SELECT info_hash, idx, length, info FROM shards WHERE info_hash = $1")
                .bind(info_hash.to_hex())
                .fetch_optional(self.reader())
                .await?;
        row.as_ref().map(shard_row).transpose()
    }

    /// Copies its bucket's policy wants of a live shard (0 for a shard no object refers to).
    pub async fn copies_wanted(&self, info_hash: &InfoHash) -> Result<usize, GatewayError> {
        let row = sqlx::query(
            "SELECT b.policy AS policy FROM shards s JOIN objects o ON o.id = s.object_id
             JOIN buckets b ON b.name = o.bucket WHERE s.info_hash = $1",
        )
        .bind(info_hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        match row {
            None => Ok(0),
            Some(r) => Ok(usize::from(policy_col(&r)?.copies)),
        }
    }

    /// Orphan shards with the nodes that still hold them.
    pub async fn orphans(&self, limit: u32) -> Result<Vec<(InfoHash, Vec<NodeId>)>, GatewayError> {
        let rows = sqlx::query("SELECT info_hash FROM shards WHERE state = 'orphan' LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let ih = info_hash_col(&r, "info_hash")?;
            let holders = self.holders(&ih).await?;
            out.push((ih, holders));
        }
        Ok(out)
    }

    /// Forgets an orphan that no node holds any more.
    pub async fn forget_orphan(&self, info_hash: &InfoHash) -> Result<(), GatewayError> {
        let ih = info_hash.to_hex();
        sqlx::query(
            "DELETE FROM shards WHERE info_hash = $1 AND state = 'orphan'
             AND NOT EXISTS (SELECT 1 FROM holdings WHERE info_hash = $2)",
        )
        .bind(&ih)
        .bind(&ih)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records a copy a node confirmed, if its shard is still pending or live. Returns false
    /// when it is not (its object was deleted or replaced meanwhile): the copy must then go.
    pub async fn add_holding(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
        now: i64,
    ) -> Result<bool, GatewayError> {
        self.insert_holding(info_hash, node, now, HoldingOf::CountedShard)
            .await
    }

    /// Records a copy of an orphan shard, so the collector drops it from its node. Returns
    /// false when the shard is not recorded at all any more.
    pub async fn add_orphan_holding(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
        now: i64,
    ) -> Result<bool, GatewayError> {
        self.insert_holding(info_hash, node, now, HoldingOf::Orphan)
            .await
    }

    async fn insert_holding(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
        now: i64,
        of: HoldingOf,
    ) -> Result<bool, GatewayError> {
        let ih = info_hash.to_hex();
        let states = match of {
            HoldingOf::CountedShard => "('pending', 'live')",
            HoldingOf::Orphan => "('orphan')",
        };
        let sql = format!(
            "INSERT INTO holdings (info_hash, node_id, confirmed_at)
             SELECT $1, $2, $3 WHERE EXISTS
               (SELECT 1 FROM shards WHERE info_hash = $4 AND state IN {states})
             ON CONFLICT (info_hash, node_id) DO UPDATE SET
                 confirmed_at = excluded.confirmed_at, audited_at = NULL, failed_at = NULL"
        );
        let r = sqlx::query(&sql)
            .bind(&ih)
            .bind(node)
            .bind(now)
            .bind(&ih)
            .execute(self.writer())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn remove_holding(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
    ) -> Result<(), GatewayError> {
        sqlx::query("DELETE FROM holdings WHERE info_hash = $1 AND node_id = $2")
            .bind(info_hash.to_hex())
            .bind(node)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets a copy if it was confirmed before `before`; returns whether it did.
    pub async fn forget_copy_confirmed_before(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
        before: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "DELETE FROM holdings WHERE info_hash = $1 AND node_id = $2 AND confirmed_at < $3",
        )
        .bind(info_hash.to_hex())
        .bind(node)
        .bind(before)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether a copy of `info_hash` on `node` is recorded, whatever its shard's state.
    pub async fn is_recorded(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
    ) -> Result<bool, GatewayError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM holdings WHERE info_hash = $1 AND node_id = $2")
                .bind(info_hash.to_hex())
                .bind(node)
                .fetch_optional(self.reader())
                .await?;
        Ok(found.is_some())
    }

    /// Every recorded copy on `nodes`, as (info-hash, node).
    pub async fn recorded_on(
        &self,
        nodes: &[NodeId],
    ) -> Result<HashSet<(InfoHash, NodeId)>, GatewayError> {
        let mut out = HashSet::new();
        for &node in nodes {
            let rows = sqlx::query("SELECT info_hash FROM holdings WHERE node_id = $1")
                .bind(node)
                .fetch_all(self.reader())
                .await?;
            for r in &rows {
                out.insert((info_hash_col(r, "info_hash")?, node));
            }
        }
        Ok(out)
    }

    /// The shards of uploads in flight, on this gateway or another sharing the database.
    pub async fn pending_shards(&self) -> Result<HashSet<InfoHash>, GatewayError> {
        let rows = sqlx::query("SELECT info_hash FROM shards WHERE state = 'pending'")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| info_hash_col(r, "info_hash")).collect()
    }

    pub async fn holders(&self, info_hash: &InfoHash) -> Result<Vec<NodeId>, GatewayError> {
        let rows =
            sqlx::query("SELECT node_id FROM holdings WHERE info_hash = $1 ORDER BY node_id")
                .bind(info_hash.to_hex())
                .fetch_all(self.reader())
                .await?;
        Ok(rows.iter().map(|r| r.get("node_id")).collect())
    }

    /// Copies that failed an audit, so reads skip them.
    pub async fn failed_copies(&self, info_hash: &InfoHash) -> Result<Vec<NodeId>, GatewayError> {
        let rows = sqlx::query(
            "SELECT node_id FROM holdings WHERE info_hash = $1 AND failed_at IS NOT NULL",
        )
        .bind(info_hash.to_hex())
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(|r| r.get("node_id")).collect())
    }

    /// Whether `node` holds a confirmed copy of a live shard.
    pub async fn holds_live(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
    ) -> Result<bool, GatewayError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM holdings h JOIN shards s ON s.info_hash = h.info_hash
             WHERE h.info_hash = $1 AND h.node_id = $2 AND s.state = 'live'",
        )
        .bind(info_hash.to_hex())
        .bind(node)
        .fetch_optional(self.reader())
        .await?;
        Ok(found.is_some())
    }

    /// Copies of live shards, with when each was last audited.
    pub async fn audit_candidates(&self) -> Result<Vec<AuditCandidate>, GatewayError> {
        let rows = sqlx::query(
            "SELECT h.node_id, h.info_hash, h.audited_at FROM holdings h
             JOIN shards s ON s.info_hash = h.info_hash AND s.state = 'live'
             WHERE h.failed_at IS NULL",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditCandidate {
                    node: r.get("node_id"),
                    info_hash: info_hash_col(r, "info_hash")?,
                    audited_at: r.get("audited_at"),
                })
            })
            .collect()
    }

    /// Records an audit of a copy; `failed` marks it bad for good (until it is dropped). Returns
    /// false when the copy is no longer recorded (dropped while it was being audited).
    pub async fn mark_audited(
        &self,
        info_hash: &InfoHash,
        node: NodeId,
        failed: bool,
        at: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "UPDATE holdings SET audited_at = $1,
                    failed_at = CASE WHEN $2 THEN $3 ELSE failed_at END
             WHERE info_hash = $4 AND node_id = $5
               AND info_hash IN (SELECT info_hash FROM shards WHERE state = 'live')",
        )
        .bind(at)
        .bind(failed)
        .bind(at)
        .bind(info_hash.to_hex())
        .bind(node)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
