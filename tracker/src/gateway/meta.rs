//! Object metadata in SQLite (sqlx; the same queries run on Postgres when a cloud outgrows one
//! gateway): buckets, objects, shards and confirmed holdings.
//!
//! Invariants:
//! - an `objects` row exists only for a durable object, and is inserted (or replaced) in one
//!   transaction with the shards it references: readers never see a partial object;
//! - every shard the gateway ever handed to a node has a `shards` row from before the first hold
//!   directive, so a failed or interrupted upload leaves orphans for the collector, never leaks;
//! - replacing or deleting an object turns its shards into orphans in the same transaction.

use sqlx::{Row, SqlitePool};

use super::api_types::{Bucket, BucketPolicy, GatewayError, ObjectInfo};
use crate::registry::NodeId;

/// Metadata access; cheap to clone.
#[derive(Clone)]
pub struct Meta {
    pool: SqlitePool,
}

/// An object row.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub id: i64,
    pub info: ObjectInfo,
    pub inline_data: Option<Vec<u8>>,
    pub manifest: Option<Vec<u8>>,
}

/// A shard as the gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub info_hash: String,
    pub idx: u32,
    pub length: u64,
    pub info: Vec<u8>,
}

fn object_info(bucket: &str, r: &sqlx::sqlite::SqliteRow) -> ObjectInfo {
    let sha: Vec<u8> = r.get("sha256");
    let inline: Option<Vec<u8>> = r.get("inline_data");
    ObjectInfo {
        bucket: bucket.to_owned(),
        key: r.get("key"),
        size: r.get::<i64, _>("size") as u64,
        sha256: hex::encode(sha),
        created_at: r.get("created_at"),
        inline: inline.is_some(),
    }
}

impl ShardRow {
    /// The shard's metainfo facts, parsed from the stored info dict.
    pub fn shard_info(&self) -> Result<raidtorrent_codec::ShardInfo, GatewayError> {
        let torrent = [&b"d4:info"[..], &self.info, b"e"].concat();
        raidtorrent_codec::Metainfo::parse(&torrent)
            .and_then(|m| m.shard())
            .map_err(|e| GatewayError::Internal(format!("stored shard {}: {e}", self.info_hash)))
    }
}

