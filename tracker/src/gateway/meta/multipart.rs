//! Multipart uploads (S3): an upload in progress, its parts as they arrive, and their end —
//! completed into a grouped object, aborted, or expired.
//!
//! Each part is stored as it arrives: encoded and placed as one or more part objects of the
//! bucket's part bucket, under keys `<prefix>/<index>` where `prefix` is the part's own random
//! name. The part's row is recorded once those are durable; re-sending a part number replaces
//! the older part, whose part objects go in the same transaction. Completing commits the object
//! with every listed part's part objects as its parts (so it reads and deletes as any grouped
//! object) and deletes the rest; aborting or expiring deletes them all. Deleted part objects
//! orphan their shards, which the collector drops from the nodes.

use sqlx::Row;

use super::groups::{part_bucket_name, NewPart};
use super::{commit_object_in, NewObject};
use super::{Meta, ObjectAttrs};
use crate::gateway::attrs::Checksum;
use crate::gateway::model::ObjectInfo;
use crate::gateway::GatewayError;

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub attrs: ObjectAttrs,
    /// The checksum algorithm every part is summed with (S3's name), named at creation.
    pub checksum_algorithm: Option<String>,
    /// S3's checksum type of the object's sum (`COMPOSITE` or `FULL_OBJECT`), named at creation;
    /// none for an upload without an algorithm, or one made before types were kept (composite).
    pub checksum_type: Option<String>,
    pub created_at: i64,
}

/// A part of an upload, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPart {
    pub part_number: u32,
    pub prefix: String,
    pub size: u64,
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
    /// The `x-amz-checksum-*` sum the part was verified against (or computed with).
    pub checksum: Option<Checksum>,
    pub created_at: i64,
}

/// The part objects of one part, in order, with their sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartObject {
    pub key: String,
    pub size: u64,
}

impl Meta {
    pub async fn create_upload(&self, u: &Upload) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT INTO multipart_uploads
                 (upload_id, bucket, key, attrs, checksum_algorithm, checksum_type, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&u.upload_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.attrs.to_json())
        .bind(&u.checksum_algorithm)
        .bind(&u.checksum_type)
        .bind(u.created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Upload `upload_id` of `bucket`.
    pub async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Upload, GatewayError> {
        let row = sqlx::query(
            "SELECT upload_id, bucket, key, attrs, checksum_algorithm, checksum_type, created_at
             FROM multipart_uploads
             WHERE upload_id = $1 AND bucket = $2",
        )
        .bind(upload_id)
        .bind(bucket)
        .fetch_optional(self.reader())
        .await?
        .ok_or_else(|| GatewayError::NoSuchUpload(upload_id.to_owned()))?;
        Ok(upload_row(&row))
    }

    /// Uploads of `bucket` in progress whose keys start with `prefix`, in key and id order,
    /// after (`key`, `upload_id`) `after`; at most `limit`.
    pub async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<Upload>, GatewayError> {
        let rows = sqlx::query(
            "SELECT upload_id, bucket, key, attrs, checksum_algorithm, checksum_type, created_at
             FROM multipart_uploads
             WHERE bucket = $1 AND substr(key, 1, length($2)) = $2
               AND (key > $3 OR (key = $3 AND $4 <> '' AND upload_id > $4))
             ORDER BY key, upload_id LIMIT $5",
        )
        .bind(bucket)
        .bind(prefix)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(upload_row).collect())
    }

