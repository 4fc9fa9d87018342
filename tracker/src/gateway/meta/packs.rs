//! Packs: small objects written together into one swarm object of their bucket's pack bucket.
//!
//! An object waiting for its pack is an `objects` row with its sealed bytes in `inline_data` and
//! `pack_pending = 1`; once its pack is durable, [`Meta::settle_pack`] points it at the pack
//! (`pack_id`, `pack_offset`) and forgets the bytes. A member deleted or replaced before that
//! leaves its bytes in the pack as dead space. [`Meta::unpack`] turns a pack's live members back
//! into waiting objects (compaction) and deletes the pack once nobody refers to it, in one
//! transaction, so a member always has its bytes somewhere.

use std::ops::Range;

use sqlx::Row;

use super::{orphan_object, Meta};
use crate::gateway::model::Bucket;
use crate::gateway::GatewayError;

/// Bucket names starting with this are the gateway's own; clients' names cannot.
pub(super) const INTERNAL_PREFIX: &str = "_";

/// The pack bucket of a client's bucket.
pub fn pack_bucket_name(bucket: &str) -> String {
    format!("{INTERNAL_PREFIX}pack.{bucket}")
}

/// Whether a bucket is the gateway's own rather than a client's.
pub fn is_internal_bucket(name: &str) -> bool {
    name.starts_with(INTERNAL_PREFIX)
}

/// The objects of one bucket waiting for a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingBucket {
    pub bucket: String,
    pub objects: u64,
    pub bytes: u64,
    /// Unix seconds the oldest of them was written.
    pub oldest: i64,
}

/// An object waiting for a pack.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: i64,
    pub size: u64,
    /// Sealed under the master key.
    pub sealed: Vec<u8>,
}

/// A pack and how much of it is still referred to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackStats {
    pub id: i64,
    pub size: u64,
    /// Bytes and number of the objects it still holds.
    pub live: u64,
    pub members: u64,
}

/// A pack member: its object id, and where its bytes are in the pack.
pub type Member = (i64, Range<u64>);

/// An object a pack holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackMember {
    pub id: i64,
    /// Where its bytes are in the pack.
    pub at: Range<u64>,
    /// SHA-256 of its bytes.
    pub sha256: Vec<u8>,
}

impl Meta {
    /// The pack bucket of `bucket`, created with (or updated to) its policy.
    pub async fn pack_bucket(&self, bucket: &Bucket) -> Result<Bucket, GatewayError> {
        self.internal_bucket(&pack_bucket_name(&bucket.name), bucket)
            .await
    }

    /// The internal bucket `name` serving `bucket`, created with (or updated to) its policy.
    pub(super) async fn internal_bucket(
        &self,
        name: &str,
        bucket: &Bucket,
    ) -> Result<Bucket, GatewayError> {
        let json = serde_json::to_string(&bucket.policy).expect("policy serialises");
        sqlx::query(
            "INSERT INTO buckets (name, policy, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET policy = excluded.policy",
        )
        .bind(name)
        .bind(json)
        .bind(bucket.created_at)
        .execute(self.writer())
        .await?;
        self.any_bucket(name).await
    }