impl Meta {
    pub fn new(pool: SqlitePool) -> Self {
        Meta { pool }
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Uploads do not survive a restart: their shards become orphans to collect.
    pub async fn abandon_pending(&self) -> Result<u64, GatewayError> {
        let r = sqlx::query("UPDATE shards SET state = 'orphan' WHERE state = 'pending'")
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn create_bucket(
        &self,
        name: &str,
        policy: &BucketPolicy,
        now: i64,
    ) -> Result<Bucket, GatewayError> {
        let json = serde_json::to_string(policy).expect("policy serialises");
        let r = sqlx::query(
            "INSERT OR IGNORE INTO buckets (name, policy, created_at) VALUES (?, ?, ?)",
        )
        .bind(name)
        .bind(json)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(GatewayError::BucketExists(name.to_owned()));
        }
        Ok(Bucket {
            name: name.to_owned(),
            policy: *policy,
            created_at: now,
        })
    }

    pub async fn bucket(&self, name: &str) -> Result<Bucket, GatewayError> {
        let row = sqlx::query("SELECT policy, created_at FROM buckets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| GatewayError::NoSuchBucket(name.to_owned()))?;
        Ok(Bucket {
            name: name.to_owned(),
            policy: serde_json::from_str(row.get("policy"))
                .map_err(|e| GatewayError::Internal(format!("stored policy of {name}: {e}")))?,
            created_at: row.get("created_at"),
        })
    }

    pub async fn buckets(&self) -> Result<Vec<Bucket>, GatewayError> {
        let rows = sqlx::query("SELECT name FROM buckets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.bucket(r.get::<&str, _>("name")).await?);
        }
        Ok(out)
    }

    pub async fn object(&self, bucket: &str, key: &str) -> Result<ObjectRow, GatewayError> {
        let r = sqlx::query(
            "SELECT id, key, size, sha256, created_at, inline_data, manifest FROM objects WHERE bucket = ? AND key = ?",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| GatewayError::NoSuchKey(key.to_owned()))?;
        Ok(ObjectRow {
            id: r.get("id"),
            info: object_info(bucket, &r),
            inline_data: r.get("inline_data"),
            manifest: r.get("manifest"),
        })
    }

    /// Objects whose key starts with `prefix`, after `after`, in key order.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>, GatewayError> {
        // Keys compare as UTF-8 bytes (BINARY collation); the prefix bound is the prefix followed by
        // the largest code point, so no LIKE escaping is needed.
        let upper = format!("{prefix}\u{10FFFF}");
        let rows = sqlx::query(
            "SELECT key, size, sha256, created_at, inline_data IS NOT NULL AS is_inline, NULL AS inline_data
             FROM objects WHERE bucket = ? AND key >= ? AND key < ? AND key > ?
             ORDER BY key LIMIT ?",
        )
        .bind(bucket)
        .bind(prefix)
        .bind(upper)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ObjectInfo {
                inline: r.get::<bool, _>("is_inline"),
                ..object_info(bucket, r)
            })
            .collect())
    }

    /// Records the shards of an upload in flight, before any node is told to hold them.
    pub async fn begin_shards(&self, shards: &[ShardRow], now: i64) -> Result<(), GatewayError> {
        let mut tx = self.pool.begin().await?;
        for s in shards {
            sqlx::query(
                "INSERT INTO shards (info_hash, object_id, idx, length, info, state, created_at)
                 VALUES (?, NULL, ?, ?, ?, 'pending', ?)",
            )
            .bind(&s.info_hash)
            .bind(s.idx)
            .bind(s.length as i64)
            .bind(&s.info)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A node confirmed a copy.
    pub async fn add_holding(
        &self,
        info_hash: &str,
        node: NodeId,
        now: i64,
    ) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT OR REPLACE INTO holdings (info_hash, node_id, confirmed_at) VALUES (?, ?, ?)",
        )
        .bind(info_hash)
        .bind(node)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_holding(&self, info_hash: &str, node: NodeId) -> Result<(), GatewayError> {
        sqlx::query("DELETE FROM holdings WHERE info_hash = ? AND node_id = ?")
            .bind(info_hash)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn holders(&self, info_hash: &str) -> Result<Vec<NodeId>, GatewayError> {
        let rows = sqlx::query("SELECT node_id FROM holdings WHERE info_hash = ? ORDER BY node_id")
            .bind(info_hash)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get("node_id")).collect())
    }

    /// The upload failed: its shards become orphans.
    pub async fn abandon_shards(&self, info_hashes: &[String]) -> Result<(), GatewayError> {
        let mut tx = self.pool.begin().await?;
        for ih in info_hashes {
            sqlx::query(
                "UPDATE shards SET state = 'orphan' WHERE info_hash = ? AND state = 'pending'",
            )
            .bind(ih)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes an object visible, replacing any object under the same key (whose shards become
    /// orphans), in one transaction. `shards` must have been recorded with [`Meta::begin_shards`]
    /// (empty for inline objects).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
        sha256: &[u8; 32],
        inline_data: Option<&[u8]>,
        manifest: Option<&[u8]>,
        shards: &[String],
        now: i64,
    ) -> Result<ObjectInfo, GatewayError> {
        let mut tx = self.pool.begin().await?;
        orphan_object(&mut tx, bucket, key).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO objects (bucket, key, size, sha256, created_at, inline_data, manifest)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(bucket)
        .bind(key)
        .bind(size as i64)
        .bind(&sha256[..])
        .bind(now)
        .bind(inline_data)
        .bind(manifest)
        .fetch_one(&mut *tx)
        .await?
        .get("id");
        for ih in shards {
            let r = sqlx::query(
                "UPDATE shards SET state = 'live', object_id = ? WHERE info_hash = ? AND state = 'pending'",
            )
            .bind(id)
            .bind(ih)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() != 1 {
                return Err(GatewayError::Internal(format!(
                    "shard {ih} was not pending"
                )));
            }
        }
        tx.commit().await?;
        Ok(ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            sha256: hex::encode(sha256),
            created_at: now,
            inline: inline_data.is_some(),
        })
    }

    /// Removes an object; its shards become orphans.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), GatewayError> {
        let mut tx = self.pool.begin().await?;
        if !orphan_object(&mut tx, bucket, key).await? {
            return Err(GatewayError::NoSuchKey(key.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn shards_of(&self, object_id: i64) -> Result<Vec<ShardRow>, GatewayError> {
        let rows = sqlx::query(
            "SELECT info_hash, idx, length, info FROM shards WHERE object_id = ? ORDER BY idx",
        )
        .bind(object_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ShardRow {
                info_hash: r.get("info_hash"),
                idx: r.get::<i64, _>("idx") as u32,
                length: r.get::<i64, _>("length") as u64,
                info: r.get("info"),
            })
            .collect())
    }

    /// Orphan shards with the nodes that still hold them.
    pub async fn orphans(&self, limit: u32) -> Result<Vec<(String, Vec<NodeId>)>, GatewayError> {
        let rows = sqlx::query("SELECT info_hash FROM shards WHERE state = 'orphan' LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let ih: String = r.get("info_hash");
            let holders = self.holders(&ih).await?;
            out.push((ih, holders));
        }
        Ok(out)
    }

    /// Forgets an orphan that no node holds any more.
    pub async fn forget_orphan(&self, info_hash: &str) -> Result<(), GatewayError> {
        sqlx::query(
            "DELETE FROM shards WHERE info_hash = ? AND state = 'orphan'
             AND NOT EXISTS (SELECT 1 FROM holdings WHERE info_hash = ?)",
        )
        .bind(info_hash)
        .bind(info_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Deletes the object row under (bucket, key), if any, and orphans its shards. Returns whether
/// there was one. Writes come first in every transaction: in WAL mode a transaction that read
/// before writing can fail with a stale snapshot when another writer got in between.
async fn orphan_object(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    bucket: &str,
    key: &str,
) -> Result<bool, GatewayError> {
    sqlx::query(
        "UPDATE shards SET state = 'orphan', object_id = NULL
         WHERE object_id IN (SELECT id FROM objects WHERE bucket = ? AND key = ?)",
    )
    .bind(bucket)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ?")
        .bind(bucket)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

impl Meta {
    /// A node's passkey, for the announce URL in the torrents it is handed.
    pub async fn passkey(&self, node: NodeId) -> Result<String, GatewayError> {
        let row = sqlx::query("SELECT passkey FROM nodes WHERE id = ? AND revoked_at IS NULL")
            .bind(node)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| GatewayError::Internal(format!("node {node} is not registered")))?;
        Ok(row.get("passkey"))
    }
}