    /// Every upload started before `before` (unix seconds).
    pub async fn uploads_started_before(&self, before: i64) -> Result<Vec<Upload>, GatewayError> {
        let rows = sqlx::query(
            "SELECT upload_id, bucket, key, attrs, checksum_algorithm, checksum_type, created_at
             FROM multipart_uploads
             WHERE created_at < $1 ORDER BY created_at",
        )
        .bind(before)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(upload_row).collect())
    }

    /// The parts recorded for an upload, in part-number order.
    pub async fn upload_parts(&self, upload_id: &str) -> Result<Vec<UploadPart>, GatewayError> {
        let rows = sqlx::query(
            "SELECT part_number, prefix, size, md5, sha256, checksum_algorithm, checksum, created_at
             FROM multipart_parts
             WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(part_row).collect())
    }

    /// Records a part whose part objects (keys `<prefix>/...` in the part bucket of `bucket`)
    /// are durable, replacing an older part of the same number; fails with `NoSuchUpload` if the
    /// upload ended meanwhile (the caller then deletes the part objects).
    pub async fn record_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: &UploadPart,
    ) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        let touched = touch_upload(&mut tx, upload_id).await?;
        if !touched {
            return Err(GatewayError::NoSuchUpload(upload_id.to_owned()));
        }
        let old: Option<String> = sqlx::query_scalar(
            "DELETE FROM multipart_parts WHERE upload_id = $1 AND part_number = $2 RETURNING prefix",
        )
        .bind(upload_id)
        .bind(i64::from(part.part_number))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = old {
            drop_prefix(&mut tx, &part_bucket_name(bucket), &old).await?;
        }
        sqlx::query(
            "INSERT INTO multipart_parts
                 (upload_id, part_number, prefix, size, md5, sha256,
                  checksum_algorithm, checksum, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(upload_id)
        .bind(i64::from(part.part_number))
        .bind(&part.prefix)
        .bind(part.size as i64)
        .bind(&part.md5[..])
        .bind(&part.sha256[..])
        .bind(part.checksum.as_ref().map(|c| c.algorithm.as_str()))
        .bind(part.checksum.as_ref().map(|c| c.value.as_str()))
        .bind(part.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The part objects under `prefix` in the part bucket of `bucket`, in order.
    pub async fn part_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<PartObject>, GatewayError> {
        let rows = sqlx::query(
            "SELECT key, size FROM objects WHERE bucket = $1 AND key > $2 AND key < $3 ORDER BY key",
        )
        .bind(part_bucket_name(bucket))
        .bind(format!("{prefix}/"))
        .bind(format!("{prefix}0"))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| PartObject {
                key: r.get("key"),
                size: r.get::<i64, _>("size") as u64,
            })
            .collect())
    }

    /// Commits `object` (grouped, its parts the part objects of the upload's listed parts) and
    /// ends the upload in one transaction: the parts not listed are deleted. `check` sees the
    /// recorded parts first, inside the transaction, and may refuse.
    pub async fn complete_upload(
        &self,
        upload_id: &str,
        object: &NewObject<'_>,
        now: i64,
        check: impl FnOnce(&[UploadPart]) -> Result<Vec<String>, GatewayError>,
    ) -> Result<ObjectInfo, GatewayError> {
        let mut tx = self.writer().begin().await?;
        if !touch_upload(&mut tx, upload_id).await? {
            return Err(GatewayError::NoSuchUpload(upload_id.to_owned()));
        }
        let parts: Vec<UploadPart> = sqlx::query(
            "SELECT part_number, prefix, size, md5, sha256, checksum_algorithm, checksum, created_at
             FROM multipart_parts
             WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(part_row)
        .collect();
        let kept = check(&parts)?;
        let part_bucket = part_bucket_name(object.bucket);
        for p in parts.iter().filter(|p| !kept.contains(&p.prefix)) {
            drop_prefix(&mut tx, &part_bucket, &p.prefix).await?;
        }
        sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        let info = commit_object_in(&mut tx, object, now).await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Ends an upload without an object: every part object goes (its shards to the collector).
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM multipart_parts WHERE upload_id = $1
               AND EXISTS (SELECT 1 FROM multipart_uploads WHERE upload_id = $1 AND bucket = $2)
             RETURNING prefix",
        )
        .bind(upload_id)
        .bind(bucket)
        .fetch_all(&mut *tx)
        .await?;
        let ended =
            sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1 AND bucket = $2")
                .bind(upload_id)
                .bind(bucket)
                .execute(&mut *tx)
                .await?;
        if ended.rows_affected() == 0 {
            return Err(GatewayError::NoSuchUpload(upload_id.to_owned()));
        }
        let part_bucket = part_bucket_name(bucket);
        for prefix in gone {
            drop_prefix(&mut tx, &part_bucket, &prefix).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes part objects under `prefix` (of a part that failed, or an upload that ended
    /// while it was stored).
    pub async fn drop_part_objects(&self, bucket: &str, prefix: &str) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        drop_prefix(&mut tx, &part_bucket_name(bucket), prefix).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The parts of a grouped object made of part objects `objects`, in order.
pub fn new_parts(objects: &[PartObject]) -> Vec<NewPart> {
    let mut offset = 0;
    objects
        .iter()
        .map(|o| {
            let part = NewPart {
                key: o.key.clone(),
                offset,
            };
            offset += o.size;
            part
        })
        .collect()
}

/// A write that takes the upload's row first (writes come first in a transaction); false if
/// there is no such upload.
async fn touch_upload(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    upload_id: &str,
) -> Result<bool, GatewayError> {
    let r =
        sqlx::query("UPDATE multipart_uploads SET created_at = created_at WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut **tx)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes the part objects under `prefix` of `part_bucket`, orphaning their shards.
async fn drop_prefix(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    part_bucket: &str,
    prefix: &str,
) -> Result<(), GatewayError> {
    let (low, high) = (format!("{prefix}/"), format!("{prefix}0"));
    sqlx::query(
        "UPDATE shards SET state = 'orphan', object_id = NULL WHERE object_id IN
             (SELECT id FROM objects WHERE bucket = $1 AND key > $2 AND key < $3)",
    )
    .bind(part_bucket)
    .bind(&low)
    .bind(&high)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key > $2 AND key < $3")
        .bind(part_bucket)
        .bind(&low)
        .bind(&high)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn upload_row(r: &sqlx::any::AnyRow) -> Upload {
    Upload {
        upload_id: r.get("upload_id"),
        bucket: r.get("bucket"),
        key: r.get("key"),
        attrs: ObjectAttrs::from_json(r.get("attrs")),
        checksum_algorithm: r.get("checksum_algorithm"),
        checksum_type: r.get("checksum_type"),
        created_at: r.get("created_at"),
    }
}

fn part_row(r: &sqlx::any::AnyRow) -> UploadPart {
    let md5: Vec<u8> = r.get("md5");
    let sha: Vec<u8> = r.get("sha256");
    UploadPart {
        part_number: r.get::<i64, _>("part_number") as u32,
        prefix: r.get("prefix"),
        size: r.get::<i64, _>("size") as u64,
        md5: md5.try_into().unwrap_or_default(),
        sha256: sha.try_into().unwrap_or_default(),
        checksum: part_checksum(r.get("checksum_algorithm"), r.get("checksum")),
        created_at: r.get("created_at"),
    }
}

fn part_checksum(algorithm: Option<String>, value: Option<String>) -> Option<Checksum> {
    Some(Checksum {
        algorithm: algorithm?,
        value: value?,
        parts: None,
    })
}