    /// Every bucket with objects waiting for a pack.
    pub async fn waiting_buckets(&self) -> Result<Vec<WaitingBucket>, GatewayError> {
        let rows = sqlx::query(
            "SELECT bucket, COUNT(*) AS n, CAST(SUM(size) AS BIGINT) AS bytes, MIN(created_at) AS oldest
             FROM objects WHERE pack_pending = 1 GROUP BY bucket ORDER BY bucket",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| WaitingBucket {
                bucket: r.get("bucket"),
                objects: r.get::<i64, _>("n") as u64,
                bytes: r.get::<i64, _>("bytes") as u64,
                oldest: r.get("oldest"),
            })
            .collect())
    }

    /// The oldest objects of `bucket` waiting for a pack, as many as fit in `max_bytes` (at
    /// least one).
    pub async fn waiting(
        &self,
        bucket: &str,
        max_bytes: u64,
    ) -> Result<Vec<Waiting>, GatewayError> {
        // Sizes first, then the bytes of only the objects taken.
        let sizes: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, size FROM objects WHERE bucket = $1 AND pack_pending = 1 ORDER BY id",
        )
        .bind(bucket)
        .fetch_all(self.reader())
        .await?;
        let mut bytes = 0u64;
        let taken = sizes
            .iter()
            .take_while(|(_, size)| {
                let first = bytes == 0;
                bytes += *size as u64;
                first || bytes <= max_bytes
            })
            .count();
        let Some(&(last, _)) = sizes[..taken].last() else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT id, size, inline_data FROM objects
             WHERE bucket = $1 AND pack_pending = 1 AND id >= $2 AND id <= $3 ORDER BY id",
        )
        .bind(bucket)
        .bind(sizes[0].0)
        .bind(last)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Waiting {
                id: r.get("id"),
                size: r.get::<i64, _>("size") as u64,
                sealed: r.get("inline_data"),
            })
            .collect())
    }

    /// Points the members that are still waiting (not deleted or replaced since) at the durable
    /// pack `pack`, forgetting their bytes here. Returns how many were settled.
    pub async fn settle_pack(&self, pack: i64, members: &[Member]) -> Result<u64, GatewayError> {
        let mut tx = self.writer().begin().await?;
        let mut settled = 0;
        for (id, at) in members {
            let r = sqlx::query(
                "UPDATE objects SET inline_data = NULL, inline_sealed = 0, pack_pending = 0,
                     pack_id = $1, pack_offset = $2
                 WHERE id = $3 AND pack_pending = 1 AND size = $4",
            )
            .bind(pack)
            .bind(at.start as i64)
            .bind(id)
            .bind((at.end - at.start) as i64)
            .execute(&mut *tx)
            .await?;
            settled += r.rows_affected();
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// The packs of a pack bucket with their live bytes, emptiest first.
    pub async fn packs(&self, pack_bucket: &str) -> Result<Vec<PackStats>, GatewayError> {
        let rows = sqlx::query(
            "SELECT p.id AS id, p.size AS size, COUNT(m.id) AS members,
                 CAST(COALESCE(SUM(m.size), 0) AS BIGINT) AS live
             FROM objects p LEFT JOIN objects m ON m.pack_id = p.id
             WHERE p.bucket = $1 GROUP BY p.id
             ORDER BY COALESCE(SUM(m.size), 0) * 1.0 / CASE WHEN p.size > 1 THEN p.size ELSE 1 END,
                 p.id",
        )
        .bind(pack_bucket)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| PackStats {
                id: r.get("id"),
                size: r.get::<i64, _>("size") as u64,
                live: r.get::<i64, _>("live") as u64,
                members: r.get::<i64, _>("members") as u64,
            })
            .collect())
    }

    /// The objects a pack holds, by where their bytes are in it.
    pub async fn pack_members(&self, pack: i64) -> Result<Vec<PackMember>, GatewayError> {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, pack_offset, size, sha256 FROM objects WHERE pack_id = $1
             ORDER BY pack_offset",
        )
        .bind(pack)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, at, size, sha256)| PackMember {
                id,
                at: at as u64..(at + size) as u64,
                sha256,
            })
            .collect())
    }

    /// Turns the members of pack `pack` given here back into objects waiting for a pack (with
    /// their sealed bytes), then deletes the pack if nothing refers to it any more; its shards
    /// become orphans. A member deleted meanwhile is skipped. Returns whether the pack went.
    pub async fn unpack(
        &self,
        pack: i64,
        members: &[(i64, Vec<u8>)],
    ) -> Result<bool, GatewayError> {
        let mut tx = self.writer().begin().await?;
        for (id, sealed) in members {
            sqlx::query(
                "UPDATE objects SET inline_data = $1, inline_sealed = 1, pack_pending = 1,
                     pack_id = NULL, pack_offset = NULL
                 WHERE id = $2 AND pack_id = $3",
            )
            .bind(sealed)
            .bind(id)
            .bind(pack)
            .execute(&mut *tx)
            .await?;
        }
        let key: Option<(String, String)> = sqlx::query_as(
            "SELECT bucket, key FROM objects p WHERE id = $1
                 AND NOT EXISTS (SELECT 1 FROM objects m WHERE m.pack_id = p.id)",
        )
        .bind(pack)
        .fetch_optional(&mut *tx)
        .await?;
        let gone = match key {
            Some((bucket, key)) => orphan_object(&mut tx, &bucket, &key).await?,
            None => false,
        };
        tx.commit().await?;
        Ok(gone)
    }
}
